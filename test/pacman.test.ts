// pacman's local database as libguestfs lists it (lib/inspect-apps.c list_applications_pacman):
// the desc format's rules here; virt-inspector's own listing of the same kind of database
// is compared whole in inspect-xml.test.ts (run A's Arch root).
import { describe, expect, it } from 'vitest';
import { parsePacmanDesc } from '../src/formats/pacman-desc.js';
import type { Helper } from '../src/inspect/helper.js';
import { pacmanPackage, packagesOf, packageVersion, readPacmanPackages, splitVersion } from '../src/inspect/packages.js';

const desc = (fields: [string, string][]) => fields.map(([k, v]) => `%${k}%\n${v}\n\n`).join('');

describe("pacman's desc file", () => {
  it('the line after a header is its value; a later header of the same name wins; other sections are skipped', () => {
    const text = desc([
      ['NAME', 'linux'],
      ['VERSION', '6.7.arch1-1'],
      ['DEPENDS', 'coreutils\nkmod\ninitramfs'],
      ['ARCH', 'x86_64'],
      ['NAME', 'linux-renamed'],
    ]);
    expect(parsePacmanDesc(text)).toEqual({ name: 'linux-renamed', version: '6.7.arch1-1', arch: 'x86_64' });
    // Only the first value line counts (a multi-line %DESC% keeps its first line), and a list's items are no headers.
    expect(parsePacmanDesc('%DESC%\nfirst\nsecond\n%ARCH%\nany\n')).toEqual({ desc: 'first', arch: 'any' });
  });

  it('a package: [epoch:]version-release split at the first ":" and the first "-"; name, version with a release and arch required', () => {
    expect(
      pacmanPackage(
        desc([
          ['NAME', 'zlib'],
          ['VERSION', '1:1.3.1-1'],
          ['ARCH', 'x86_64'],
          ['URL', 'https://zlib.net/'],
          ['DESC', 'Compression library'],
        ]),
      ),
    ).toEqual({
      name: 'zlib',
      epoch: 1,
      version: '1.3.1',
      release: '1',
      arch: 'x86_64',
      url: 'https://zlib.net/',
      description: 'Compression library',
    });
    expect(
      pacmanPackage(
        desc([
          ['NAME', 'a'],
          ['VERSION', '1.0-1'],
        ]),
      ),
    ).toBeUndefined(); // no %ARCH%
    expect(
      pacmanPackage(
        desc([
          ['NAME', 'a'],
          ['VERSION', '1.0'],
          ['ARCH', 'any'],
        ]),
      ),
    ).toBeUndefined(); // no release
    expect(
      pacmanPackage(
        desc([
          ['NAME', 'a'],
          ['VERSION', 'x:1.0-1'],
          ['ARCH', 'any'],
        ]),
      ),
    ).toBeUndefined(); // the epoch is no number
    expect(
      pacmanPackage(
        desc([
          ['NAME', 'a'],
          ['VERSION', '1:-1'],
          ['ARCH', 'any'],
        ]),
      ),
    ).toBeUndefined(); // an empty version
    expect(
      pacmanPackage(
        desc([
          ['NAME', 'a'],
          ['VERSION', '1.0-1-2'],
          ['ARCH', 'any'],
        ]),
      ),
    ).toMatchObject({ version: '1.0', release: '1-2' });
  });

  it('deb and apk versions split the same way, apk’s release without its "r"; packageVersion puts them back as the manager writes them', () => {
    expect(splitVersion('1:2.36.1-8+deb12u1')).toEqual({ epoch: 1, version: '2.36.1', release: '8+deb12u1' });
    expect(splitVersion('2.0-1-3')).toEqual({ epoch: 0, version: '2.0', release: '1-3' });
    const [apk] = packagesOf('apk', 'P:musl\nV:1.2.4_git20230717-r4\nA:x86_64\n\n');
    expect(apk).toMatchObject({ name: 'musl', version: '1.2.4_git20230717', release: '4' });
    expect(packageVersion(apk!, 'apk')).toBe('1.2.4_git20230717-r4');
    expect(packageVersion({ name: 'w', epoch: 1, version: '1.21.3', release: '1', arch: 'amd64' }, 'deb')).toBe('1:1.21.3-1');
  });
});

/** The inspect helper's walk and reads over a made-up database: `dirs` package folders, each with a desc. */
function fakeHelper(dirs: number, calls: { reads: number }) {
  return {
    async *walk(_root: string, path: string) {
      yield { kind: 'entry', stat: { path, type: 'dir' } };
      yield { kind: 'entry', stat: { path: `${path}/ALPM_DB_VERSION`, type: 'file' } };
      for (let i = 0; i < dirs; i++) yield { kind: 'entry', stat: { path: `${path}/p${i}-1.0-1`, type: 'dir' } };
    },
    async readFiles(reads: { paths: string[]; limit: number }[]) {
      calls.reads++;
      return reads.map((r) =>
        r.paths.map((p) => {
          const name = /\/(p\d+)-1\.0-1\/desc$/.exec(p)![1]!;
          const text = desc([
            ['NAME', name],
            ['VERSION', '1.0-1'],
            ['DESC', name === 'p7' ? 'x'.repeat(9000) : 'a package'],
            ['ARCH', 'any'],
          ]);
          return Buffer.from(text).subarray(0, r.limit);
        }),
      );
    },
  } as unknown as Helper;
}

describe('readPacmanPackages', () => {
  it('reads the desc of every package folder, in batches; a desc over 8192 bytes is skipped as libguestfs skips it; sorted by name', async () => {
    const calls = { reads: 0 };
    const found = await readPacmanPackages(fakeHelper(2500, calls), '/root');
    expect(calls.reads).toBe(3);
    expect(found).toHaveLength(2499);
    expect(found.some((p) => p.name === 'p7')).toBe(false);
    expect(found.slice(0, 3).map((p) => p.name)).toEqual(['p0', 'p1', 'p10']);
  });

  it('a database with more folders than any system has is refused, not read', async () => {
    await expect(readPacmanPackages(fakeHelper(100_001, { reads: 0 }), '/root')).rejects.toMatchObject({ code: 'EINSPECT' });
  });
});
