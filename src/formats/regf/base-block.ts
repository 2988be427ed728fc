/**
 * The base block: the hive file's first 4096 bytes ("regf"), which say where the root key
 * is and how much of the file the hive bins take. Everything else in a hive is addressed
 * by cell offsets counted from the end of this block.
 */
import { hiveError } from './errors.js';

export const BASE_BLOCK_SIZE = 4096;
/** Where the first hive bin starts: every cell offset in the hive is relative to it. */
export const BINS_START = BASE_BLOCK_SIZE;
/** A hive is at least its base block and one hive bin (hivex refuses anything smaller too). */
export const MIN_HIVE_SIZE = 2 * BASE_BLOCK_SIZE;
/** The checksum covers the 127 dwords before it. */
const CHECKSUM_AT = 0x1fc;

export interface BaseBlock {
  /** Equal when the hive was written out whole; a difference means a write was interrupted (the logs hold the rest). */
  sequence1: number;
  sequence2: number;
  /** FILETIME (100 ns since 1601) of the last write. */
  lastWritten: bigint;
  major: number;
  minor: number;
  /** The root key's cell offset (relative to BINS_START). */
  rootCell: number;
  /** Bytes of hive bins after the base block, as the header says (the file may be shorter: then less is readable). */
  binsSize: number;
  /** The name the hive was saved under (UTF-16LE, up to 32 characters, often a tail of a path). */
  fileName: string;
}

/**
 * The XOR of the first 127 dwords. Windows writes 1 for a result of 0 and 0xFFFFFFFE for
 * 0xFFFFFFFF; hivex accepts only the plain XOR: both are accepted here.
 */
function checksumOk(buf: Buffer): boolean {
  let x = 0;
  for (let o = 0; o < CHECKSUM_AT; o += 4) x ^= buf.readUInt32LE(o);
  const plain = x >>> 0;
  const stored = buf.readUInt32LE(CHECKSUM_AT);
  const windows = plain === 0 ? 1 : plain === 0xffffffff ? 0xfffffffe : plain;
  return stored === plain || stored === windows;
}

export function readBaseBlock(buf: Buffer): BaseBlock {
  if (buf.length < MIN_HIVE_SIZE) throw hiveError(0, `the file is ${buf.length} bytes, too small for a hive (at least ${MIN_HIVE_SIZE})`);
  if (buf.toString('latin1', 0, 4) !== 'regf') throw hiveError(0, 'no "regf" signature: not a registry hive');
  const major = buf.readUInt32LE(20);
  if (major !== 1) throw hiveError(20, `hive format major version ${major} (only 1 exists)`);
  if (!checksumOk(buf)) throw hiveError(CHECKSUM_AT, 'the base block checksum does not match its contents');
  const name = buf.subarray(48, 48 + 64).toString('utf16le');
  const nul = name.indexOf('\0');
  return {
    sequence1: buf.readUInt32LE(4),
    sequence2: buf.readUInt32LE(8),
    lastWritten: buf.readBigUInt64LE(12),
    major,
    minor: buf.readUInt32LE(24),
    rootCell: buf.readUInt32LE(36),
    binsSize: buf.readUInt32LE(40),
    fileName: nul < 0 ? name : name.slice(0, nul),
  };
}
