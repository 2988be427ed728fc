/**
 * The SQLite 3 database header: the first 100 bytes of page 1 (sqlite.org/fileformat.html
 * §1.3). Only what reading a table needs: the page size, the bytes each page reserves at
 * its end, the text encoding, the page count, and whether the database is in WAL mode.
 */
import { ApplianceError } from '../../errors.js';

export const HEADER_SIZE = 100;
const MAGIC = 'SQLite format 3\0';

export type TextEncoding = 'utf8' | 'utf16le' | 'utf16be';

export interface SqliteHeader {
  pageSize: number;
  /** The bytes of each page that b-trees use: the page size less the reserved bytes at its end. */
  usableSize: number;
  encoding: TextEncoding;
  /** The page count the header claims, when it is valid (written by SQLite 3.7.0 or later, and not stale). */
  pageCount?: number;
  /** Read version 2: the database may have committed pages in its -wal file. */
  walMode: boolean;
}

/** The error of every reader of a SQLite file here: it names what is wrong in it. */
export const bad = (what: string) => new ApplianceError('EPACKAGEDB', `sqlite database: ${what}`);

export function readSqliteHeader(file: Buffer): SqliteHeader {
  if (file.length < HEADER_SIZE || file.toString('latin1', 0, MAGIC.length) !== MAGIC) throw bad('no "SQLite format 3" header');
  const raw = file.readUInt16BE(16);
  const pageSize = raw === 1 ? 65536 : raw;
  if (pageSize < 512 || (pageSize & (pageSize - 1)) !== 0) throw bad(`the page size ${raw} is not a power of two from 512 to 65536`);
  const readVersion = file[19]!;
  if (readVersion !== 1 && readVersion !== 2) throw bad(`the read format version ${readVersion} is unknown`);
  const usableSize = pageSize - file[20]!;
  // SQLite itself refuses a database whose pages leave fewer than 480 usable bytes.
  if (usableSize < 480) throw bad(`${file[20]} reserved bytes leave ${usableSize} usable bytes per page`);
  if (file[21] !== 64 || file[22] !== 32 || file[23] !== 32) throw bad('the payload fractions are not 64, 32, 32');
  const encodingNumber = file.readUInt32BE(56);
  const encoding = ({ 1: 'utf8', 2: 'utf16le', 3: 'utf16be' } as const)[encodingNumber as 1 | 2 | 3];
  if (!encoding) throw bad(`the text encoding ${encodingNumber} is unknown`);
  const claimed = file.readUInt32BE(28);
  // The size in the header is valid only when the change counter matches "version valid for".
  const pageCount = claimed > 0 && file.readUInt32BE(24) === file.readUInt32BE(92) ? claimed : undefined;
  return { pageSize, usableSize, encoding, pageCount, walMode: readVersion === 2 };
}
