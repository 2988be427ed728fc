/**
 * rpm's three package database formats ("backends") and where each keeps its header
 * blobs:
 *
 *   sqlite  rpmdb.sqlite (+ -wal)  Fedora 33+, RHEL 9+: table Packages(hnum INTEGER PRIMARY KEY, blob BLOB NOT NULL)
 *   ndb     Packages.db            SUSE (its default since 2021: openSUSE, SLE 15 SP3+)
 *   bdb     Packages               RHEL 7 and 8, older Fedora and SUSE: a Berkeley DB hash keyed by 4-byte record numbers
 *
 * all in rpm's database folder (%_dbpath: /var/lib/rpm, or /usr/lib/sysimage/rpm with
 * /var/lib/rpm a link to it on Fedora 36+ and SUSE).
 */
import { ApplianceError } from '../../errors.js';
import { bdbHashRecords } from '../bdb/index.js';
import { recordError, type Pieces, type StoredRecord } from '../pieces.js';
import { columnBlob, recordColumns, sqliteTableRows } from '../sqlite/index.js';
import { ndbRecords } from './ndb.js';

export type RpmBackend = 'sqlite' | 'ndb' | 'bdb';

/** The database files of a guest, whole, as read from its rpm database folder. */
export interface RpmDatabaseFiles {
  /** rpmdb.sqlite */
  sqlite?: Buffer;
  /** rpmdb.sqlite-wal, when there is one: its committed transactions count (sqlite/wal.ts). */
  sqliteWal?: Buffer;
  /** Packages.db */
  ndb?: Buffer;
  /** Packages */
  bdb?: Buffer;
}

/** Each backend's file, in the order rpm tries them when the configured one has none (lib/backend/dbi.cc). */
export const BACKEND_FILES: readonly { backend: RpmBackend; file: string }[] = [
  { backend: 'sqlite', file: 'rpmdb.sqlite' },
  { backend: 'ndb', file: 'Packages.db' },
  { backend: 'bdb', file: 'Packages' },
];

/**
 * The backend rpm would read. rpm uses the configured one (%_db_backend) when its file
 * exists and otherwise the first in BACKEND_FILES that has one; every distribution that
 * configures a backend has only that one's file, so the order alone decides here.
 */
export function chooseBackend(files: RpmDatabaseFiles): RpmBackend | undefined {
  return BACKEND_FILES.find(({ backend }) => files[backend] !== undefined)?.backend;
}

/** The header blobs a backend's file holds, keyed by rpm's record number; bdb's record 0 (its next-number counter) is left out. */
export function* headerBlobs(backend: RpmBackend, files: RpmDatabaseFiles): Generator<StoredRecord, void, undefined> {
  if (backend === 'sqlite') yield* sqliteBlobs(files.sqlite!, files.sqliteWal);
  else if (backend === 'ndb') yield* ndbRecords(files.ndb!);
  else for (const record of bdbHashRecords(files.bdb!)) if (record.key !== 0) yield record;
}

/** A Packages row's blob: its second column. */
function packagesBlob(key: number, record: Pieces): StoredRecord {
  try {
    const column = recordColumns(record)[1];
    const blob = column && columnBlob(column);
    if (blob) return { key, value: blob };
    return { key, error: new ApplianceError('EPACKAGEDB', `sqlite database: row ${key} of Packages has no blob in its second column`) };
  } catch (error) {
    return { key, error: recordError(error) };
  }
}

/** The blob column of each row of the Packages table (hnum is the rowid, so the record holds NULL for it). */
function* sqliteBlobs(db: Buffer, wal: Buffer | undefined): Generator<StoredRecord, void, undefined> {
  for (const row of sqliteTableRows(db, 'Packages', wal)) {
    if (row.error) {
      yield row;
      continue;
    }
    yield packagesBlob(row.key, row.value);
  }
}
