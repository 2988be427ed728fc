// The rpm package database readers (src/formats/rpm, sqlite, bdb) against databases the
// real tools make in the test: packages built by rpmbuild and installed by rpm (sqlite,
// rpm 4.18's default on Debian), Berkeley DB files made by db5.3_load from the same header
// blobs and read back by rpm's own bdb_ro backend, and rpm -qa as the oracle throughout.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pieces } from '../src/formats/pieces.js';
import { rpmPackages, rpmVersionCompare, type RpmPackage } from '../src/formats/rpm/index.js';
import { bdbLoad, canonical, copyWithOpenWal, installFixture, ndbFile, rpmQueryAll, run, sqliteBlobs, type HeaderBlob } from './helpers/rpmdb.js';

let dir: string;
/** The database folder rpm installed into, and what rpm -qa says it holds. */
let dbpath: string;
let oracle: RpmPackage[];
let blobs: HeaderBlob[];
const sqliteFile = () => readFileSync(join(dbpath, 'rpmdb.sqlite'));

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rpm-test-'));
  dbpath = join(dir, 'sqlite');
  installFixture(dir, dbpath);
  oracle = rpmQueryAll(dbpath);
  blobs = sqliteBlobs(join(dbpath, 'rpmdb.sqlite'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the fixture', () => {
  it('is what the tests mean to cover: epochs, several arches, noarch, versions side by side, a gpg-pubkey', () => {
    expect(run('rpm', ['--eval', '%_db_backend']).trim()).toBe('sqlite');
    const nevras = oracle.map((p) => `${p.name}-${p.epoch}:${p.version}-${p.release}.${p.arch}`).sort();
    expect(nevras).toEqual(
      expect.arrayContaining([
        'alpha-2:1.2-3.i686',
        'alpha-2:1.2-3.x86_64',
        'beta-0:0.9-1.noarch',
        'gamma-0:1.0-1.aarch64',
        'kern-0:5.10-1.fc40.x86_64',
        'kern-0:5.9-2.fc40.x86_64',
      ]),
    );
    expect(oracle.find((p) => p.name === 'gpg-pubkey')?.arch).toBe('');
    expect(oracle.some((p) => p.name === 'erased')).toBe(false);
    expect(Math.max(...blobs.map((b) => b.blob.length))).toBeGreaterThan(4 * 4096);
  });

  it('rpm 4.18 checkpoints its WAL when it closes the database: the -wal file is left empty', () => {
    expect(statSync(join(dbpath, 'rpmdb.sqlite-wal')).size).toBe(0);
  });
});

describe('sqlite (rpmdb.sqlite)', () => {
  it('lists what rpm -qa lists, field for field', () => {
    const list = rpmPackages({ sqlite: sqliteFile() });
    expect(list.error).toBeUndefined();
    expect(list.backend).toBe('sqlite');
    expect(canonical(list.packages)).toEqual(canonical(oracle));
  });

  it('sorts by name, then epoch, version (as rpm compares them), release and arch', () => {
    const names = rpmPackages({ sqlite: sqliteFile() }).packages.map((p) => `${p.name}-${p.version}.${p.arch}`);
    expect(names.filter((n) => n.startsWith('kern-'))).toEqual(['kern-5.9.x86_64', 'kern-5.10~rc7.x86_64', 'kern-5.10.x86_64']);
    expect(names.filter((n) => n.startsWith('alpha-'))).toEqual(['alpha-1.2.i686', 'alpha-1.2.x86_64']);
    expect(names.map((n) => n.split('-')[0])).toEqual(names.map((n) => n.split('-')[0]).sort());
  });

  // Layouts rpm does not make but SQLite can: interior b-tree pages and long overflow chains
  // (512-byte pages), 64 KiB pages, reserved bytes at each page's end, UTF-16 names in the
  // schema, a database in rollback-journal mode (rpm's "parked" state).
  const variants: [string, (copy: string) => void][] = [
    ['512-byte pages in rollback mode', (copy) => run('sqlite3', [copy, 'PRAGMA journal_mode=DELETE; PRAGMA page_size=512; VACUUM;'])],
    ['64 KiB pages', (copy) => run('sqlite3', [copy, 'PRAGMA journal_mode=DELETE; PRAGMA page_size=65536; VACUUM;'])],
    ['32 reserved bytes per page', (copy) => run('sqlite3', [copy, '.filectrl reserve_bytes 32', 'VACUUM;'])],
    [
      'UTF-16be text',
      (copy) => {
        rmSync(copy);
        run('sqlite3', [copy], `PRAGMA encoding='UTF-16be';\n` + run('sqlite3', ['-readonly', join(dbpath, 'rpmdb.sqlite'), '.dump']));
      },
    ],
  ];
  it.each(variants)('reads a database with %s as rpm does', (_, make) => {
    const copy = join(dir, `variant-${Math.random().toString(36).slice(2)}`);
    mkdirSync(copy);
    writeFileSync(join(copy, 'rpmdb.sqlite'), sqliteFile());
    make(join(copy, 'rpmdb.sqlite'));
    const list = rpmPackages({ sqlite: readFileSync(join(copy, 'rpmdb.sqlite')) });
    expect(list.error).toBeUndefined();
    expect(canonical(list.packages)).toEqual(canonical(rpmQueryAll(copy)));
    expect(canonical(list.packages)).toEqual(canonical(oracle));
  });

  it("takes a WAL's committed transactions, as rpm does, and without the WAL what the main file holds", async () => {
    const open = join(dir, 'open');
    const copy = join(dir, 'open-copy');
    mkdirSync(open);
    writeFileSync(join(open, 'rpmdb.sqlite'), sqliteFile());
    await copyWithOpenWal(open, copy, [
      `DELETE FROM Packages WHERE hnum = ${instance('beta')};`,
      `INSERT INTO Packages (blob) SELECT blob FROM Packages WHERE hnum = ${instance('kern-5.9')};`,
    ]);
    const db = readFileSync(join(copy, 'rpmdb.sqlite'));
    const wal = readFileSync(join(copy, 'rpmdb.sqlite-wal'));
    expect(wal.length).toBeGreaterThan(0);
    const withWal = rpmPackages({ sqlite: db, sqliteWal: wal });
    expect(withWal.error).toBeUndefined();
    const rpmSays = rpmQueryAll(copy);
    expect(rpmSays.some((p) => p.name === 'beta')).toBe(false);
    expect(canonical(withWal.packages)).toEqual(canonical(rpmSays));
    expect(canonical(rpmPackages({ sqlite: db }).packages)).toEqual(canonical(oracle));
  });
});

/** The record number (sqlite's hnum) rpm gives the installed package `nevra`. */
const instance = (nevra: string): number => Number(run('rpm', ['-q', '--dbpath', dbpath, '--qf', '%{DBINSTANCE}', nevra]));

describe('Berkeley DB (Packages)', () => {
  const layouts = [
    { bigEndian: false, pageSize: 4096 },
    { bigEndian: true, pageSize: 4096 },
    { bigEndian: false, pageSize: 512 },
    { bigEndian: true, pageSize: 65536 },
  ];
  it.each(layouts)('reads a hash file (big-endian: $bigEndian, $pageSize-byte pages) as rpm -qa with bdb_ro does', (layout) => {
    const bdbDir = join(dir, `bdb-${layout.bigEndian ? 'be' : 'le'}-${layout.pageSize}`);
    mkdirSync(bdbDir);
    bdbLoad(join(bdbDir, 'Packages'), blobs, layout);
    // rpm's own read-only Berkeley DB backend reads the file: it is a real rpm database.
    const rpmSays = rpmQueryAll(bdbDir, 'bdb_ro');
    expect(canonical(rpmSays)).toEqual(canonical(oracle));
    const list = rpmPackages({ bdb: readFileSync(join(bdbDir, 'Packages')) });
    expect(list.error).toBeUndefined();
    expect(list.backend).toBe('bdb');
    expect(canonical(list.packages)).toEqual(canonical(oracle));
  });
});

describe('ndb (Packages.db)', () => {
  // Debian's rpm is built without ndb (`rpm --showrc`: sqlite bdb_ro dummy), so this file is
  // written by the test by the rules of rpm's rpmpkg.c (helpers/rpmdb.ts ndbFile), from the
  // header blobs rpm wrote.
  it('reads a Packages.db written by the format rules (no tool here writes one)', () => {
    expect(run('rpm', ['--showrc'])).toMatch(/available backends\s*:(?!.*ndb)/);
    const list = rpmPackages({ ndb: ndbFile(blobs) });
    expect(list.error).toBeUndefined();
    expect(list.backend).toBe('ndb');
    expect(canonical(list.packages)).toEqual(canonical(oracle));
  });
});

describe('which database', () => {
  it("is sqlite, then ndb, then Berkeley DB, when several are there (rpm's order when the configured one is absent)", () => {
    const one = ndbFile(blobs.slice(0, 1));
    const bdbDir = join(dir, 'bdb-choice');
    mkdirSync(bdbDir);
    bdbLoad(join(bdbDir, 'Packages'), blobs.slice(1, 2));
    const bdb = readFileSync(join(bdbDir, 'Packages'));
    expect(rpmPackages({ sqlite: sqliteFile(), ndb: one, bdb })).toMatchObject({ backend: 'sqlite', packages: { length: oracle.length } });
    expect(rpmPackages({ ndb: one, bdb })).toMatchObject({ backend: 'ndb', packages: [expect.anything()] });
    expect(rpmPackages({ bdb })).toMatchObject({ backend: 'bdb', packages: [expect.anything()] });
    expect(rpmPackages({})).toEqual({ packages: [], error: expect.stringContaining('no rpm database') });
  });
});

describe('rpmVersionCompare', () => {
  it('orders versions as rpm.vercmp does', () => {
    // rpm.vercmp parses epoch:version-release, so no ':' or '-' here (nor an empty version, which it refuses).
    const versions = [
      '1.0',
      '1.0.0',
      '1',
      '1.a',
      '1.0a',
      '1.0~rc1',
      '1.0~rc2',
      '1.0~',
      '1.0^git1',
      '1.0^',
      '2.0',
      '10',
      '9',
      '010',
      '1_0',
      'a',
      'b',
      'A',
      '1..0',
      'fc40',
      '5.10~rc7',
    ];
    const pairs = versions.flatMap((a) => versions.map((b) => [a, b] as const));
    const lua = pairs.map(([a, b]) => `print(rpm.vercmp(${JSON.stringify(a)}, ${JSON.stringify(b)}) .. " ")`).join(' ');
    const rpmSays = run('rpm', ['--eval', `%{lua: ${lua}}`])
      .trim()
      .split(/\s+/)
      .map(Number);
    expect(pairs.map(([a, b]) => rpmVersionCompare(a, b))).toEqual(rpmSays);
  });
});

describe('Pieces', () => {
  it('reads across pieces as the joined bytes would (fixed seeds)', () => {
    let seed = 7;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let round = 0; round < 200; round++) {
      const source = Buffer.from(Array.from({ length: 64 }, () => random(4)));
      const value = new Pieces();
      const parts: Buffer[] = [];
      for (let i = random(5); i >= 0; i--) {
        const from = random(64);
        const length = random(65 - from);
        value.push(source, from, length);
        parts.push(source.subarray(from, from + length));
      }
      const joined = Buffer.concat(parts);
      const a = random(joined.length + 1);
      const b = a + random(joined.length - a + 1);
      expect(value.bytes(a, b - a)).toEqual(joined.subarray(a, b));
      expect(value.indexOf(0, a, b)).toBe(joined.subarray(a, b).indexOf(0) < 0 ? -1 : a + joined.subarray(a, b).indexOf(0));
      expect(value.slice(a, b)!.bytes(0, b - a)).toEqual(joined.subarray(a, b));
      expect(value.bytes(a, joined.length - a + 1)).toBeUndefined();
    }
  });
});
