/**
 * Filesystems for OS detection without a VM: a tree of paths and contents, read as the
 * guest's read-files would read it for osReads (each file up to its group's limit), or a
 * folder of the host read the same way. And ELF headers of any machine.
 */
import { lstatSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { detectSystems, osReads, type OperatingSystem } from '../../src/inspect/os.js';
import type { FstabEntry } from '../../src/inspect/os/fstab.js';

/** Paths and their contents; `{ link }` a symlink; a folder is there when a path below it is. */
export type Tree = Record<string, string | Buffer | { link: string }>;

/** What read-files says of a path read as a type: its FILE_TYPE letter, a symlink's target. */
function typeOf(tree: Tree, p: string): Buffer | undefined {
  const v = tree[p];
  if (v !== undefined) return typeof v === 'object' && !Buffer.isBuffer(v) ? Buffer.from(`l${v.link}`) : Buffer.from('f');
  return Object.keys(tree).some((k) => k.startsWith(`${p}/`)) ? Buffer.from('d') : undefined;
}

/** What osReads reads of a tree, in its order (a symlink's target file is not followed). */
export function treeFiles(tree: Tree): (Buffer | undefined)[] {
  return osReads('/').flatMap((g) =>
    g.paths.map((p) => {
      if (g.limit === 'types') return typeOf(tree, p);
      const v = tree[p];
      return v === undefined || (typeof v === 'object' && !Buffer.isBuffer(v)) ? undefined : Buffer.from(v).subarray(0, g.limit);
    }),
  );
}

/** What osReads reads of a host folder (symlinks followed, as the guest's reads follow them inside the root). */
export function dirFiles(dir: string): (Buffer | undefined)[] {
  return osReads('/').flatMap((g) =>
    g.paths.map((p) => {
      try {
        if (g.limit === 'types') {
          const s = lstatSync(join(dir, p));
          return Buffer.from(s.isDirectory() ? 'd' : s.isSymbolicLink() ? `l${readlinkSync(join(dir, p))}` : 'f');
        }
        return statSync(join(dir, p)).isFile() ? readFileSync(join(dir, p)).subarray(0, g.limit) : undefined;
      } catch {
        return undefined;
      }
    }),
  );
}

/** An fstab matcher over a table: spec → filesystem id. */
export const matcher =
  (table: Record<string, string>) =>
  (e: FstabEntry): string | undefined =>
    table[e.spec];

/** The OS of a single filesystem (disk0) holding `tree`. */
export function detectOne(tree: Tree, table: Record<string, string> = {}): OperatingSystem | undefined {
  const found = detectSystems([{ info: { id: 'disk0', type: 'ext4' }, files: treeFiles(tree) }], matcher(table));
  return found[0];
}

/** An ELF header: class (32/64), byte order, type (2 executable, 3 shared object, 4 core), machine. */
export function elfHeader(machine: number, opts: { bits?: 32 | 64; little?: boolean; type?: number } = {}): Buffer {
  const h = Buffer.alloc(64);
  h.write('\x7fELF', 0, 'latin1');
  h[4] = opts.bits === 32 ? 1 : 2;
  const little = opts.little ?? true;
  h[5] = little ? 1 : 2;
  h[6] = 1;
  const u16 = (v: number, at: number) => (little ? h.writeUInt16LE(v, at) : h.writeUInt16BE(v, at));
  u16(opts.type ?? 2, 16);
  u16(machine, 18);
  (little ? h.writeUInt32LE.bind(h) : h.writeUInt32BE.bind(h))(1, 20);
  return h;
}

export const X86_64 = elfHeader(62);
