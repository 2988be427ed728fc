/**
 * A read-only reader of Berkeley DB hash files, enough for rpm's Packages (rpm up to 4.15
 * and RHEL 7 and 8, older SUSE): the metadata page (meta.ts), little- or big-endian pages
 * (pages.ts) and the hash buckets with their overflow chains (hash.ts). It opens no
 * environment (the __db.* files), takes no lock and replays no log: the file is read as
 * the last writer left it, as rpm's own bdb_ro backend reads it.
 */
import type { StoredRecord } from '../pieces.js';
import { hashRecords } from './hash.js';
import { readHashMeta } from './meta.js';
import { BdbPages } from './pages.js';

/**
 * Every record of a hash file keyed by 4-byte numbers, bucket by bucket: key = the number
 * (in the file's byte order), value = the data. A damaged record or chain is yielded as
 * an error and the walk goes on; a file that is not such a database throws EPACKAGEDB.
 */
export function* bdbHashRecords(file: Buffer): Generator<StoredRecord, void, undefined> {
  yield* hashRecords(new BdbPages(file, readHashMeta(file)));
}
