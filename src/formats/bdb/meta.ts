/**
 * A Berkeley DB file's metadata page (page 0; db-5.3 dbinc/db_page.h DBMETA and HMETA):
 *
 *   12 magic (0x061561 hash, 0x053162 btree), 16 version, 20 page size,
 *   24 encryption algorithm, 25 page type, 26 meta flags, 32 last page number,
 *   and for a hash: 72 max_bucket, 76 high_mask, 80 low_mask, 96 spares[32].
 *
 * Integers are in the byte order of the machine that made the file; the magic number
 * read one way or the other tells which.
 */
import { ApplianceError } from '../../errors.js';

const HASH_MAGIC = 0x061561;
const BTREE_MAGIC = 0x053162;
/** The meta flag of a file whose pages carry checksums, which moves every page's contents. */
const DBMETA_CHKSUM = 0x01;
const META_SIZE = 224;

export interface HashMeta {
  littleEndian: boolean;
  pageSize: number;
  lastPage: number;
  maxBucket: number;
  /** spares[i]: what to add to a bucket number, in the i-th doubling of the table, to get its page. */
  spares: number[];
}

export const bad = (what: string) => new ApplianceError('EPACKAGEDB', `Berkeley DB: ${what}`);

/**
 * A hash database's metadata. rpm made its Packages file a hash from rpm 4.0 on (lib/backend/
 * db3.c: DB_HASH for Packages, DB_BTREE for the indexes); a btree file is refused by name.
 */
export function readHashMeta(file: Buffer): HashMeta {
  if (file.length < META_SIZE) throw bad(`${file.length} bytes, too short for a metadata page`);
  const littleEndian = file.readUInt32LE(12) === HASH_MAGIC;
  const u32 = (at: number) => (littleEndian ? file.readUInt32LE(at) : file.readUInt32BE(at));
  if (u32(12) !== HASH_MAGIC) {
    const btree = file.readUInt32LE(12) === BTREE_MAGIC || file.readUInt32BE(12) === BTREE_MAGIC;
    throw bad(btree ? 'a btree file, where rpm keeps its packages in a hash' : 'no hash database magic number');
  }
  // Hash versions 8 to 10 share the page layout read here (rpm's bdb_ro reads the same ones).
  const version = u32(16);
  if (version < 8 || version > 10) throw bad(`the hash version ${version} is not one of 8, 9, 10`);
  const pageSize = u32(20);
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) throw bad(`the page size ${pageSize} is not a power of two from 512 to 65536`);
  if (file[24] !== 0) throw bad('the file is encrypted');
  if (file[26]! & DBMETA_CHKSUM) throw bad('the pages carry checksums, which rpm never asks for (rpm cannot read this file either)');
  const spares = Array.from({ length: 32 }, (_, i) => u32(96 + 4 * i));
  return { littleEndian, pageSize, lastPage: u32(32), maxBucket: u32(72), spares };
}
