// rpm databases are read from disk images: untrusted bytes. Truncated and mutated files
// (fixed seeds), overflow and bucket chains that loop, b-trees that point back at their
// root, and headers that claim huge counts must each give a clear error within a second,
// with whatever else could be read, and never throw: no RangeError from a Buffer read, no
// unbounded loop or allocation. The databases start as real ones (rpmbuild, rpm, sqlite3,
// db5.3_load), then are damaged in memory.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplianceError } from '../../src/errors.js';
import { Pieces } from '../../src/formats/pieces.js';
import { readRpmHeader } from '../../src/formats/rpm/header.js';
import { rpmPackages, type RpmDatabaseFiles, type RpmPackage, type RpmPackageList } from '../../src/formats/rpm/index.js';
import { bdbLoad, canonical, copyWithOpenWal, installFixture, ndbFile, rpmQueryAll, run, sqliteBlobs, type HeaderBlob } from '../helpers/rpmdb.js';

let dir: string;
let oracle: RpmPackage[];
let blobs: HeaderBlob[];
/** rpm's database (4 KiB pages), the same VACUUMed to 512-byte pages (interior b-tree pages, long overflow chains), and as Berkeley DB and ndb files. */
let sqlite: Buffer;
let sqlite512: Buffer;
let sqlite512Path: string;
let bdb: Buffer;
let ndb: Buffer;
let wal: { db: Buffer; wal: Buffer };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rpmdb-hostile-'));
  const dbpath = join(dir, 'sqlite');
  installFixture(dir, dbpath);
  oracle = rpmQueryAll(dbpath);
  blobs = sqliteBlobs(join(dbpath, 'rpmdb.sqlite'));
  sqlite = readFileSync(join(dbpath, 'rpmdb.sqlite'));
  sqlite512Path = join(dir, 'small-pages.sqlite');
  run('sqlite3', [join(dbpath, 'rpmdb.sqlite'), `VACUUM INTO '${sqlite512Path}'`]);
  run('sqlite3', [sqlite512Path, 'PRAGMA journal_mode=DELETE; PRAGMA page_size=512; VACUUM;']);
  sqlite512 = readFileSync(sqlite512Path);
  bdbLoad(join(dir, 'Packages'), blobs, { pageSize: 512 });
  bdb = readFileSync(join(dir, 'Packages'));
  ndb = ndbFile(blobs);
  await copyWithOpenWal(dbpath, join(dir, 'wal'), [
    'DELETE FROM Packages WHERE hnum = 1;',
    'INSERT INTO Packages (blob) SELECT blob FROM Packages WHERE hnum = 2;',
  ]);
  wal = { db: readFileSync(join(dir, 'wal', 'rpmdb.sqlite')), wal: readFileSync(join(dir, 'wal', 'rpmdb.sqlite-wal')) };
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** rpmPackages on damaged files: it must return (not throw) within a second, with an error or a whole list. */
function read(files: RpmDatabaseFiles): RpmPackageList {
  const started = performance.now();
  const list = rpmPackages(files);
  expect(performance.now() - started).toBeLessThan(1000);
  expect(Array.isArray(list.packages)).toBe(true);
  if (list.error !== undefined) expect(list.error).toMatch(/^rpm (sqlite|ndb|bdb) database: ./);
  return list;
}

/** Damage that removes bytes can lose packages, never invent them: what comes back is rpm's, and all of it unless an error says why not. */
function expectSubsetOfOracle(list: RpmPackageList): void {
  const known = new Set(canonical(oracle).map((p) => JSON.stringify(p)));
  for (const p of canonical(list.packages)) expect(known.has(JSON.stringify(p))).toBe(true);
  if (list.error === undefined) expect(list.packages).toHaveLength(oracle.length);
}

/** A seeded generator (a 31-bit LCG): the same damage on every run. */
function lcg(seed: number): (n: number) => number {
  let s = seed;
  return (n) => ((s = (s * 1103515245 + 12345) % 2 ** 31), s % n);
}

function mutate(buf: Buffer, seed: number, count: number): Buffer {
  const random = lcg(seed);
  const out = Buffer.from(buf);
  for (let i = 0; i < count; i++) out[random(out.length)] = random(256);
  return out;
}

/** Cut points: every page boundary and a byte either side, and seeded offsets in between. */
function cuts(length: number, pageSize: number, seed: number): number[] {
  const random = lcg(seed);
  const points = [0, 1, 7, 8, 31, 32, 99, 100];
  for (let at = pageSize; at < length; at += pageSize) points.push(at - 1, at, at + 1);
  for (let i = 0; i < 50; i++) points.push(random(length));
  return points.filter((p) => p < length);
}

/** The pages sqlite3's dbstat names for the Packages table, by type. */
function dbstatPages(file: string, type: string): { page: number; path: string }[] {
  return run('sqlite3', ['-readonly', file, `SELECT pageno, path FROM dbstat WHERE name = 'Packages' AND pagetype = '${type}'`])
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => ({ page: Number(line.split('|')[0]), path: line.split('|')[1]! }));
}

describe('sqlite', () => {
  it('truncated anywhere: what was read, and an error naming the missing page', () => {
    for (const file of [sqlite, sqlite512]) {
      for (const cut of cuts(file.length, file === sqlite ? 4096 : 512, 1)) expectSubsetOfOracle(read({ sqlite: file.subarray(0, cut) }));
    }
    const leaf = Math.max(...dbstatPages(sqlite512Path, 'leaf').map((p) => p.page));
    expect(read({ sqlite: sqlite512.subarray(0, (leaf - 1) * 512) }).error).toMatch(
      new RegExp(`page ${leaf} is past the end of the \\d+-byte file \\(truncated\\?\\)`),
    );
  });

  it('mutated pages (fixed seeds): an error or a list, never a throw', () => {
    for (let seed = 1; seed <= 300; seed++) read({ sqlite: mutate(seed % 2 ? sqlite : sqlite512, seed, 1 + (seed % 24)) });
  });

  it('overflow chains that loop: those rows are lost with an error, the others come back', () => {
    const looped = Buffer.from(sqlite512);
    const overflow = dbstatPages(sqlite512Path, 'overflow');
    for (const { page } of overflow) looped.writeUInt32BE(page, (page - 1) * 512);
    const rowsWithChains = new Set(overflow.map((o) => o.path.split('+')[0])).size;
    const list = read({ sqlite: looped });
    expect(list.error).toMatch(new RegExp(`${rowsWithChains} damaged records skipped, the first: record \\d+: .*reached twice`));
    expect(list.packages.length).toBe(oracle.length - rowsWithChains);
    expectSubsetOfOracle(list);
  });

  it('an interior page that points back at the root: an error, and the rest of the tree', () => {
    const looped = Buffer.from(sqlite512);
    const root = Number(run('sqlite3', ['-readonly', sqlite512Path, "SELECT rootpage FROM sqlite_schema WHERE name = 'Packages'"]));
    expect(dbstatPages(sqlite512Path, 'internal').map((p) => p.page)).toContain(root);
    // The right-most child pointer of the root (an interior page) names the root.
    looped.writeUInt32BE(root, (root - 1) * 512 + 8);
    const list = read({ sqlite: looped });
    expect(list.error).toMatch(new RegExp(`page ${root} is reached twice`));
    expect(list.packages.length).toBeGreaterThan(0);
    expectSubsetOfOracle(list);
  });

  it('a WAL truncated or mutated (fixed seeds): the frames up to the damage count, no throw', () => {
    const whole = read({ sqlite: wal.db, sqliteWal: wal.wal });
    expect(whole.error).toBeUndefined();
    for (let seed = 1; seed <= 100; seed++) {
      read({ sqlite: wal.db, sqliteWal: mutate(wal.wal, seed, 1 + (seed % 8)) });
      read({ sqlite: wal.db, sqliteWal: wal.wal.subarray(0, lcg(seed)(wal.wal.length)) });
    }
  });
});

/**
 * A WAL whose checksums are right (anyone can compute them, so a hostile image can hold
 * one): big-endian checksums, one salt, `frames` in order.
 */
function forgedWal(pageSize: number, frames: { page: number; commit: number; data: Buffer }[]): Buffer {
  const sum = (b: Buffer, seed: [number, number]): [number, number] => {
    let [s0, s1] = seed;
    for (let i = 0; i < b.length; i += 8) {
      s0 = (s0 + b.readUInt32BE(i) + s1) >>> 0;
      s1 = (s1 + b.readUInt32BE(i + 4) + s0) >>> 0;
    }
    return [s0, s1];
  };
  const header = Buffer.alloc(32);
  [0x377f0683, 3007000, pageSize, 0, 0x1234, 0x5678].forEach((v, i) => header.writeUInt32BE(v, i * 4));
  let seed = sum(header.subarray(0, 24), [0, 0]);
  header.writeUInt32BE(seed[0], 24);
  header.writeUInt32BE(seed[1], 28);
  const out: Buffer[] = [header];
  for (const f of frames) {
    const head = Buffer.alloc(24);
    [f.page, f.commit, 0x1234, 0x5678].forEach((v, i) => head.writeUInt32BE(v >>> 0, i * 4));
    seed = sum(Buffer.concat([head.subarray(0, 8), f.data]), seed);
    head.writeUInt32BE(seed[0], 16);
    head.writeUInt32BE(seed[1], 20);
    out.push(head, f.data);
  }
  return Buffer.concat(out);
}

describe('a forged WAL (right checksums, lying contents)', () => {
  it('that claims a page 4 billion pages away and a database of 4 billion pages: an error, nothing allocated for them', () => {
    const page = Buffer.alloc(4096, 0x0d);
    const list = read({ sqlite: wal.db, sqliteWal: forgedWal(4096, [{ page: 0xfffffff0, commit: 0xffffffff, data: page }]) });
    expect(list.error ?? '').not.toMatch(/allocation|Array buffer/);
    expectSubsetOfOracle(list);
  });

  it("whose page 1 gives another page size, or replaces the table's root with garbage", () => {
    const page1 = Buffer.from(wal.db.subarray(0, 4096));
    page1.writeUInt16BE(512, 16);
    expect(read({ sqlite: wal.db, sqliteWal: forgedWal(4096, [{ page: 1, commit: 60, data: page1 }]) }).error).toMatch(/page size 512, the file 4096/);
    const root = Number(run('sqlite3', ['-readonly', join(dir, 'sqlite', 'rpmdb.sqlite'), "SELECT rootpage FROM sqlite_schema WHERE name = 'Packages'"]));
    const garbage = mutate(Buffer.alloc(4096), 9, 4000);
    const list = read({ sqlite: wal.db, sqliteWal: forgedWal(4096, [{ page: root, commit: wal.db.length / 4096, data: garbage }]) });
    expect(list.error).toMatch(/rpm sqlite database: /);
  });
});

describe('Berkeley DB', () => {
  const pageOf = (n: number) => n * 512;
  const pageType = (file: Buffer, n: number) => file[pageOf(n) + 25];
  const pages = () => Array.from({ length: bdb.length / 512 }, (_, n) => n);

  it('truncated anywhere: what was read, and an error', () => {
    for (const cut of cuts(bdb.length, 512, 2)) expectSubsetOfOracle(read({ bdb: bdb.subarray(0, cut) }));
  });

  it('mutated pages (fixed seeds): an error or a list, never a throw', () => {
    for (let seed = 1; seed <= 300; seed++) read({ bdb: mutate(bdb, seed, 1 + (seed % 24)) });
  });

  it('overflow chains that loop, and a bucket chain that loops: errors, and the other records', () => {
    const looped = Buffer.from(bdb);
    const overflow = pages().filter((n) => pageType(looped, n) === 7);
    expect(overflow.length).toBeGreaterThan(10);
    for (const n of overflow) looped.writeUInt32LE(n, pageOf(n) + 16);
    const list = read({ bdb: looped });
    expect(list.error).toMatch(/damaged records? skipped, the first: record \d+: .*reached twice/);
    expectSubsetOfOracle(list);

    const bucketLoop = Buffer.from(bdb);
    const hashPage = pages().find((n) => pageType(bucketLoop, n) === 13 || pageType(bucketLoop, n) === 2)!;
    bucketLoop.writeUInt32LE(hashPage, pageOf(hashPage) + 16);
    const buckets = read({ bdb: bucketLoop });
    expect(buckets.error).toMatch(new RegExp(`page ${hashPage} is reached twice`));
    expectSubsetOfOracle(buckets);
  });

  it('a metadata page that claims more buckets than the file has pages', () => {
    const lying = Buffer.from(bdb);
    lying.writeUInt32LE(0x7fffffff, 72);
    expect(read({ bdb: lying }).error).toMatch(/2147483648 buckets in a file of \d+ pages/);
  });
});

describe('ndb', () => {
  it('truncated anywhere, or mutated (fixed seeds): an error or a list, never a throw', () => {
    for (const cut of cuts(ndb.length, 4096, 3)) expectSubsetOfOracle(read({ ndb: ndb.subarray(0, cut) }));
    for (let seed = 1; seed <= 300; seed++) read({ ndb: mutate(ndb, seed, 1 + (seed % 24)) });
  });

  it('slots that claim pages or blocks the file does not have', () => {
    const huge = Buffer.from(ndb);
    huge.writeUInt32LE(0xffffffff, 12);
    expect(read({ ndb: huge }).error).toMatch(/4294967295 slot pages do not fit/);
    const outside = Buffer.from(ndb);
    outside.writeUInt32LE(0xfffffff0, 32 + 12);
    const list = read({ ndb: outside });
    expect(list.error).toMatch(/1 damaged record skipped, the first: record \d+: .*outside the blob area/);
    expect(list.packages).toHaveLength(oracle.length - 1);
  });
});

describe('rpm headers', () => {
  const NAME = 1000;
  const EPOCH = 1003;
  /** The index position of `tag`'s entry in a header blob. */
  const entryOf = (blob: Buffer, tag: number): number => {
    for (let i = 0, at = 8; i < blob.readUInt32BE(0); i++, at += 16) if (blob.readUInt32BE(at) === tag) return at;
    throw new Error(`no tag ${tag}`);
  };
  const hasTag = (blob: Buffer, tag: number) => {
    for (let i = 0, at = 8; i < blob.readUInt32BE(0); i++, at += 16) if (blob.readUInt32BE(at) === tag) return true;
    return false;
  };
  /** A package with an epoch (alpha), damaged by `change`. */
  const base = () => blobs.find((b) => hasTag(b.blob, EPOCH))!;
  const damaged = (change: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(base().blob);
    change(b);
    return b;
  };
  const cases: [string, Buffer, RegExp][] = [];
  beforeAll(() => {
    const dl = base().blob.readUInt32BE(4);
    cases.push(
      ['a huge index count', damaged((b) => b.writeUInt32BE(0xffffffff, 0)), /4294967295 index entries/],
      ['a huge data size', damaged((b) => b.writeUInt32BE(0xffffffff, 4)), /4294967295 bytes of data/],
      ['sizes that do not add up to the blob', damaged((b) => b.writeUInt32BE(0xffff, 0)), /is not the blob's \d+ bytes/],
      ['a name with a huge count', damaged((b) => b.writeUInt32BE(0x7fffffff, entryOf(b, NAME) + 12)), /claims 2147483647 elements/],
      ['a name past the data', damaged((b) => b.writeInt32BE(dl + 1, entryOf(b, NAME) + 8)), /outside the \d+ data bytes/],
      [
        'a name at the last data byte, without a NUL',
        damaged((b) => ((b[b.length - 1] = 0x41), b.writeInt32BE(dl - 1, entryOf(b, NAME) + 8))),
        /NAME .* has no NUL/,
      ],
      ['a name that is an integer', damaged((b) => b.writeUInt32BE(4, entryOf(b, NAME) + 4)), /NAME has type 4, not a string|unaligned/],
      ['an epoch at an unaligned offset', damaged((b) => b.writeInt32BE(b.readInt32BE(entryOf(b, EPOCH) + 8) + 1, entryOf(b, EPOCH) + 8)), /unaligned offset/],
      ['an unknown type', damaged((b) => b.writeUInt32BE(77, entryOf(b, NAME) + 4)), /unknown type 77/],
      [
        'a region trailer that claims the whole index',
        damaged((b) => b.writeInt32BE(-0x7ffffff0, 16 + b.readUInt32BE(0) * 16 + b.readInt32BE(16))),
        /region of \d+ index bytes/,
      ],
    );
  });

  it('that claim huge counts, sizes or offsets: a clear EPACKAGEDB error, and the other packages', () => {
    for (const [what, blob, message] of cases) {
      let caught: unknown;
      try {
        readRpmHeader(Pieces.of(blob));
      } catch (error) {
        caught = error;
      }
      expect(caught, what).toBeInstanceOf(ApplianceError);
      expect((caught as ApplianceError).code).toBe('EPACKAGEDB');
      expect((caught as ApplianceError).message, what).toMatch(message);
      const list = read({ ndb: ndbFile(blobs.map((b) => (b === base() ? { key: b.key, blob } : b))) });
      expect(list.error, what).toMatch(new RegExp(`1 damaged record skipped, the first: record ${base().key}: rpm header: `));
      expect(list.packages).toHaveLength(oracle.length - 1);
    }
  });

  it('truncated or mutated (fixed seeds): an ApplianceError or a header, never another throw', () => {
    for (const { blob } of blobs) {
      const random = lcg(blob.length);
      for (let i = 0; i < 100; i++) {
        for (const b of [blob.subarray(0, random(blob.length)), mutate(blob, random(1 << 30), 1 + (i % 16))]) {
          try {
            readRpmHeader(Pieces.of(b));
          } catch (error) {
            expect(error).toBeInstanceOf(ApplianceError);
          }
        }
      }
    }
  });
});
