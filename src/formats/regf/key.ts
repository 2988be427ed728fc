/**
 * The key node ("nk"): a key's name, its parent, and where its subkey list and value list
 * are. Offsets in the comments are within the cell's contents (after the size field).
 */
import type { Cells } from './cells.js';
import { hiveError } from './errors.js';
import { decodeName } from './strings.js';

/** 0 "nk", 2 flags, 4 timestamp, 16 parent, 20 subkeys, 28 subkey list, 36 values, 40 value list, 72 name length, 76 name. */
const NK_FIXED = 76;
/** The name is Latin-1, not UTF-16LE. */
const KEY_COMP_NAME = 0x20;

export interface Key {
  /** The nk cell's offset (relative to the first bin): what identifies the key in its hive. */
  readonly offset: number;
  readonly name: string;
  /** KEY_* flags: 0x04 the hive's root, 0x20 the name is stored in Latin-1… */
  readonly flags: number;
  /** Last written, as a FILETIME (100 ns since 1601). */
  readonly lastWritten: bigint;
  /** The parent key's offset (the root's points outside the hive). */
  readonly parent: number;
  /** How many subkeys the key says it has (stable ones; volatile ones never reach the disk). */
  readonly subkeyCount: number;
  readonly subkeyList: number;
  readonly valueCount: number;
  readonly valueList: number;
}

export function readKey(cells: Cells, offset: number, what: string): Key {
  const cell = cells.cell(offset, what);
  const d = cell.data;
  if (d.length < NK_FIXED || d.toString('latin1', 0, 2) !== 'nk') throw hiveError(cell.at, `${what} is not a key node ("nk")`);
  const flags = d.readUInt16LE(2);
  const nameLength = d.readUInt16LE(72);
  if (NK_FIXED + nameLength > d.length) throw hiveError(cell.at + 72, `key name of ${nameLength} bytes runs past its ${d.length}-byte cell`);
  return {
    offset,
    name: decodeName(d.subarray(NK_FIXED, NK_FIXED + nameLength), (flags & KEY_COMP_NAME) !== 0),
    flags,
    lastWritten: d.readBigUInt64LE(4),
    parent: d.readUInt32LE(16),
    subkeyCount: d.readUInt32LE(20),
    subkeyList: d.readUInt32LE(28),
    valueCount: d.readUInt32LE(36),
    valueList: d.readUInt32LE(40),
  };
}
