/**
 * A SQLite write-ahead log (sqlite.org/fileformat.html §4): a 32-byte header, then frames
 * of a 24-byte header and one page. A frame counts when its salts match the log's and its
 * checksum, which chains through every frame before it, is right; the committed state is
 * what the frames up to the last valid commit frame (one with a database size) make.
 *
 * rpm (4.16+) runs its sqlite database in WAL mode and checkpoints the log on close
 * (`PRAGMA wal_checkpoint = TRUNCATE`), leaving an empty -wal file; one left with frames
 * in it belongs to an rpm (dnf, PackageKit) that had the database open or was killed, and
 * its committed transactions are only there. The frames are laid over the main file in
 * memory: nothing is written back, the image is not touched.
 */
const HEADER_SIZE = 32;
const FRAME_HEADER_SIZE = 24;
const MAGIC_LE = 0x377f0682;
const MAGIC_BE = 0x377f0683;
const VERSION = 3007000;

export interface WalOverlay {
  wal: Buffer;
  /** Where in the log the newest committed copy of each page starts. */
  pages: Map<number, number>;
  /** The database's size in pages after the last commit. */
  pageCount: number;
}

/**
 * The committed pages of a log, or undefined when it has none: empty, too short, or a
 * header SQLite would ignore (another magic, version or page size, a bad checksum), as
 * SQLite's own recovery treats such a log as empty.
 */
export function readWal(wal: Buffer, pageSize: number): WalOverlay | undefined {
  if (wal.length < HEADER_SIZE) return undefined;
  const magic = wal.readUInt32BE(0);
  if ((magic !== MAGIC_LE && magic !== MAGIC_BE) || wal.readUInt32BE(4) !== VERSION || wal.readUInt32BE(8) !== pageSize) return undefined;
  const bigEndian = magic === MAGIC_BE;
  let sum = checksum(wal, 0, 24, [0, 0], bigEndian);
  if (sum[0] !== wal.readUInt32BE(24) || sum[1] !== wal.readUInt32BE(28)) return undefined;
  const salt = wal.subarray(16, 24);
  const pages = new Map<number, number>();
  const pending: [number, number][] = [];
  let pageCount = 0;
  for (let at = HEADER_SIZE; at + FRAME_HEADER_SIZE + pageSize <= wal.length; at += FRAME_HEADER_SIZE + pageSize) {
    const page = wal.readUInt32BE(at);
    if (page === 0 || !wal.subarray(at + 8, at + 16).equals(salt)) break;
    sum = checksum(wal, at, 8, sum, bigEndian);
    sum = checksum(wal, at + FRAME_HEADER_SIZE, pageSize, sum, bigEndian);
    if (sum[0] !== wal.readUInt32BE(at + 16) || sum[1] !== wal.readUInt32BE(at + 20)) break;
    pending.push([page, at + FRAME_HEADER_SIZE]);
    const commitSize = wal.readUInt32BE(at + 4);
    if (commitSize > 0) {
      for (const [n, data] of pending) pages.set(n, data);
      pending.length = 0;
      pageCount = commitSize;
    }
  }
  return pageCount > 0 ? { wal, pages, pageCount } : undefined;
}

/** SQLite's WAL checksum of `length` bytes (a multiple of 8) at `at`, continuing from `seed`. */
function checksum(b: Buffer, at: number, length: number, seed: [number, number], bigEndian: boolean): [number, number] {
  let [s0, s1] = seed;
  for (let i = at; i < at + length; i += 8) {
    const x0 = bigEndian ? b.readUInt32BE(i) : b.readUInt32LE(i);
    const x1 = bigEndian ? b.readUInt32BE(i + 4) : b.readUInt32LE(i + 4);
    s0 = (s0 + x0 + s1) >>> 0;
    s1 = (s1 + x1 + s0) >>> 0;
  }
  return [s0, s1];
}
