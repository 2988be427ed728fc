import { mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executableSearchPath, findExecutable, scriptInterpreters } from '../src/host/which.js';
import { FileList, guestKey } from '../src/appliance/filelist.js';

let dir: string;
beforeAll(() => {
  // A usrmerge-like tree: bin -> usr/bin, a library soname link, an absolute link, a loop.
  dir = mkdtempSync(join(tmpdir(), 'filelist-test-'));
  mkdirSync(join(dir, 'usr', 'bin'), { recursive: true });
  mkdirSync(join(dir, 'usr', 'lib'), { recursive: true });
  writeFileSync(join(dir, 'usr', 'bin', 'tool'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  writeFileSync(join(dir, 'usr', 'lib', 'libx.so.1.2'), 'lib');
  symlinkSync('usr/bin', join(dir, 'bin'));
  symlinkSync('libx.so.1.2', join(dir, 'usr', 'lib', 'libx.so.1'));
  symlinkSync(join(dir, 'usr', 'lib', 'libx.so.1'), join(dir, 'abs-link'));
  symlinkSync('loop-b', join(dir, 'loop-a'));
  symlinkSync('loop-a', join(dir, 'loop-b'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const g = (p: string) => guestKey(join(dir, p));

describe('FileList', () => {
  it('keeps every symlink on the way and what it points to', () => {
    const files = new FileList();
    expect(files.addHostPath(join(dir, 'bin', 'tool'))).toBe('added');
    expect(files.entries.get(g('bin'))).toMatchObject({ type: 'symlink', target: 'usr/bin' });
    expect(files.entries.get(g('usr/bin'))?.type).toBe('dir');
    expect(files.entries.get(g('usr/bin/tool'))).toMatchObject({
      type: 'file',
      mode: 0o755,
      size: 18,
      source: { kind: 'host', path: join(dir, 'usr/bin/tool') },
    });
    // The parents are there too, down to the root.
    expect(files.entries.get('')?.type).toBe('dir');
    expect(files.entries.get(g('usr'))?.type).toBe('dir');
    expect(files.hostOf.get(g('usr/bin/tool'))).toBe(join(dir, 'usr/bin/tool'));
  });

  it('follows chains of links, relative and absolute', () => {
    const files = new FileList();
    expect(files.addHostPath(join(dir, 'abs-link'))).toBe('added');
    expect(files.entries.get(g('abs-link'))).toMatchObject({ type: 'symlink', target: readlinkSync(join(dir, 'abs-link')) });
    expect(files.entries.get(g('usr/lib/libx.so.1'))?.type).toBe('symlink');
    expect(files.entries.get(g('usr/lib/libx.so.1.2'))?.type).toBe('file');
  });

  it('reports missing paths, and skips a symlink loop with one warning', () => {
    const warnings: string[] = [];
    const files = new FileList((m) => warnings.push(m));
    expect(files.addHostPath(join(dir, 'nope', 'x'))).toBe('missing');
    expect(files.addHostPath(join(dir, 'loop-a'))).toBe('unreadable');
    expect(files.addHostPath(join(dir, 'loop-a'))).toBe('unreadable');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/too many levels of symbolic links/);
    expect(files.skipped).toHaveLength(1);
  });

  it("mirrors Debian 12's /bin -> usr/bin for a real program", () => {
    const files = new FileList();
    files.addHostPath('/bin/ls');
    expect(files.entries.get('bin')).toMatchObject({ type: 'symlink', target: 'usr/bin' });
    expect(files.entries.get('usr/bin/ls')?.type).toBe('file');
  });

  it("places made-up entries through the image's own symlinks, creating missing folders", () => {
    const files = new FileList();
    files.addHostPath('/bin/ls');
    files.addEntry({ path: '/bin/extra', type: 'file', mode: 0o755, uid: 0, gid: 0, mtime: 5, size: 1, source: { kind: 'bytes', data: new Uint8Array([1]) } });
    expect(files.entries.has('usr/bin/extra')).toBe(true);
    files.addEntry({
      path: '/opt/new/deep/file',
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtime: 5,
      size: 0,
      source: { kind: 'bytes', data: new Uint8Array() },
    });
    expect(files.entries.get('opt/new')).toMatchObject({ type: 'dir', mode: 0o755 });
    expect(() => files.addEntry({ path: '/usr/bin/ls/below', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 5 })).toThrow(/is a file in the image/);
  });

  it('gives folders one time, the latest of the files', () => {
    const files = new FileList();
    files.addHostPath(join(dir, 'bin', 'tool'));
    const latest = files.latestFileTime();
    files.setFolderTimes(latest);
    for (const e of files.entries.values()) if (e.type === 'dir') expect(e.mtime).toBe(latest);
  });
});

describe('programs', () => {
  it('finds executables on $PATH, then in the sbin folders', () => {
    expect(findExecutable('ls', executableSearchPath('/usr/bin'))).toBe('/usr/bin/ls');
    expect(findExecutable('blkid', executableSearchPath('/nonexistent'))).toMatch(/\/s?bin\/blkid$/);
    expect(findExecutable('no-such-program-here', executableSearchPath())).toBeUndefined();
    expect(findExecutable(join(dir, 'usr/lib/libx.so.1.2'), [])).toBeUndefined(); // not executable
  });

  it("reads a script's interpreter, through env too", () => {
    const s1 = join(dir, 's1');
    const s2 = join(dir, 's2');
    writeFileSync(s1, '#!/bin/sh -e\n');
    writeFileSync(s2, '#! /usr/bin/env -S python3 -u\n');
    expect(scriptInterpreters(s1)).toEqual(['/bin/sh']);
    expect(scriptInterpreters(s2)).toEqual(['/usr/bin/env', 'python3']);
    expect(scriptInterpreters('/usr/bin/ls')).toEqual([]);
  });
});
