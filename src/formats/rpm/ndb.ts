/**
 * rpm's own "ndb" package database, Packages.db (rpm 4.15+, SUSE's default since 2021;
 * rpm's lib/backend/ndb/rpmpkg.c). Little-endian throughout, in 16-byte blocks:
 *
 *   header (the first 32 bytes): "RpmP", version 0, generation, slot pages, next index;
 *   slots (the rest of the first `slot pages` 4 KiB pages), 16 bytes each:
 *     "Slot", package index, first block, block count (first block 0: a free slot);
 *   blobs, each in its slot's blocks:
 *     "BlbS", package index, generation, length; the header blob; zero padding;
 *     adler32, length, "BlbE".
 *
 * Each slot and blob is checked as rpm checks them when it reads one (magic numbers, the
 * index in the blob is the slot's, the length agrees at both ends and with the block
 * count, everything inside the file). rpm does not verify the adler32 when it reads a
 * blob (only `rpmdb --verifydb` does); neither is it here, where it would mean reading
 * every byte of a ~100 MB file for a list of names.
 */
import { ApplianceError } from '../../errors.js';
import { Pieces, type StoredRecord } from '../pieces.js';

const BLOCK = 16;
const SLOT_PAGE = 4096;
const HEADER_SIZE = 32;
const magic = (s: string) => Buffer.from(s, 'latin1').readUInt32LE(0);
const DB_MAGIC = magic('RpmP');
const SLOT_MAGIC = magic('Slot');
const HEAD_MAGIC = magic('BlbS');
const TAIL_MAGIC = magic('BlbE');
const BLOB_HEAD = 16;
const BLOB_TAIL = 12;

const bad = (what: string) => new ApplianceError('EPACKAGEDB', `rpm ndb database: ${what}`);

/** Every package blob of a Packages.db, in slot order: key = the package index. Throws EPACKAGEDB when the header is damaged. */
export function* ndbRecords(file: Buffer): Generator<StoredRecord, void, undefined> {
  if (file.length < HEADER_SIZE || file.readUInt32LE(0) !== DB_MAGIC) throw bad('no "RpmP" header');
  if (file.readUInt32LE(4) !== 0) throw bad(`the version ${file.readUInt32LE(4)} is not 0`);
  const slotPages = file.readUInt32LE(12);
  if (slotPages < 1 || slotPages * SLOT_PAGE > file.length) throw bad(`${slotPages} slot pages do not fit the ${file.length}-byte file (truncated?)`);
  const blocks = Math.floor(file.length / BLOCK);
  const firstBlob = (slotPages * SLOT_PAGE) / BLOCK;
  for (let at = HEADER_SIZE; at < slotPages * SLOT_PAGE; at += BLOCK) {
    if (file.readUInt32LE(at) !== SLOT_MAGIC) {
      // A damaged slot page: its other slots cannot be trusted either.
      yield { error: bad(`slot ${at / BLOCK} has no "Slot" magic; the rest of its page is skipped`) };
      at = Math.ceil((at + 1) / SLOT_PAGE) * SLOT_PAGE - BLOCK;
      continue;
    }
    const start = file.readUInt32LE(at + 8);
    if (start === 0) continue;
    const key = file.readUInt32LE(at + 4);
    const count = file.readUInt32LE(at + 12);
    if (key === 0 || count === 0 || start < firstBlob || start + count > blocks) {
      yield { key, error: bad(`slot ${at / BLOCK} (package ${key}) names blocks ${start}+${count}, outside the blob area of ${blocks} blocks`) };
      continue;
    }
    yield blob(file, key, start, count);
  }
}

/** The blob in blocks [start, start + count), checked against its slot. */
function blob(file: Buffer, key: number, start: number, count: number): StoredRecord {
  const at = start * BLOCK;
  const end = (start + count) * BLOCK;
  if (count * BLOCK < BLOB_HEAD + BLOB_TAIL) return { key, error: bad(`package ${key}'s ${count} blocks cannot hold a blob`) };
  const length = file.readUInt32LE(at + 12);
  if (file.readUInt32LE(at) !== HEAD_MAGIC || file.readUInt32LE(at + 4) !== key) return { key, error: bad(`package ${key}'s blob has a damaged head`) };
  if (Math.ceil((BLOB_HEAD + length + BLOB_TAIL) / BLOCK) !== count)
    return { key, error: bad(`package ${key}'s blob of ${length} bytes does not fill its ${count} blocks`) };
  if (file.readUInt32LE(end - 8) !== length || file.readUInt32LE(end - 4) !== TAIL_MAGIC)
    return { key, error: bad(`package ${key}'s blob has a damaged tail`) };
  return { key, value: Pieces.of(file.subarray(at + BLOB_HEAD, at + BLOB_HEAD + length)) };
}
