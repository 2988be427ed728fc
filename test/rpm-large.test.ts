// A large rpm database: 800 packages of ~60 KB headers (~50 MB of sqlite), built
// by rpmbuild and installed by rpm in the test, and the same headers as Berkeley DB and ndb
// files. The readers must list what rpm -qa lists, and within the inspection's budget
// (`inspect --packages` of an rpm guest in a second, end to end): each parse is timed
// cold, in a process that has not parsed before.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rpmPackages, type RpmDatabaseFiles, type RpmPackage } from '../src/formats/rpm/index.js';
import { bdbLoad, canonical, installJustDb, ndbFile, rpmbuildMany, rpmQueryAll, sqliteBlobs } from './helpers/rpmdb.js';

// 800: headers enough for every page kind and overflow chains; a 2,000-package run (~130 s to build) is a sweep, not a CI test.
const COUNT = 800;
let dir: string;
let dbpath: string;
let oracle: RpmPackage[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rpm-large-'));
  dbpath = join(dir, 'sqlite');
  installJustDb(dbpath, await rpmbuildMany(join(dir, 'build'), COUNT, 5));
  oracle = canonical(rpmQueryAll(dbpath));
}, 600_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The list and how long the parse took, in ms. */
function timed(files: RpmDatabaseFiles): { packages: RpmPackage[]; error?: string; ms: number } {
  const started = performance.now();
  const list = rpmPackages(files);
  return { ...list, ms: performance.now() - started };
}

describe(`a database of ${COUNT} packages`, () => {
  it("sqlite: rpm -qa's list, parsed in well under a second", () => {
    const file = readFileSync(join(dbpath, 'rpmdb.sqlite'));
    expect(file.length).toBeGreaterThan(40e6);
    const cold = timed({ sqlite: file });
    const warm = timed({ sqlite: file });
    console.info(`rpm sqlite database, ${COUNT} packages, ${(file.length / 1e6).toFixed(0)} MB: ${cold.ms.toFixed(0)} ms cold, ${warm.ms.toFixed(0)} ms warm`);
    expect(cold.error).toBeUndefined();
    expect(canonical(cold.packages)).toEqual(oracle);
    expect(cold.ms).toBeLessThan(1000);
  });

  it('Berkeley DB and ndb files of the same headers: the same list, as fast', () => {
    const blobs = sqliteBlobs(join(dbpath, 'rpmdb.sqlite'));
    const bdbDir = join(dir, 'bdb');
    mkdirSync(bdbDir);
    bdbLoad(join(bdbDir, 'Packages'), blobs);
    expect(canonical(rpmQueryAll(bdbDir, 'bdb_ro'))).toEqual(oracle);
    for (const [backend, file] of [
      ['bdb', readFileSync(join(bdbDir, 'Packages'))],
      ['ndb', ndbFile(blobs)],
    ] as const) {
      const cold = timed({ [backend]: file });
      console.info(`rpm ${backend} database, ${COUNT} packages, ${(file.length / 1e6).toFixed(0)} MB: ${cold.ms.toFixed(0)} ms`);
      expect(cold.error).toBeUndefined();
      expect(canonical(cold.packages)).toEqual(oracle);
      expect(cold.ms).toBeLessThan(1000);
    }
  });
});
