/**
 * The pages of a Berkeley DB file (db-5.3 dbinc/db_page.h PAGE). Every page starts with a
 * 26-byte header:
 *
 *   8 its own number, 12 previous page, 16 next page, 20 entries (u16),
 *   22 free-space offset (u16; on an overflow page, the bytes it holds), 25 type,
 *
 * and on hash pages an array of u16 item offsets follows. A page is known by where it
 * starts in the file, not by a view of it (a 100 MB file has ~30,000 overflow pages). A
 * page can be claimed once, so that a walk refuses loops and pages with two owners.
 */
import { bad, type HashMeta } from './meta.js';

export const PAGE_HEADER_SIZE = 26;
export const P_HASH_UNSORTED = 2;
export const P_OVERFLOW = 7;
export const P_HASH = 13;

export class BdbPages {
  /** Pages the file holds: up to its last page by the metadata, and no further than its bytes. */
  readonly count: number;
  private readonly claimed: Uint8Array;

  constructor(
    readonly file: Buffer,
    readonly meta: HashMeta,
  ) {
    this.count = Math.min(meta.lastPage + 1, Math.floor(file.length / meta.pageSize));
    this.claimed = new Uint8Array(this.count);
  }

  /** Where page `n` starts in the file; throws when the file has no such page or something reached it before. */
  claim(n: number, by: string): number {
    if (!Number.isSafeInteger(n) || n < 1 || n >= this.count) throw bad(`page ${n} (${by}) is not one of the file's ${this.count} pages (truncated?)`);
    if (this.claimed[n]) throw bad(`page ${n} is reached twice (${by}): a loop or a page with two owners`);
    this.claimed[n] = 1;
    const at = n * this.meta.pageSize;
    if (this.u32(at + 8) !== n) throw bad(`page ${n} (${by}) says it is page ${this.u32(at + 8)}`);
    return at;
  }

  /** The integers of a page at `at` in the file's byte order (the caller keeps `at` inside a claimed page). */
  u16(at: number): number {
    return this.meta.littleEndian ? this.file.readUInt16LE(at) : this.file.readUInt16BE(at);
  }

  u32(at: number): number {
    return this.meta.littleEndian ? this.file.readUInt32LE(at) : this.file.readUInt32BE(at);
  }

  /** The page header's fields, for the page starting at `page`. */
  type = (page: number): number => this.file[page + 25]!;
  next = (page: number): number => this.u32(page + 16);
  entries = (page: number): number => this.u16(page + 20);
  freeOffset = (page: number): number => this.u16(page + 22);
}
