/**
 * Subkey lists: "lf" and "lh" (entries of an nk offset and a 4-byte name hash), "li"
 * (bare nk offsets), and "ri" (offsets of other lists, for keys with very many subkeys).
 * Windows nests ri one level deep; hivex follows up to 32, and so does this. Each list
 * cell is read at most once per walk: a list reached again (an ri that names itself or an
 * ancestor) is a loop and an error.
 */
import { Cells } from './cells.js';
import { hiveError } from './errors.js';
import type { Key } from './key.js';

/** More subkeys than any real key has (hivex stops at 70 000; Windows' Installer keys can pass that). */
export const MAX_SUBKEYS = 1 << 20;
const MAX_RI_DEPTH = 32;
const LIST_HEADER = 4;

interface Walk {
  cells: Cells;
  /** The subkeys' nk offsets, in list order, each once. */
  found: Set<number>;
  /** The list cells read so far. */
  seen: Set<number>;
}

/**
 * The nk offsets of a key's subkeys, in the order of its lists (Windows keeps them sorted
 * by upcased name). As hivex with HIVEX_OPEN_UNSAFE: entries that are not a key node are
 * skipped, and so are ri entries that point to no cell; a list of another kind is an error.
 */
export function subkeyOffsets(cells: Cells, key: Key): number[] {
  if (key.subkeyCount === 0) return [];
  if (key.subkeyCount > MAX_SUBKEYS)
    throw hiveError(Cells.fileOffset(key.offset), `key "${key.name}" claims ${key.subkeyCount} subkeys (more than ${MAX_SUBKEYS})`);
  const walk: Walk = { cells, found: new Set(), seen: new Set() };
  readList(walk, key.subkeyList, 0, `the subkey list of key "${key.name}"`);
  return [...walk.found];
}

function readList(walk: Walk, offset: number, depth: number, what: string): void {
  if (walk.seen.has(offset)) throw hiveError(Cells.fileOffset(offset), `${what} leads back to a subkey list already read (a loop)`);
  walk.seen.add(offset);
  const cell = walk.cells.cell(offset, what);
  const d = cell.data;
  const kind = d.length >= LIST_HEADER ? d.toString('latin1', 0, 2) : '';
  const entrySize = kind === 'lf' || kind === 'lh' ? 8 : kind === 'li' || kind === 'ri' ? 4 : 0;
  if (entrySize === 0) throw hiveError(cell.at, `${what} is not a subkey list (lf, lh, li or ri)`);
  const count = d.readUInt16LE(2);
  if (LIST_HEADER + count * entrySize > d.length) throw hiveError(cell.at + 2, `"${kind}" list of ${count} entries does not fit its ${d.length}-byte cell`);
  for (let i = 0; i < count; i++) {
    const entry = d.readUInt32LE(LIST_HEADER + i * entrySize);
    if (kind !== 'ri') addChild(walk, entry, cell.at);
    else if (walk.cells.isCell(entry)) {
      if (depth >= MAX_RI_DEPTH) throw hiveError(cell.at, `"ri" lists nested more than ${MAX_RI_DEPTH} deep`);
      readList(walk, entry, depth + 1, `entry ${i} of the "ri" list at 0x${offset.toString(16)}`);
    }
  }
}

function addChild(walk: Walk, offset: number, listAt: number): void {
  if (walk.cells.signature(offset) !== 'nk') return;
  walk.found.add(offset);
  if (walk.found.size > MAX_SUBKEYS) throw hiveError(listAt, `more than ${MAX_SUBKEYS} subkeys`);
}
