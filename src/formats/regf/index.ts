/**
 * A read-only reader of Windows registry hives (the "regf" format), for hives taken from
 * disk images: hostile input. Opening checks the base block and scans every hive bin once
 * (linear in the file); then each lookup reads only the cells it needs, each checked to be
 * a used cell, with a visited set on every chain of lists and a step budget per operation.
 * Anything wrong is an ApplianceError with code EHIVE naming what and the file offset.
 */
import { readBaseBlock, type BaseBlock } from './base-block.js';
import { Cells } from './cells.js';
import { hiveError } from './errors.js';
import { scanBins } from './hbin.js';
import { readKey, type Key } from './key.js';
import { foldName } from './strings.js';
import { subkeyOffsets } from './subkey-list.js';
import { readValue, type Value } from './value.js';
import { valueOffsets } from './value-list.js';

export { REG, MAX_VALUE_BYTES, type RegData, type Value } from './value.js';
export { MAX_SUBKEYS } from './subkey-list.js';
export { MAX_VALUES } from './value-list.js';
export type { Key } from './key.js';
export type { BaseBlock } from './base-block.js';
export { foldName } from './strings.js';

/** Windows allows keys 512 levels deep; a walk deeper than that is in a loop or a forgery. */
export const MAX_DEPTH = 512;
/** Cell reads one operation may make: a few per cell of the hive (cells are 8 bytes at least), and never fewer than a million. */
const budgetFor = (size: number) => 1_000_000 + Math.ceil(size / 2);

export class Hive {
  readonly header: BaseBlock;
  private readonly cells: Cells;
  private readonly rootKey: Key;

  /** Opens a hive held whole in memory; an EHIVE error when it is not one. */
  constructor(buf: Buffer) {
    this.header = readBaseBlock(buf);
    this.cells = new Cells(buf, scanBins(buf, this.header.binsSize), budgetFor(buf.length));
    this.rootKey = this.cells.operation(() => readKey(this.cells, this.header.rootCell, "the base block's root key"));
  }

  root(): Key {
    return this.rootKey;
  }

  /** The key's subkeys, in stored order (sorted by upcased name, as Windows keeps them). */
  subkeys(key: Key): Key[] {
    return this.cells.operation(() => subkeyOffsets(this.cells, key).map((o) => readKey(this.cells, o, `a subkey of "${key.name}"`)));
  }

  /** The subkey called `name`, compared as Windows does (without regard to case); undefined when there is none. */
  child(key: Key, name: string): Key | undefined {
    const want = foldName(name);
    return this.cells.operation(() => this.subkeys(key).find((k) => foldName(k.name) === want));
  }

  /** The key's values, in stored order, each with its data read. */
  values(key: Key): Value[] {
    return this.cells.operation(() => valueOffsets(this.cells, key).map((o, i) => readValue(this.cells, o, `value ${i} of key "${key.name}"`)));
  }

  /** The value called `name` ('' for the default value), without regard to case; undefined when there is none. */
  value(key: Key, name: string): Value | undefined {
    const want = foldName(name);
    return this.cells.operation(() => this.values(key).find((v) => foldName(v.name) === want));
  }

  /** The key at a backslash-separated path from the root (`\Microsoft\Windows NT\CurrentVersion`); empty elements are ignored. */
  path(path: string): Key | undefined {
    return this.cells.operation(() => {
      let key: Key | undefined = this.rootKey;
      for (const name of path.split('\\').filter((p) => p !== '')) {
        key = this.child(key, name);
        if (!key) return undefined;
      }
      return key;
    });
  }

  /**
   * Every key below `from` (itself first), depth first in stored order, with the names
   * leading to it from `from`. A key reached twice (a subkey that is its own ancestor, or
   * shared by two parents) or a path deeper than MAX_DEPTH is an EHIVE error. One
   * operation: its step budget covers the whole walk.
   */
  walk(visit: (key: Key, path: readonly string[]) => void, from: Key = this.rootKey): void {
    this.cells.operation(() => {
      const seen = new Set<number>([from.offset]);
      const stack: { key: Key; path: string[] }[] = [{ key: from, path: [] }];
      while (stack.length > 0) {
        const { key, path } = stack.pop()!;
        visit(key, path);
        if (path.length >= MAX_DEPTH && key.subkeyCount > 0) throw hiveError(Cells.fileOffset(key.offset), `keys nested more than ${MAX_DEPTH} deep`);
        const children = this.subkeys(key);
        for (const child of children) {
          if (seen.has(child.offset)) throw hiveError(Cells.fileOffset(child.offset), `key "${child.name}" is reached twice (a loop in the key tree)`);
          seen.add(child.offset);
        }
        for (let i = children.length - 1; i >= 0; i--) stack.push({ key: children[i]!, path: [...path, children[i]!.name] });
      }
    });
  }
}
