/**
 * How a hive stores text: key and value names in Latin-1 ("compressed", by a flag) or
 * UTF-16LE; string data in UTF-16LE with a NUL at the end. UTF-16 is decoded unit by unit,
 * so an unpaired surrogate stays what it was rather than failing the read (hivex, through
 * iconv, fails the whole name or value instead).
 */

/** A name stored with `latin1` set (one byte a character) or as UTF-16LE (an odd last byte is dropped). */
export function decodeName(bytes: Buffer, latin1: boolean): string {
  return latin1 ? bytes.toString('latin1') : bytes.subarray(0, bytes.length & ~1).toString('utf16le');
}

/** Bytes up to the first aligned UTF-16 NUL (or the end), as hivex measures a string. */
function untilNul(data: Buffer, from: number): number {
  let at = from;
  while (at + 1 < data.length && (data[at] !== 0 || data[at + 1] !== 0)) at += 2;
  return at;
}

/**
 * REG_SZ, REG_EXPAND_SZ and REG_LINK data as a string: UTF-16LE up to the first NUL, as
 * hivex's hivex_value_string reads it (Windows allocates buffers larger than the string,
 * and what follows the NUL is junk).
 */
export function decodeString(data: Buffer): string {
  return data.subarray(0, untilNul(data, 0)).toString('utf16le');
}

/**
 * REG_MULTI_SZ data as its strings: each UTF-16LE string up to its NUL, over the whole data
 * (empty strings inside are kept: Windows stores them, e.g. in PendingFileRenameOperations),
 * less the empty string of the list's closing NUL. hivex's list is the same plus that last
 * empty string.
 */
export function decodeMultiString(data: Buffer): string[] {
  const out: string[] = [];
  for (let at = 0; at < data.length;) {
    const end = untilNul(data, at);
    out.push(data.subarray(at, end).toString('utf16le'));
    at = end + 2;
  }
  if (out.at(-1) === '') out.pop();
  return out;
}

/**
 * A name folded for comparison the way Windows compares key and value names: without
 * regard to case, each UTF-16 unit upcased on its own (RtlUpcaseUnicodeChar). For ASCII
 * names this is hivex's strcasecmp; Windows, and this, also match "É" with "é".
 */
export function foldName(name: string): string {
  let out = '';
  for (const unit of name.split('')) {
    const up = unit.toUpperCase();
    out += up.length === 1 ? up : unit;
  }
  return out;
}
