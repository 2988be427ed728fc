/**
 * SQLite's record format (sqlite.org/fileformat.html §2.1): a header of varints (its own
 * size, then one serial type per column), then the columns' values back to back. Values
 * stay views of the payload's pieces until a caller decodes one.
 */
import type { Pieces } from '../pieces.js';
import { bad, type TextEncoding } from './header.js';

/** A record header longer than this is refused: 64 KiB holds over 7,000 columns, SQLite allows 2,000 by default. */
const MAX_RECORD_HEADER = 65536;

/**
 * The varint at `at` (1 to 9 bytes: 7 bits from each byte with its high bit set, all 8
 * of a 9th), or undefined when the buffer ends first. Values past 2^53 lose precision,
 * which only ever makes them larger than any bound they are checked against.
 */
export function varint(b: Buffer, at: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let i = 0; i < 9; i++) {
    const byte = b[at + i];
    if (byte === undefined) return undefined;
    if (i === 8) return { value: value * 256 + byte, next: at + 9 };
    value = value * 128 + (byte & 0x7f);
    if (byte < 0x80) return { value, next: at + i + 1 };
  }
  return undefined;
}

export interface Column {
  serialType: number;
  value: Pieces;
}

/** The bytes a value of serial type `t` takes (types 10 and 11 are reserved: undefined). */
function valueSize(t: number): number | undefined {
  if (t >= 12) return Math.floor((t - 12) / 2);
  return [0, 1, 2, 3, 4, 6, 8, 8, 0, 0, undefined, undefined][t];
}

/** The columns of a record; throws when its header or a value's size does not fit the payload. */
export function recordColumns(payload: Pieces): Column[] {
  const first = payload.bytes(0, Math.min(9, payload.length));
  const size = first && varint(first, 0);
  if (!size || size.value < size.next || size.value > payload.length || size.value > MAX_RECORD_HEADER)
    throw bad(`a record header of ${size?.value ?? '?'} bytes does not fit its ${payload.length}-byte record`);
  const header = payload.bytes(0, size.value)!;
  const columns: Column[] = [];
  let valueAt = size.value;
  for (let at = size.next; at < header.length;) {
    const t = varint(header, at);
    const length = t && valueSize(t.value);
    if (!t || length === undefined) throw bad(`a record's column ${columns.length} has a reserved or cut serial type`);
    const value = payload.slice(valueAt, valueAt + length);
    if (!value) throw bad(`a record's column ${columns.length} of ${length} bytes runs past its ${payload.length}-byte record`);
    columns.push({ serialType: t.value, value });
    valueAt += length;
    at = t.next;
  }
  return columns;
}

/** An integer column's value (serial types 1-6, 8, 9), or undefined for any other type. */
export function columnInteger(c: Column): number | undefined {
  if (c.serialType === 8) return 0;
  if (c.serialType === 9) return 1;
  if (c.serialType < 1 || c.serialType > 6) return undefined;
  const b = c.value.bytes(0, c.value.length)!;
  return c.value.length <= 6 ? b.readIntBE(0, b.length) : Number(b.readBigInt64BE(0));
}

/** A text column's value in the database's encoding, or undefined for any other type. */
export function columnText(c: Column, encoding: TextEncoding): string | undefined {
  if (c.serialType < 13 || c.serialType % 2 === 0) return undefined;
  const b = c.value.bytes(0, c.value.length)!;
  if (encoding !== 'utf16be') return b.toString(encoding);
  const swapped = Buffer.from(b.subarray(0, b.length & ~1));
  return swapped.swap16().toString('utf16le');
}

/** A blob column's bytes, or undefined for any other type. */
export function columnBlob(c: Column): Pieces | undefined {
  return c.serialType >= 12 && c.serialType % 2 === 0 ? c.value : undefined;
}
