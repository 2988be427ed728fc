/**
 * A value a database stores in pieces: a b-tree cell's local bytes and its overflow pages
 * (sqlite), an item's overflow chain (Berkeley DB). The readers note where each piece
 * lies in the file rather than copying or even viewing it (a Fedora database is ~100 MB
 * in ~30,000 overflow pages, and a Buffer view per page costs more than the rest of the
 * parse): a parser then takes the few bytes it needs (an rpm header's index and a handful
 * of strings) wherever they lie.
 */
import { ApplianceError } from '../errors.js';

export class Pieces {
  /** The value's length in bytes. */
  length = 0;
  private readonly sources: Buffer[] = [];
  /** Where each piece starts in its source. */
  private readonly froms: number[] = [];
  /** Where each piece starts in the value: ascending from 0. */
  private readonly starts: number[] = [];

  static of(buf: Buffer, from = 0, length = buf.length - from): Pieces {
    return new Pieces().push(buf, from, length);
  }

  /** Appends `length` bytes of `source` from `from` (the caller has checked they are there). */
  push(source: Buffer, from: number, length: number): this {
    this.sources.push(source);
    this.froms.push(from);
    this.starts.push(this.length);
    this.length += length;
    return this;
  }

  private end(i: number): number {
    return i + 1 < this.starts.length ? this.starts[i + 1]! : this.length;
  }

  /** The index of the piece holding byte `offset` (0 <= offset < length). */
  private pieceAt(offset: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /**
   * The bytes [offset, offset + length): a view when they lie in one piece, else a copy of
   * just them; undefined when the range is not inside the value.
   */
  bytes(offset: number, length: number): Buffer | undefined {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.length) return undefined;
    if (length === 0) return Buffer.alloc(0);
    let i = this.pieceAt(offset);
    const at = offset - this.starts[i]!;
    const from = this.froms[i]! + at;
    if (offset + length <= this.end(i)) return this.sources[i]!.subarray(from, from + length);
    const out = Buffer.allocUnsafe(length);
    let done = this.sources[i]!.copy(out, 0, from, this.froms[i]! + this.end(i) - this.starts[i]!);
    while (done < length) {
      i++;
      const take = Math.min(this.end(i) - this.starts[i]!, length - done);
      done += this.sources[i]!.copy(out, done, this.froms[i]!, this.froms[i]! + take);
    }
    return out;
  }

  /** Where the first `byte` at or after `from` and before `to` is, or -1. */
  indexOf(byte: number, from: number, to: number = this.length): number {
    const end = Math.min(to, this.length);
    if (!(from >= 0) || from >= end) return -1;
    for (let i = this.pieceAt(from); i < this.starts.length && this.starts[i]! < end; i++) {
      const start = this.starts[i]!;
      const skip = Math.max(0, from - start);
      const take = Math.min(this.end(i), end) - start;
      const hit = this.sources[i]!.subarray(this.froms[i]! + skip, this.froms[i]! + take).indexOf(byte);
      if (hit >= 0) return start + skip + hit;
    }
    return -1;
  }

  /** The bytes [from, to) as a value of their own (a column inside a record), without copying them. */
  slice(from: number, to: number): Pieces | undefined {
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to < from || to > this.length) return undefined;
    const out = new Pieces();
    if (from === to) return out;
    for (let i = this.pieceAt(from); i < this.starts.length && this.starts[i]! < to; i++) {
      const start = this.starts[i]!;
      const skip = Math.max(0, from - start);
      out.push(this.sources[i]!, this.froms[i]! + skip, Math.min(this.end(i), to) - start - skip);
    }
    return out;
  }
}

/**
 * One record a database reader found: its key and value, or why it could not be read. A
 * reader yields what it can and goes on past a damaged record or subtree; only damage to
 * what holds everything (a file header, a schema) ends the walk, by throwing.
 */
export type StoredRecord = { key: number; value: Pieces; error?: undefined } | { key?: number; value?: undefined; error: ApplianceError };

/** A caught error as a record's error: an ApplianceError is the reader's verdict on the bytes; anything else is a bug, thrown on. */
export function recordError(error: unknown): ApplianceError {
  if (error instanceof ApplianceError) return error;
  throw error;
}
