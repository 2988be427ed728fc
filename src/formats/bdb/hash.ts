/**
 * Berkeley DB's hash access method (db-5.3 hash/, dbinc/hash.h), read as rpm's bdb_ro
 * reads it: buckets 0 to max_bucket, each a chain of hash pages linked by their next
 * pointers. A hash page's item offsets come in pairs, key then data; items are packed
 * from the end of the page down, so an item ends where the one before it starts. An item
 * is either on the page (H_KEYDATA: a type byte, then the bytes) or a reference to a
 * chain of overflow pages (H_OFFPAGE: type, 3 unused bytes, first page, total length).
 *
 * Each page is visited at most once (BdbPages.claim). A damaged chain loses the rest of
 * its bucket, reported as an error; the walk goes on with the next bucket.
 */
import { Pieces, recordError, type StoredRecord } from '../pieces.js';
import { bad } from './meta.js';
import { P_HASH, P_HASH_UNSORTED, P_OVERFLOW, PAGE_HEADER_SIZE, type BdbPages } from './pages.js';

const H_KEYDATA = 1;
const H_OFFPAGE = 3;
const OFFPAGE_SIZE = 12;

/** Every record of a hash file whose keys are 4-byte numbers (rpm's Packages): key = that number, in the file's byte order. */
export function* hashRecords(pages: BdbPages): Generator<StoredRecord> {
  const { maxBucket } = pages.meta;
  // Every bucket has a page of its own: more buckets than pages is a damaged metadata page.
  if (maxBucket >= pages.count) throw bad(`${maxBucket + 1} buckets in a file of ${pages.count} pages`);
  for (let bucket = 0; bucket <= maxBucket; bucket++) {
    let next = bucketPage(pages, bucket);
    try {
      while (next !== 0) {
        const page = pages.claim(next, `bucket ${bucket}`);
        const type = pages.type(page);
        if (type !== P_HASH && type !== P_HASH_UNSORTED) throw bad(`page ${next} in bucket ${bucket} has the type ${type}, not a hash page`);
        yield* pageRecords(pages, next, page);
        next = pages.next(page);
      }
    } catch (error) {
      yield { error: recordError(error) };
    }
  }
}

/** A bucket's first page: the bucket number plus the spare pages of its doubling (db's BS_TO_PAGE). */
function bucketPage(pages: BdbPages, bucket: number): number {
  const doubling = bucket === 0 ? 0 : 32 - Math.clz32(bucket);
  return bucket + pages.meta.spares[doubling]!;
}

/** The key/data pairs of hash page `n` (starting at `page` in the file); a damaged pair is an error of its own. */
function* pageRecords(pages: BdbPages, n: number, page: number): Generator<StoredRecord> {
  const size = pages.meta.pageSize;
  const entries = pages.entries(page);
  const end = PAGE_HEADER_SIZE + 2 * entries;
  if (entries % 2 !== 0 || end > size) throw bad(`page ${n} claims ${entries} items`);
  const offset = (i: number): number => pages.u16(page + PAGE_HEADER_SIZE + 2 * i);
  for (let i = 0; i < entries; i += 2) {
    const keyAt = offset(i);
    const keyEnd = i === 0 ? size : offset(i - 1);
    const dataAt = offset(i + 1);
    if (!(end <= dataAt && dataAt < keyAt && keyAt < keyEnd && keyEnd <= size)) {
      yield { error: bad(`page ${n}'s item ${i / 2} is not inside the page (offsets ${keyAt}, ${dataAt})`) };
      continue;
    }
    let key: number | undefined;
    let record: StoredRecord;
    try {
      const raw = item(pages, n, page + keyAt, page + keyEnd);
      if (raw.length !== 4) throw bad(`page ${n}'s item ${i / 2} has a ${raw.length}-byte key, not a 4-byte record number`);
      key = pages.meta.littleEndian ? raw.bytes(0, 4)!.readUInt32LE(0) : raw.bytes(0, 4)!.readUInt32BE(0);
      record = { key, value: item(pages, n, page + dataAt, page + keyAt) };
    } catch (error) {
      record = { key, error: recordError(error) };
    }
    yield record;
  }
}

/** The item at [at, end) of the file, on page `n`: its bytes, or its overflow chain's. */
function item(pages: BdbPages, n: number, at: number, end: number): Pieces {
  const type = pages.file[at]!;
  if (type === H_KEYDATA) return Pieces.of(pages.file, at + 1, end - at - 1);
  if (type !== H_OFFPAGE) throw bad(`page ${n} has an item of type ${type} (rpm's Packages has no duplicates)`);
  if (end - at !== OFFPAGE_SIZE) throw bad(`page ${n} has an overflow reference of ${end - at} bytes`);
  return overflow(pages, pages.u32(at + 4), pages.u32(at + 8));
}

/** `length` bytes from the overflow chain starting at page `first`. */
function overflow(pages: BdbPages, first: number, length: number): Pieces {
  const room = pages.meta.pageSize - PAGE_HEADER_SIZE;
  if (length === 0 || Math.ceil(length / room) > pages.count) throw bad(`an overflow item of ${length} bytes`);
  const value = new Pieces();
  let remaining = length;
  for (let next = first; remaining > 0;) {
    if (next === 0) throw bad(`an overflow chain ends ${remaining} bytes short of its ${length}`);
    const page = pages.claim(next, 'an overflow chain');
    if (pages.type(page) !== P_OVERFLOW) throw bad(`page ${next} in an overflow chain has the type ${pages.type(page)}`);
    const held = pages.freeOffset(page);
    if (held === 0 || held > room || held > remaining) throw bad(`overflow page ${next} claims ${held} bytes (${remaining} left)`);
    value.push(pages.file, page + PAGE_HEADER_SIZE, held);
    remaining -= held;
    next = pages.next(page);
  }
  return value;
}
