/**
 * What every format parser shares: a DeviceBytes over the chunks the guest read, integer
 * readers that never throw, and the ways blkid prints names and UUIDs. Nothing here
 * allocates more than the bytes it is given.
 */
import type { DeviceBytes, Name, Range } from './types.js';

/** One read chunk: `data` is the device's bytes from `offset`. */
export interface Chunk {
  offset: number;
  data: Buffer;
}

/**
 * A DeviceBytes over read chunks. Overlapping or adjacent chunks are joined, so a range
 * that spans two reads is served whole; `at` answers a view, never a copy.
 */
export function deviceBytes(size: number, sectorSize: number, chunks: readonly Chunk[]): DeviceBytes {
  const joined = joinChunks(chunks.filter((c) => c.data.length > 0 && Number.isSafeInteger(c.offset) && c.offset >= 0));
  return {
    size,
    sectorSize,
    at(offset: number, length: number): Buffer | undefined {
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) return undefined;
      if (offset + length > size) return undefined;
      // binary search: the last chunk starting at or before offset
      let lo = 0;
      let hi = joined.length - 1;
      let found = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (joined[mid]!.offset <= offset) {
          found = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      if (found < 0) return undefined;
      const c = joined[found]!;
      if (offset + length > c.offset + c.data.length) return undefined;
      return c.data.subarray(offset - c.offset, offset - c.offset + length);
    },
  };
}

function joinChunks(chunks: readonly Chunk[]): Chunk[] {
  const sorted = [...chunks].sort((a, b) => a.offset - b.offset);
  const out: Chunk[] = [];
  for (const c of sorted) {
    const last = out.at(-1);
    if (last && c.offset <= last.offset + last.data.length) {
      const end = c.offset + c.data.length;
      const lastEnd = last.offset + last.data.length;
      if (end > lastEnd) last.data = Buffer.concat([last.data, c.data.subarray(lastEnd - c.offset)]);
      continue;
    }
    out.push({ offset: c.offset, data: c.data });
  }
  return out;
}

/** Ranges sorted, clamped to [0, size) and merged where they overlap or touch. */
export function mergeRanges(ranges: readonly Range[], size: number): Range[] {
  const clamped = ranges
    .filter((r) => Number.isSafeInteger(r.offset) && Number.isSafeInteger(r.length) && r.length > 0 && r.offset >= 0 && r.offset < size)
    .map((r) => ({ offset: r.offset, length: Math.min(r.length, size - r.offset) }))
    .sort((a, b) => a.offset - b.offset);
  const out: Range[] = [];
  for (const r of clamped) {
    const last = out.at(-1);
    if (last && r.offset <= last.offset + last.length) {
      last.length = Math.max(last.length, r.offset + r.length - last.offset);
    } else out.push({ ...r });
  }
  return out;
}

// ---- integers -------------------------------------------------------------------------

export const u8 = (b: Buffer, o: number): number => b[o] ?? 0;
export const u16le = (b: Buffer, o: number): number => (b[o] ?? 0) | ((b[o + 1] ?? 0) << 8);
export const u16be = (b: Buffer, o: number): number => ((b[o] ?? 0) << 8) | (b[o + 1] ?? 0);
export const u32le = (b: Buffer, o: number): number => (u16le(b, o) + u16le(b, o + 2) * 0x10000) >>> 0;
export const u32be = (b: Buffer, o: number): number => (u16be(b, o) * 0x10000 + u16be(b, o + 2)) >>> 0;
export const i32le = (b: Buffer, o: number): number => u32le(b, o) | 0;
export const i32be = (b: Buffer, o: number): number => u32be(b, o) | 0;
/** A u64 as a number: exact up to 2^53, past that only "huge" (callers bound-check it). */
export const u64le = (b: Buffer, o: number): number => u32le(b, o) + u32le(b, o + 4) * 0x1_0000_0000;
export const u64be = (b: Buffer, o: number): number => u32be(b, o) * 0x1_0000_0000 + u32be(b, o + 4);

/** a * b, or undefined when it is not an exact safe integer. */
export function mul(a: number, b: number): number | undefined {
  const r = a * b;
  return Number.isSafeInteger(r) && r >= 0 ? r : undefined;
}

export const isPowerOf2 = (n: number): boolean => n > 0 && Number.isInteger(n) && (n & (n - 1)) === 0 && n <= 0x4000_0000;

export function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

export const ascii = (b: Buffer): string => b.toString('latin1');

// ---- names ----------------------------------------------------------------------------

const isSpace = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);

/** A string when the bytes are valid UTF-8, else the bytes themselves. */
export function toName(bytes: Buffer): Name {
  return isUtf8(bytes) ? bytes.toString('utf8') : Buffer.from(bytes);
}

function isUtf8(b: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
}

/**
 * A label stored as bytes, as blkid shows it: up to the first NUL, trailing white space
 * removed; undefined when nothing is left.
 */
export function byteLabel(raw: Buffer | undefined): Name | undefined {
  if (!raw) return undefined;
  let end = raw.indexOf(0);
  if (end < 0) end = raw.length;
  while (end > 0 && isSpace(raw[end - 1]!)) end--;
  return end > 0 ? toName(raw.subarray(0, end)) : undefined;
}

/**
 * A label stored as UTF-16 (LE or BE), as blkid shows it: up to the first NUL unit,
 * converted to UTF-8, trailing white space removed. A string with unpaired surrogates
 * cannot be UTF-8: it stays the raw bytes (up to the NUL).
 */
export function utf16Label(raw: Buffer | undefined, endian: 'le' | 'be'): Name | undefined {
  if (!raw) return undefined;
  const units: number[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const u = endian === 'le' ? u16le(raw, i) : u16be(raw, i);
    if (u === 0) break;
    units.push(u);
  }
  let s = '';
  for (let i = 0; i < units.length; i++) {
    const u = units[i]!;
    if (u >= 0xd800 && u <= 0xdbff && i + 1 < units.length && units[i + 1]! >= 0xdc00 && units[i + 1]! <= 0xdfff) {
      s += String.fromCharCode(u, units[i + 1]!);
      i++;
    } else if (u >= 0xd800 && u <= 0xdfff) {
      return Buffer.from(raw.subarray(0, units.length * 2));
    } else s += String.fromCharCode(u);
  }
  const trimmed = s.replace(/[ \t\n\v\f\r]+$/, '');
  return trimmed.length > 0 ? trimmed : undefined;
}

// ---- UUIDs ----------------------------------------------------------------------------

/** 16 bytes as blkid prints a UUID (lower case 8-4-4-4-12), or undefined when all zero. */
export function uuid(b: Buffer | undefined): string | undefined {
  if (!b || b.length < 16 || isZero(b.subarray(0, 16))) return undefined;
  const h = b.subarray(0, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A GPT GUID (first three fields little-endian) as blkid prints it, lower case. */
export function guid(b: Buffer): string {
  const swapped = Buffer.from(b.subarray(0, 16));
  swapped.subarray(0, 4).reverse();
  swapped.subarray(4, 6).reverse();
  swapped.subarray(6, 8).reverse();
  const h = swapped.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A 4-byte little-endian serial as FAT and exFAT show it: "ABCD-1234". */
export function serial4(b: Buffer): string {
  const h = Buffer.from(b.subarray(0, 4)).reverse().toString('hex').toUpperCase();
  return `${h.slice(0, 4)}-${h.slice(4)}`;
}

// ---- checksums ------------------------------------------------------------------------

function table(poly: number): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? poly ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}
const CRC32 = table(0xedb88320);
const CRC32C = table(0x82f63b78);

/** The raw reflected CRC update (no inversions): callers add the seed and final xor their format uses. */
function crcUpdate(t: Uint32Array, seed: number, b: Buffer): number {
  let c = seed >>> 0;
  for (let i = 0; i < b.length; i++) c = t[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}

/** The usual CRC-32 (zlib, GPT): seed ~0, final ~. */
export const crc32 = (b: Buffer): number => (crcUpdate(CRC32, 0xffffffff, b) ^ 0xffffffff) >>> 0;
/** CRC-32 with a seed and no final inversion (f2fs). */
export const crc32Raw = (seed: number, b: Buffer): number => crcUpdate(CRC32, seed, b);
/** CRC-32C (Castagnoli; btrfs, xfs): seed ~0, final ~. */
export const crc32c = (b: Buffer): number => (crcUpdate(CRC32C, 0xffffffff, b) ^ 0xffffffff) >>> 0;

/** A copy of `b` with `len` bytes at `off` zeroed: for checksums over a structure holding its own. */
export function withZeroed(b: Buffer, off: number, len: number): Buffer {
  const c = Buffer.from(b);
  c.fill(0, off, off + len);
  return c;
}

/** The most bytes one `needs` range may ask for, whatever an on-disk field claims. */
export const NEED_MAX = 1 << 20;

/** A `needs` range, or nothing when it is past the device or larger than NEED_MAX. */
export function need(size: number, offset: number, length: number): Range[] {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0) return [];
  if (length > NEED_MAX || offset + length > size) return [];
  return [{ offset, length }];
}
