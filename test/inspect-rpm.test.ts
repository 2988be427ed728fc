// rpm systems through the whole inspection: roots made with mkfs.ext4 -d whose package
// databases rpm itself wrote (rpmbuild, rpm -i --justdb), read from the image and parsed
// on the host. rpm -qa on the same database is the oracle. A Fedora root keeps it in
// /usr/lib/sysimage/rpm with /var/lib/rpm a symlink to it (rpm 4.16+); an EL7 root keeps
// Berkeley DB's Packages in /var/lib/rpm and has only release files; a third root's
// database is damaged: its error is said for that OS, and everything else still comes back.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspect, type OperatingSystem } from '../src/inspect/index.js';
import { bdbLoad, installFixture, rpmQueryAll, sqliteBlobs } from './helpers/rpmdb.js';
import { SHARED_CACHE } from './helpers/shared-cache.js';

let work: string;
let dbpath: string;
const images: string[] = [];

function root(name: string, files: Record<string, string>, rpm: (dir: string) => void): string {
  const dir = join(work, name);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  mkdirSync(join(dir, 'bin'), { recursive: true });
  copyFileSync('/bin/ls', join(dir, 'bin/ls'));
  rpm(dir);
  const img = join(work, `${name}.img`);
  const r = spawnSync('mkfs.ext4', ['-q', '-d', dir, img, '64M'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return img;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'appliance-inspect-rpm-'));
  dbpath = join(work, 'db');
  mkdirSync(dbpath);
  installFixture(work, dbpath);
  const fstab = '/dev/sda / ext4 defaults 0 1\n';
  images.push(
    root(
      'fedora',
      {
        '/etc/fstab': fstab,
        '/etc/os-release': 'NAME="Fedora Linux"\nVERSION_ID=39\nID=fedora\nPRETTY_NAME="Fedora Linux 39 (Container Image)"\n',
        '/etc/fedora-release': 'Fedora release 39 (Thirty Nine)\n',
        // dnf's program: libguestfs says dnf for Fedora 22+ only where it is there (yum otherwise).
        '/usr/bin/dnf': '#!/usr/bin/python3\n',
      },
      (dir) => {
        mkdirSync(join(dir, 'usr/lib/sysimage/rpm'), { recursive: true });
        copyFileSync(join(dbpath, 'rpmdb.sqlite'), join(dir, 'usr/lib/sysimage/rpm/rpmdb.sqlite'));
        mkdirSync(join(dir, 'var/lib'), { recursive: true });
        symlinkSync('../../usr/lib/sysimage/rpm', join(dir, 'var/lib/rpm'));
      },
    ),
    root('centos', { '/etc/fstab': fstab, '/etc/redhat-release': 'CentOS Linux release 7.9.2009 (Core)\n' }, (dir) => {
      mkdirSync(join(dir, 'var/lib/rpm'), { recursive: true });
      bdbLoad(join(dir, 'var/lib/rpm/Packages'), sqliteBlobs(join(dbpath, 'rpmdb.sqlite')));
    }),
    root('damaged', { '/etc/fstab': fstab, '/etc/redhat-release': 'Red Hat Enterprise Linux release 9.4 (Plow)\n' }, (dir) => {
      mkdirSync(join(dir, 'var/lib/rpm'), { recursive: true });
      const db = readFileSync(join(dbpath, 'rpmdb.sqlite'));
      // The pages after the first two torn out: sqlite's header stands, its tables do not.
      writeFileSync(join(dir, 'var/lib/rpm/rpmdb.sqlite'), Buffer.concat([db.subarray(0, 8192), Buffer.alloc(db.length - 8192, 0xa5)]));
    }),
  );
}, 180_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('rpm systems, inspected', () => {
  it('packages from sqlite (through /var/lib/rpm → /usr/lib/sysimage/rpm) and Berkeley DB, as rpm -qa lists them; a damaged database is that OS’s error', async () => {
    await using img = await inspect(images, { cacheDir: SHARED_CACHE });
    const oses = await img.os({ packages: true });
    const by = (disk: number) => oses.find((o) => o.root === `disk${disk}`)!;
    const expected = rpmQueryAll(dbpath)
      .map((p) => `${p.name} ${p.epoch}:${p.version}-${p.release} ${p.arch}`)
      .sort();
    const listed = (os: OperatingSystem) => (os.packages ?? []).map((p) => `${p.name} ${p.epoch}:${p.version}-${p.release} ${p.arch}`).sort();

    expect(by(0)).toMatchObject({ distro: 'fedora', version: { major: 39, minor: 0 }, packageFormat: 'rpm', packageManagement: 'dnf' });
    expect(listed(by(0))).toEqual(expected);
    expect(by(0).packagesError).toBeUndefined();
    expect(by(0).packages!.find((p) => p.name === 'beta')).toMatchObject({ summary: 'Zürich ☃ beta', description: 'Line one.\nLine two: ünïcode.' });

    expect(by(1)).toMatchObject({ distro: 'centos', version: { major: 7, minor: 9 }, packageFormat: 'rpm', packageManagement: 'yum' });
    expect(listed(by(1))).toEqual(expected);

    expect(by(2)).toMatchObject({ distro: 'rhel', version: { major: 9, minor: 4 }, packageFormat: 'rpm', arch: 'x86_64' });
    expect(by(2).packagesError).toMatch(/^rpm sqlite database: /);
    expect(by(2).packagesError!.length).toBeLessThan(300);
  });

  it('the command prints each OS’s packages, and a damaged database’s error in its place, with exit status 0', () => {
    const r = spawnSync(process.execPath, [resolve('dist/src/bin.cjs'), 'inspect', '--packages', ...images, '--cache-dir', SHARED_CACHE], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ {2}alpha 2:1\.2-3 x86_64$/m);
    expect(r.stdout).toMatch(/^ {2}packages: rpm sqlite database: /m);
  });
});
