/**
 * A read-only reader of SQLite 3 files, enough to scan one table: the database header,
 * the WAL's committed pages laid over the file (wal.ts), table b-trees with their
 * overflow chains (btree.ts), records (record.ts), and the schema table on page 1 that
 * names each table's root page. No SQL, no indexes, no locks; nothing is written.
 */
import type { ApplianceError } from '../../errors.js';
import { recordError, type StoredRecord } from '../pieces.js';
import { tableRows } from './btree.js';
import { bad } from './header.js';
import { SqlitePages } from './pages.js';
import { columnInteger, columnText, recordColumns } from './record.js';

export { columnBlob, recordColumns, type Column } from './record.js';

/** The page the schema table (sqlite_schema, once sqlite_master) starts at. */
const SCHEMA_ROOT = 1;

/**
 * Every row of the table `name`, in rowid order: key = rowid, value = the record (split
 * it with recordColumns). `wal` is the database's -wal file when it has one. A damaged
 * row or page is yielded as an error and the scan goes on; a file that is not a SQLite
 * database, or has no such table, throws EPACKAGEDB.
 */
export function* sqliteTableRows(db: Buffer, name: string, wal?: Buffer): Generator<StoredRecord, void, undefined> {
  const pages = new SqlitePages(db, wal);
  yield* tableRows(pages, tableRoot(pages, name));
}

/** The root page of table `name`, from the schema table's rows (type, name, tbl_name, rootpage, sql). */
function tableRoot(pages: SqlitePages, name: string): number {
  let damaged: ApplianceError | undefined;
  for (const row of tableRows(pages, SCHEMA_ROOT)) {
    if (row.error) {
      damaged ??= row.error;
      continue;
    }
    try {
      const [type, rowName, , root] = recordColumns(row.value);
      if (!type || !rowName || !root) continue;
      if (columnText(type, pages.header.encoding) !== 'table' || columnText(rowName, pages.header.encoding) !== name) continue;
      const page = columnInteger(root);
      if (page === undefined || page < 1) throw bad(`the schema gives table ${name} the root page ${page}`);
      return page;
    } catch (error) {
      damaged ??= recordError(error);
    }
  }
  throw damaged ? bad(`no table ${name} in the schema, which is damaged: ${damaged.message}`) : bad(`no table ${name}`);
}
