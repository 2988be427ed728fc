/**
 * Big data ("db", hive format 1.4 and later): a value longer than one cell may hold is
 * stored in segments of at most 16344 bytes; the db cell holds their count and the offset
 * of a list of their cells.
 */
import type { Cell, Cells } from './cells.js';
import { hiveError } from './errors.js';

/** The data one segment carries, whatever its cell's size (the last one carries the rest). */
export const SEGMENT_SIZE = 16344;

/**
 * The value's bytes from the db cell `db`, up to `length`. As hivex, segments that hold less
 * than the value claims give a shorter value, not an error. The result is built from views
 * of the segments, so it is never larger than the file's own bytes.
 */
export function readBigData(cells: Cells, db: Cell, length: number): Buffer {
  const d = db.data;
  if (d.length < 8) throw hiveError(db.at, 'big data cell ("db") too short for its header');
  const count = d.readUInt16LE(2);
  const list = cells.cell(d.readUInt32LE(4), 'the segment list of a big data cell');
  if (count * 4 > list.data.length) throw hiveError(list.at, `segment list of ${list.data.length >> 2} entries, not the ${count} the "db" cell claims`);
  const parts: Buffer[] = [];
  let got = 0;
  for (let i = 0; i < count && got < length; i++) {
    const segment = cells.cell(list.data.readUInt32LE(i * 4), `segment ${i} of a big data value`);
    const take = Math.min(segment.data.length, SEGMENT_SIZE, length - got);
    parts.push(segment.data.subarray(0, take));
    got += take;
  }
  return Buffer.concat(parts, got);
}
