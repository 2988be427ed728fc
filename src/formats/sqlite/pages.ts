/**
 * The pages of a SQLite database as a reader sees them: the main file's, with the WAL's
 * committed frames laid over them. A page is where it lies (a buffer and an offset in
 * it), never a copy nor even a view. A page the database does not have (past its size,
 * past the end of a truncated file) is an error, and every page can be claimed once
 * (`claim`), which is how a walk refuses loops and pages shared by two owners.
 */
import { bad, readSqliteHeader, type SqliteHeader } from './header.js';
import { readWal, type WalOverlay } from './wal.js';

/** A page: its bytes are buf[at, at + page size). */
export interface PageRef {
  buf: Buffer;
  at: number;
}

export class SqlitePages {
  readonly header: SqliteHeader;
  /** The database's size in pages. */
  readonly count: number;
  private readonly overlay: WalOverlay | undefined;
  /** Pages claimed by the walk, by number; sized by the pages that exist, not by what a header claims. */
  private readonly claimed: Uint8Array;

  constructor(
    private readonly file: Buffer,
    wal?: Buffer,
  ) {
    const fileHeader = readSqliteHeader(file);
    this.overlay = fileHeader.walMode && wal ? readWal(wal, fileHeader.pageSize) : undefined;
    // The WAL may hold a newer page 1, and with it a newer header.
    const walPage1 = this.overlay?.pages.get(1);
    this.header = walPage1 === undefined ? fileHeader : readSqliteHeader(wal!.subarray(walPage1, walPage1 + fileHeader.pageSize));
    if (this.header.pageSize !== fileHeader.pageSize)
      throw bad(`the WAL's page 1 gives the page size ${this.header.pageSize}, the file ${fileHeader.pageSize}`);
    const inFile = Math.floor(file.length / this.header.pageSize);
    this.count = this.overlay?.pageCount ?? this.header.pageCount ?? inFile;
    // No more pages can exist than the file's and the WAL's together, whatever the headers claim.
    this.claimed = new Uint8Array(Math.min(this.count, inFile + (this.overlay?.pages.size ?? 0)) + 1);
  }

  /** Where page `n` (1-based) lies; throws when the database has no such page. */
  page(n: number): PageRef {
    if (!Number.isSafeInteger(n) || n < 1 || n > this.count) throw bad(`page ${n} is not one of its ${this.count} pages`);
    const size = this.header.pageSize;
    const fromWal = this.overlay?.pages.get(n);
    if (fromWal !== undefined) return { buf: this.overlay!.wal, at: fromWal };
    if (n * size > this.file.length) throw bad(`page ${n} is past the end of the ${this.file.length}-byte file (truncated?)`);
    return { buf: this.file, at: (n - 1) * size };
  }

  /**
   * Page `n`, which the caller is the first to reach; throws when something reached it
   * before (a loop or a shared page). `by` and `row` name the reacher in the error (a
   * message is built only for an error: overflow pages are claimed ~30,000 times a parse).
   */
  claim(n: number, by: string, row?: number): PageRef {
    const page = this.page(n);
    if (n >= this.claimed.length) throw bad(`page ${n} is past the pages the file and its WAL hold`);
    if (this.claimed[n]) throw bad(`page ${n} is reached twice (${by}${row === undefined ? '' : ` of row ${row}`}): a loop or a page with two owners`);
    this.claimed[n] = 1;
    return page;
  }
}
