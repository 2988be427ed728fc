/**
 * The value node ("vk"): a value's name, type and data. Data of up to 4 bytes lives in the
 * node itself (the length's top bit says so); longer data is in a cell of its own, or in
 * big data segments when one cell would not hold it.
 */
import { readBigData } from './big-data.js';
import type { Cells } from './cells.js';
import { hiveError } from './errors.js';
import { decodeMultiString, decodeName, decodeString } from './strings.js';

/** 0 "vk", 2 name length, 4 data length, 8 data offset (or the data), 12 type, 16 flags, 20 name. */
const VK_FIXED = 20;
/** The name is Latin-1, not UTF-16LE. */
const VALUE_COMP_NAME = 0x1;
const DATA_INLINE = 0x8000_0000;
/** The longest value read (hivex's limit is 8 000 000 bytes): a claim past it is an error, not an allocation. */
export const MAX_VALUE_BYTES = 8 * 1024 * 1024;

/** The value types Windows defines (winnt.h REG_*). */
export const REG = {
  NONE: 0,
  SZ: 1,
  EXPAND_SZ: 2,
  BINARY: 3,
  DWORD: 4,
  DWORD_BIG_ENDIAN: 5,
  LINK: 6,
  MULTI_SZ: 7,
  RESOURCE_LIST: 8,
  FULL_RESOURCE_DESCRIPTOR: 9,
  RESOURCE_REQUIREMENTS_LIST: 10,
  QWORD: 11,
} as const;

/**
 * The data as its type says: REG_SZ, REG_EXPAND_SZ and REG_LINK as a string, REG_MULTI_SZ
 * as strings, REG_DWORD (and its big-endian twin) as a number, REG_QWORD as a bigint;
 * anything else, and a number type whose data is too short, as the bytes.
 */
export type RegData =
  | { kind: 'string'; value: string }
  | { kind: 'strings'; value: string[] }
  | { kind: 'number'; value: number }
  | { kind: 'bigint'; value: bigint }
  | { kind: 'binary'; value: Buffer };

export interface Value {
  /** The vk cell's offset. */
  readonly offset: number;
  /** '' for the key's default value. */
  readonly name: string;
  /** The stored type code (any 32-bit number; REG holds the defined ones). */
  readonly type: number;
  /** The data as stored (a view of the hive). */
  readonly data: Buffer;
  readonly typed: RegData;
}

export function readValue(cells: Cells, offset: number, what: string): Value {
  const cell = cells.cell(offset, what);
  const d = cell.data;
  if (d.length < VK_FIXED || d.toString('latin1', 0, 2) !== 'vk') throw hiveError(cell.at, `${what} is not a value node ("vk")`);
  const nameLength = d.readUInt16LE(2);
  if (VK_FIXED + nameLength > d.length) throw hiveError(cell.at + 2, `value name of ${nameLength} bytes runs past its ${d.length}-byte cell`);
  const name = decodeName(d.subarray(VK_FIXED, VK_FIXED + nameLength), (d.readUInt16LE(16) & VALUE_COMP_NAME) !== 0);
  const type = d.readUInt32LE(12);
  const data = valueData(cells, cell.data, cell.at, `the data of value "${name}"`);
  return { offset, name, type, data, typed: typedData(type, data) };
}

function valueData(cells: Cells, vk: Buffer, at: number, what: string): Buffer {
  const raw = vk.readUInt32LE(4);
  const length = raw & ~DATA_INLINE;
  if (raw & DATA_INLINE) {
    if (length > 4) throw hiveError(at + 4, `${what}: ${length} bytes claimed to fit in the value node (at most 4)`);
    return vk.subarray(8, 8 + length);
  }
  if (length === 0) return vk.subarray(8, 8);
  if (length > MAX_VALUE_BYTES) throw hiveError(at + 4, `${what}: ${length} bytes, more than the ${MAX_VALUE_BYTES} read`);
  const cell = cells.cell(vk.readUInt32LE(8), what);
  if (length <= cell.data.length) return cell.data.subarray(0, length);
  if (cell.data.toString('latin1', 0, 2) !== 'db') throw hiveError(cell.at, `${what}: ${length} bytes claimed in a ${cell.data.length}-byte cell`);
  return readBigData(cells, cell, length);
}

export function typedData(type: number, data: Buffer): RegData {
  switch (type) {
    case REG.SZ:
    case REG.EXPAND_SZ:
    case REG.LINK:
      return { kind: 'string', value: decodeString(data) };
    case REG.MULTI_SZ:
      return { kind: 'strings', value: decodeMultiString(data) };
    case REG.DWORD:
    case REG.DWORD_BIG_ENDIAN:
      if (data.length < 4) break;
      return { kind: 'number', value: type === REG.DWORD ? data.readUInt32LE(0) : data.readUInt32BE(0) };
    case REG.QWORD:
      if (data.length < 8) break;
      return { kind: 'bigint', value: data.readBigUInt64LE(0) };
  }
  return { kind: 'binary', value: data };
}
