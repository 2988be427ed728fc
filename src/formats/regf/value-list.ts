/**
 * The value list: a cell of bare 4-byte offsets, one per value node of the key, with no
 * signature and no count of its own (the key's value count says how many are used).
 */
import { Cells } from './cells.js';
import { hiveError } from './errors.js';
import type { Key } from './key.js';

/** More values than any real key has (hivex stops at 110 000). */
export const MAX_VALUES = 1 << 20;

/** The vk offsets of a key's values, in stored order. */
export function valueOffsets(cells: Cells, key: Key): number[] {
  if (key.valueCount === 0) return [];
  if (key.valueCount > MAX_VALUES) throw hiveError(Cells.fileOffset(key.offset), `key "${key.name}" claims ${key.valueCount} values (more than ${MAX_VALUES})`);
  const cell = cells.cell(key.valueList, `the value list of key "${key.name}"`);
  if (key.valueCount * 4 > cell.data.length) {
    throw hiveError(cell.at, `the value list of key "${key.name}" holds ${cell.data.length >> 2} entries, not the ${key.valueCount} the key claims`);
  }
  const out: number[] = [];
  for (let i = 0; i < key.valueCount; i++) out.push(cell.data.readUInt32LE(i * 4));
  return out;
}
