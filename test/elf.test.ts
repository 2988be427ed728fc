import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { elfClosure, librarySearchDirs, readElf, readLdSoConf } from '../src/host/elf.js';

/** ldd's answer (the real loader's): the resolved path of every library, and the interpreter. */
function lddPaths(path: string): string[] {
  const out = execFileSync('ldd', [path], { encoding: 'utf8' });
  const paths: string[] = [];
  for (const line of out.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s+(\/\S+)\s+\(/.exec(line);
    if (m) paths.push(m[1]!);
    expect(line).not.toMatch(/not found/);
  }
  return paths;
}

const real = (paths: string[]) => [...new Set(paths.map((p) => realpathSync(p)))].sort();

/** readelf's view of the dynamic section and interpreter. */
function readelf(path: string): { needed: string[]; runpath: string[]; rpath: string[]; interp?: string } {
  const dyn = execFileSync('readelf', ['-dW', path], { encoding: 'utf8' });
  const pick = (tag: string) => [...dyn.matchAll(new RegExp(`\\(${tag}\\)\\s+.*?\\[(.*)\\]`, 'g'))].map((m) => m[1]!);
  const prog = execFileSync('readelf', ['-lW', path], { encoding: 'utf8' });
  const interp = /Requesting program interpreter: (.*)\]/.exec(prog)?.[1];
  return {
    needed: pick('NEEDED'),
    runpath: pick('RUNPATH').flatMap((s) => s.split(':')),
    rpath: pick('RPATH').flatMap((s) => s.split(':')),
    interp,
  };
}

let dir: string;
beforeAll(() => {
  // A program whose library sits in $ORIGIN/../lib, found through RUNPATH (new dtags)
  // and through RPATH (old dtags), and a library that itself needs libm.
  dir = mkdtempSync(join(tmpdir(), 'elf-test-'));
  mkdirSync(join(dir, 'lib'));
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'thing.c'), '#include <math.h>\ndouble thing(double x) { return sqrt(x); }\n');
  writeFileSync(join(dir, 'main.c'), 'double thing(double);\nint main(void) { return (int)thing(4.0) - 2; }\n');
  execFileSync('gcc', ['-shared', '-fPIC', '-o', join(dir, 'lib', 'libthing.so'), join(dir, 'thing.c'), '-lm']);
  for (const [name, tags] of [
    ['runpath', '--enable-new-dtags'],
    ['rpath', '--disable-new-dtags'],
  ] as const) {
    execFileSync('gcc', ['-o', join(dir, 'bin', name), join(dir, 'main.c'), `-L${join(dir, 'lib')}`, '-lthing', `-Wl,${tags},-rpath,$ORIGIN/../lib`]);
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ELF headers', () => {
  it('reads PT_INTERP, DT_NEEDED, DT_RUNPATH and DT_RPATH as readelf does', () => {
    for (const path of ['/usr/bin/ls', '/usr/sbin/mke2fs', '/usr/lib/x86_64-linux-gnu/libc.so.6', join(dir, 'bin', 'runpath'), join(dir, 'bin', 'rpath')]) {
      const ours = readElf(path)!;
      const theirs = readelf(path);
      expect(ours.needed, path).toEqual(theirs.needed);
      expect(ours.runpath, path).toEqual(theirs.runpath);
      expect(ours.rpath, path).toEqual(theirs.rpath);
      expect(ours.interp, path).toEqual(theirs.interp);
      expect(ours.bits).toBe(64);
    }
  });

  it('returns undefined for files that are not ELF', () => {
    expect(readElf('/etc/passwd')).toBeUndefined();
    expect(readElf(join(dir, 'thing.c'))).toBeUndefined();
    expect(readElf(join(dir, 'no-such-file'))).toBeUndefined();
  });
});

describe('library closure', () => {
  it('finds what the dynamic loader loads (ldd) for system programs', () => {
    const dirs = librarySearchDirs();
    for (const path of ['/usr/bin/ls', '/usr/sbin/mke2fs', '/usr/bin/kmod', '/usr/bin/lsblk', '/usr/bin/tar']) {
      const ours = elfClosure([path], dirs);
      expect(ours.missing).toEqual([]);
      expect(real(ours.files.slice(1)), path).toEqual(real(lddPaths(path)));
    }
  });

  it("expands $ORIGIN in RUNPATH and RPATH, and follows a library's own needs", () => {
    const dirs = librarySearchDirs();
    for (const name of ['runpath', 'rpath']) {
      const path = join(dir, 'bin', name);
      const ours = elfClosure([path], dirs);
      expect(ours.missing).toEqual([]);
      expect(ours.files).toContain(join(dir, 'lib', 'libthing.so'));
      expect(real(ours.files.slice(1))).toEqual(real(lddPaths(path)));
      expect(execFileSync(path).length).toBe(0); // and it does run
    }
  });

  it('reports libraries no folder holds', () => {
    const ours = elfClosure([join(dir, 'bin', 'runpath')], []);
    // Without the system folders, libthing is still found via RUNPATH; libc and libm are not.
    expect(ours.missing.map((m) => m.library).sort()).toEqual(['libc.so.6', 'libm.so.6']);
  });
});

describe('ld.so.conf', () => {
  it('follows include globs in sorted order and skips comments', () => {
    const conf = join(dir, 'ld.so.conf');
    mkdirSync(join(dir, 'ld.so.conf.d'));
    writeFileSync(conf, '# top\n/opt/first\ninclude ld.so.conf.d/*.conf\n/opt/last # trailing comment\n');
    writeFileSync(join(dir, 'ld.so.conf.d', 'b.conf'), '/opt/b1:/opt/b2\n');
    writeFileSync(join(dir, 'ld.so.conf.d', 'a.conf'), '/opt/a\ninclude ' + conf + '\n');
    writeFileSync(join(dir, 'ld.so.conf.d', 'ignored.txt'), '/opt/ignored\n');
    expect(readLdSoConf(conf)).toEqual(['/opt/first', '/opt/a', '/opt/b1', '/opt/b2', '/opt/last']);
  });

  it("lists the host's folders in the order ldconfig -v sees them, then the defaults", () => {
    const dirs = librarySearchDirs();
    const ldconfig = execFileSync('ldconfig', ['-v', '-N', '-X'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .filter((l) => /^\//.test(l))
      .map((l) => l.split(':')[0]!);
    // Every folder ldconfig scans is searched by us, and in the same relative order.
    const ours = ldconfig.map((d) => dirs.indexOf(d));
    expect(ours.every((i) => i >= 0)).toBe(true);
    expect(ours).toEqual([...ours].sort((a, b) => a - b));
  });
});
