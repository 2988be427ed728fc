import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_EXCLUDES, dependencyClosure, findInstalled, isExcluded, packageFiles, readDpkgDatabase } from '../src/host/dpkg.js';
import { listDpkgPackages, parseDpkgStatus } from '../src/formats/dpkg-status.js';
import { readFileSync } from 'node:fs';

// A small dpkg database: alternatives, virtual packages, arch qualifiers, Pre-Depends,
// a removed package (config-files), a Multi-Arch: same list name, a diversion.
const STATUS = `Package: dpkg
Status: install ok installed
Architecture: amd64
Version: 1.21

Package: app
Status: install ok installed
Architecture: amd64
Version: 1.0
Pre-Depends: early (>= 2)
Depends: missing-one | alt-two, virtual-mta,
 libthing:any (>= 1.0~), not-installed
Description: an app
 with a long description
 Depends: not-a-field

Package: early
Status: install ok installed
Architecture: amd64
Version: 2

Package: alt-two
Status: hold ok installed
Architecture: all
Version: 3

Package: postfix
Status: install ok installed
Architecture: amd64
Provides: virtual-mta, mail-transport-agent (= 1)
Version: 4

Package: libthing
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 5

Package: libthing
Status: install ok installed
Architecture: i386
Multi-Arch: same
Version: 5

Package: not-installed
Status: deinstall ok config-files
Architecture: amd64
Version: 6

Package: unrelated
Status: install ok installed
Architecture: amd64
Depends: app
Version: 7
`;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dpkg-test-'));
  mkdirSync(join(dir, 'info'));
  writeFileSync(join(dir, 'status'), STATUS);
  writeFileSync(
    join(dir, 'info', 'app.list'),
    '/.\n/usr\n/usr/bin\n/usr/bin/app\n/usr/share/doc/app/copyright\n/usr/share/man/man1/app.1.gz\n/usr/share/locale/de/LC_MESSAGES/app.mo\n/usr/share/app/data\n/usr/share/docs-not-excluded\n',
  );
  writeFileSync(join(dir, 'info', 'libthing:amd64.list'), '/usr/lib/x86_64-linux-gnu/libthing.so.1\n');
  writeFileSync(join(dir, 'info', 'libthing:i386.list'), '/usr/lib/i386-linux-gnu/libthing.so.1\n');
  writeFileSync(join(dir, 'info', 'postfix.list'), '/usr/sbin/sendmail\n');
  writeFileSync(join(dir, 'diversions'), '/usr/sbin/sendmail\n/usr/sbin/sendmail.postfix\napp\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('dpkg database', () => {
  it('indexes installed packages only, with dependencies, provides and the native architecture', () => {
    const db = readDpkgDatabase(dir);
    expect(db.nativeArch).toBe('amd64');
    expect(db.byName.has('not-installed')).toBe(false);
    expect(db.byName.get('libthing')!.map((p) => p.arch)).toEqual(['amd64', 'i386']);
    const app = db.byName.get('app')![0]!;
    // Pre-Depends first; the continuation line is part of Depends; the Description's "Depends:" is not.
    expect(app.depends).toEqual([['early'], ['missing-one', 'alt-two'], ['virtual-mta'], ['libthing:any'], ['not-installed']]);
    expect(db.providers.get('mail-transport-agent')!.map((p) => p.name)).toEqual(['postfix']);
  });

  it('resolves names: native architecture first, explicit qualifiers, virtual packages', () => {
    const db = readDpkgDatabase(dir);
    expect(findInstalled(db, 'libthing')!.arch).toBe('amd64');
    expect(findInstalled(db, 'libthing:i386')!.arch).toBe('i386');
    expect(findInstalled(db, 'libthing:any')!.arch).toBe('amd64');
    expect(findInstalled(db, 'virtual-mta')!.name).toBe('postfix');
    expect(findInstalled(db, 'not-installed')).toBeUndefined();
  });

  it('takes the closure over Pre-Depends and Depends, first installed alternative, providers', () => {
    const db = readDpkgDatabase(dir);
    const closure = dependencyClosure(db, ['app']);
    expect(closure.packages.map((p) => `${p.name}:${p.arch}`)).toEqual(['alt-two:all', 'app:amd64', 'early:amd64', 'libthing:amd64', 'postfix:amd64']);
    expect(closure.unsatisfied).toEqual([{ from: 'app', group: ['not-installed'] }]);
  });

  it('refuses a package that is not installed, naming it', () => {
    const db = readDpkgDatabase(dir);
    expect(() => dependencyClosure(db, ['nope'])).toThrow(/package "nope" is not installed/);
  });

  it('lists files without documentation, man pages and locales, following Multi-Arch list names and diversions', () => {
    const db = readDpkgDatabase(dir);
    const app = db.byName.get('app')![0]!;
    expect(packageFiles(db, app)).toEqual(['/usr', '/usr/bin', '/usr/bin/app', '/usr/share/app/data', '/usr/share/docs-not-excluded']);
    expect(packageFiles(db, db.byName.get('libthing')![1]!)).toEqual(['/usr/lib/i386-linux-gnu/libthing.so.1']);
    // app diverted postfix's sendmail: postfix's own file is the diverted-to path.
    expect(packageFiles(db, findInstalled(db, 'postfix')!)).toEqual(['/usr/sbin/sendmail', '/usr/sbin/sendmail.postfix']);
    expect(isExcluded('/usr/share/doc', DEFAULT_EXCLUDES)).toBe(true);
    expect(isExcluded('/usr/share/documents', DEFAULT_EXCLUDES)).toBe(false);
  });
});

describe('dpkg database of this host', () => {
  it('gives a closure in which every dependency group is satisfied, as dpkg-query reports them', () => {
    const db = readDpkgDatabase();
    const closure = dependencyClosure(db, ['coreutils', 'e2fsprogs', 'util-linux']);
    const names = new Set(closure.packages.map((p) => p.name));
    // The oracle: dpkg-query's own view of names, Provides and dependencies.
    const rows = execFileSync('dpkg-query', ['-W', '-f', '${Package}\t${Provides}\t${Pre-Depends}, ${Depends}\t${db:Status-Abbrev}\n'], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((line) => line.split('\t'));
    const provided = new Set<string>();
    for (const [name, provides] of rows) {
      if (!names.has(name!)) continue;
      for (const p of provides!.split(',')) if (p.trim()) provided.add(p.trim().split(/[\s(:]/)[0]!);
    }
    for (const [name, , deps, status] of rows) {
      if (!names.has(name!)) continue;
      expect(status!.trim()).toBe('ii');
      for (const group of deps!
        .split(',')
        .map((g) => g.trim())
        .filter(Boolean)) {
        const alts = group.split('|').map((a) => a.trim().split(/[\s(:]/)[0]!);
        const installedAlt = alts.some((a) => rows.some((r) => r[0] === a && r[3]!.trim() === 'ii') || db.providers.has(a));
        if (!installedAlt) continue; // an unsatisfiable optional alternative on this host
        expect(
          alts.some((a) => names.has(a) || provided.has(a)),
          `${name}: ${group}`,
        ).toBe(true);
      }
    }
    expect(names.has('libc6')).toBe(true);
  });

  it("lists a package's files as dpkg -L does, minus the excluded folders", () => {
    const db = readDpkgDatabase();
    const ours = packageFiles(db, findInstalled(db, 'e2fsprogs')!);
    const theirs = execFileSync('dpkg', ['-L', 'e2fsprogs'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l && l !== '/.' && !isExcluded(l, DEFAULT_EXCLUDES));
    expect(ours.sort()).toEqual(theirs.sort());
    expect(ours).toContain('/sbin/mke2fs');
  });

  it('lists the installed packages (name, version, architecture) as dpkg-query does', () => {
    const ours = listDpkgPackages(readFileSync('/var/lib/dpkg/status', 'utf8')).map((p) => `${p.name}\t${p.version}\t${p.arch}`);
    const theirs = execFileSync('dpkg-query', ['-W', '-f', '${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n'], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter((l) => /^.i/.test(l))
      .map((l) => l.split('\t').slice(1).join('\t'));
    expect(ours.length).toBeGreaterThan(100);
    expect(ours.sort()).toEqual(theirs.sort());
  });

  it('lists an image\'s packages by virt-inspector\'s rule (lib/inspect-apps.c): a Status with "installed" in it, and a Version', () => {
    const para = (name: string, status: string, version = '1') =>
      `Package: ${name}\nStatus: ${status}\nArchitecture: amd64\n${version ? `Version: ${version}\n` : ''}\n`;
    const text = [
      para('ok', 'install ok installed'),
      para('held', 'hold ok installed'),
      para('half', 'install reinstreq half-installed'),
      para('unpacked', 'install ok unpacked'),
      para('triggers', 'install ok triggers-pending'),
      para('removed', 'deinstall ok config-files'),
      para('purged', 'purge ok not-installed', ''),
      para('no-version', 'install ok installed', ''),
    ].join('');
    expect(listDpkgPackages(text).map((p) => p.name)).toEqual(['ok', 'held', 'half']);
    // The host's own resolution takes only what is installed whole.
    expect(parseDpkgStatus(text).map((p) => p.name)).toEqual(['ok', 'held', 'no-version']);
  });

  it("gives each package's summary, long description, homepage and source as dpkg-query does (what virt-inspector prints of them)", () => {
    const ours = listDpkgPackages(readFileSync('/var/lib/dpkg/status', 'utf8')).map((p) => ({
      name: p.name,
      summary: p.summary ?? '',
      description: p.description ?? '',
      url: p.url ?? '',
      source: p.source ?? '',
    }));
    const theirs = execFileSync('dpkg-query', ['-W', '-f', '${db:Status-Abbrev}\x1f${Package}\x1f${Description}\x1f${Homepage}\x1f${Source}\x1e'], {
      encoding: 'utf8',
    })
      .split('\x1e')
      .filter((l) => /^.i/.test(l))
      .map((l) => {
        const [, name, description, url, source] = l.split('\x1f') as [string, string, string, string, string];
        const [summary, ...rest] = description.split('\n');
        // Continuation lines lose their first character, as libguestfs keeps them.
        return { name, summary: summary!, description: rest.map((line) => line.slice(1)).join('\n'), url, source: source.split(' ')[0]! };
      });
    const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    expect(ours.filter((p) => p.description).length).toBeGreaterThan(100);
    expect(ours.sort(byName)).toEqual(theirs.sort(byName));
  });
});
