import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAppliance, type BuildOptions } from '../src/appliance/index.js';

const CLI = 'dist/src/bin.cjs';
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'build-test-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const debugfs = (image: string, cmd: string) => execFileSync('debugfs', ['-R', cmd, image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });

/** A small appliance: one program, no modules, fast to build. */
const small = (cacheDir: string, extra: Partial<BuildOptions> = {}): BuildOptions => ({
  binaries: ['true'],
  modules: [],
  cacheDir,
  warn: () => {},
  ...extra,
});

describe('default appliance', () => {
  it('builds, checks clean, holds the inspection tools, stays under 50 MB; the second build is a hit', async () => {
    const cacheDir = join(dir, 'default');
    const logs: string[] = [];
    const first = await buildAppliance({ cacheDir, log: (m) => logs.push(m) });
    expect(first.cacheHit).toBe(false);
    for (const f of [first.kernel, first.initrd, first.root, join(first.dir, 'manifest.json')]) expect(existsSync(f)).toBe(true);
    const fsck = spawnSync('e2fsck', ['-fn', first.root], { encoding: 'utf8' });
    expect(fsck.status, fsck.stdout + fsck.stderr).toBe(0);

    const m = first.manifest;
    expect(m.key).toBe(first.key);
    expect(m.kernel.sha256).toBe(sha(first.kernel));
    expect(m.initrd.sha256).toBe(sha(first.initrd));
    expect(m.root.uuid).toBe(execFileSync('blkid', ['-s', 'UUID', '-o', 'value', first.root], { encoding: 'utf8' }).trim());
    // 44 MB on Debian 12: the inspection tools weigh most of it (libcrypto for cryptsetup
    // 4.7 MB, lvm 3.2 MB, xfs.ko 4.2 MB, btrfs.ko 3.9 MB). A bound, so growth is a decision.
    expect(m.root.contentBytes).toBeLessThan(50e6);
    console.log(
      `default appliance: ${m.root.files} files, ${(m.root.contentBytes / 1e6).toFixed(2)} MB of content, image ${(m.root.size / 1e6).toFixed(1)} MB`,
    );
    expect(logs.some((l) => l.startsWith('kernel: '))).toBe(true);

    const names = new Set(m.binaries.map((b) => b.name));
    for (const p of ['sh', 'ls', 'mount', 'umount', 'blkid', 'lsblk', 'sfdisk', 'mke2fs', 'e2fsck', 'find', 'sha256sum', 'tar', 'modprobe'])
      expect(names).toContain(p);
    // What inspection uses in the guest (the list: lvm2, btrfs-progs, xfsprogs, dmesg, dm-mod, loop).
    for (const p of ['lvm', 'dmsetup', 'mdadm', 'cryptsetup', 'btrfs', 'xfs_db', 'xfs_repair', 'dmesg', 'losetup', 'ntfs-3g']) expect(names).toContain(p);
    expect(debugfs(first.root, 'stat /usr/libexec/appliance/inspect')).toMatch(/Mode:\s+0755/);
    // usrmerge links, the agent, the mount points, the on-demand modules and their index.
    const root = debugfs(first.root, 'ls -l /');
    expect(root).toMatch(/120777.* bin\n/);
    expect(debugfs(first.root, 'stat /bin')).toMatch(/Fast link dest: "usr\/bin"/);
    expect(debugfs(first.root, 'stat /usr/libexec/appliance/agent')).toMatch(/Mode:\s+0755/);
    for (const mp of ['proc', 'sys', 'dev', 'tmp', 'run', 'root']) expect(root).toContain(` ${mp}\n`);
    expect(debugfs(first.root, 'stat /var/tmp')).toMatch(/Mode:\s+01777/);
    const modDir = `/usr/lib/modules/${first.kernelVersion}`;
    expect(debugfs(first.root, `ls ${modDir}`)).toContain('modules.dep.bin');
    expect(debugfs(first.root, `ls ${modDir}/kernel/fs/xfs`)).toContain('xfs.ko');
    expect(m.root.modules).toEqual(
      expect.arrayContaining(['xfs', 'btrfs', 'vfat', 'isofs', 'squashfs', 'libcrc32c', 'dm_mod', 'dm_crypt', 'md_mod', 'raid1', 'loop', 'fuse']),
    );
    // ld.so and libc came with the programs.
    expect(debugfs(first.root, 'ls /usr/lib/x86_64-linux-gnu')).toContain('libc.so.6');

    // How fast a hit is: bench/build.ts measures it (timing budgets do not belong in correctness tests).
    const second = await buildAppliance({ cacheDir });
    expect(second.cacheHit).toBe(true);
    expect(second.key).toBe(first.key);
    expect(second.dir).toBe(first.dir);
  });
});

describe('cache keys', () => {
  it('an included file changed or added means a new key; unchanged means a hit', async () => {
    const cacheDir = join(dir, 'invalidate');
    const inc = join(dir, 'inc');
    mkdirSync(inc);
    writeFileSync(join(inc, 'config'), 'one');
    const opts = small(cacheDir, { includes: [{ host: inc, guest: '/etc/inc' }] });

    const a = await buildAppliance(opts);
    expect(a.cacheHit).toBe(false);
    expect((await buildAppliance(opts)).cacheHit).toBe(true);
    expect(debugfs(a.root, 'cat /etc/inc/config')).toBe('one');

    writeFileSync(join(inc, 'config'), 'two!');
    const b = await buildAppliance(opts);
    expect(b.cacheHit).toBe(false);
    expect(b.key).not.toBe(a.key);
    expect(debugfs(b.root, 'cat /etc/inc/config')).toBe('two!');

    writeFileSync(join(inc, 'added'), 'new file');
    const c = await buildAppliance(opts);
    expect(c.cacheHit).toBe(false);
    expect(debugfs(c.root, 'cat /etc/inc/added')).toBe('new file');

    // Other options, other key; the same options again, a hit.
    const d = await buildAppliance({ ...opts, squashOwner: false });
    expect(d.key).not.toBe(c.key);
    expect((await buildAppliance(opts)).key).toBe(c.key);
  });

  it('a hard link made outside the appliance keeps its key; two of its files linked together make a new one', async () => {
    const cacheDir = join(dir, 'links');
    const inc = join(dir, 'links-inc');
    mkdirSync(inc);
    writeFileSync(join(inc, 'a'), 'same');
    writeFileSync(join(inc, 'b'), 'same');
    const opts = small(cacheDir, { includes: [{ host: inc, guest: '/etc/inc' }] });
    const first = await buildAppliance(opts);
    const inodeIn = (root: string, path: string) => /Inode: (\d+)/.exec(debugfs(root, `stat ${path}`))?.[1];
    expect(inodeIn(first.root, '/etc/inc/b')).not.toBe(inodeIn(first.root, '/etc/inc/a'));

    // Another program links a file of the appliance (as perf's build-id cache does).
    linkSync(join(inc, 'a'), join(dir, 'links-elsewhere'));
    const again = await buildAppliance(opts);
    expect(again.cacheHit).toBe(true);
    expect(again.key).toBe(first.key);

    // b becomes a link to a: the image has one inode for both now.
    rmSync(join(inc, 'b'));
    linkSync(join(inc, 'a'), join(inc, 'b'));
    const linked = await buildAppliance(opts);
    expect(linked.key).not.toBe(first.key);
    expect(inodeIn(linked.root, '/etc/inc/a')).toBeDefined();
    expect(inodeIn(linked.root, '/etc/inc/b')).toBe(inodeIn(linked.root, '/etc/inc/a'));
    expect(debugfs(linked.root, 'stat /etc/inc/a')).toMatch(/Links: 2\b/);
  });

  it('--strict sees a content change that keeps size and mtime', async () => {
    const cacheDir = join(dir, 'strict');
    const file = join(dir, 'strict.txt');
    const t = new Date(Date.UTC(2024, 0, 1));
    writeFileSync(file, 'aaaa');
    utimesSync(file, t, t);
    const plain = small(cacheDir, { includes: [{ host: file, guest: '/strict.txt' }] });
    const strict = { ...plain, strict: true };
    const [p1, s1] = [await buildAppliance(plain), await buildAppliance(strict)];
    writeFileSync(file, 'bbbb');
    utimesSync(file, t, t);
    // Without --strict the cache trusts size, mtime and inode (all unchanged); with it, the content.
    expect((await buildAppliance(plain)).key).toBe(p1.key);
    const s2 = await buildAppliance(strict);
    expect(s2.cacheHit).toBe(false);
    expect(s2.key).not.toBe(s1.key);
    expect(debugfs(s2.root, 'cat /strict.txt')).toBe('bbbb');
  });

  it('two builds of the same inputs in different cache folders give byte-identical root.ext2 and initrd', async () => {
    const opts = { binaries: ['true', 'ls'], modules: ['xfs'], warn: () => {} };
    const a = await buildAppliance({ ...opts, cacheDir: join(dir, 'repro-a') });
    const b = await buildAppliance({ ...opts, cacheDir: join(dir, 'repro-b') });
    expect(a.cacheHit || b.cacheHit).toBe(false);
    expect(b.key).toBe(a.key);
    expect(sha(b.root)).toBe(sha(a.root));
    expect(sha(b.initrd)).toBe(sha(a.initrd));
    expect(sha(b.kernel)).toBe(sha(a.kernel));
  });
});

describe('appliance build (CLI)', () => {
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });

  it('shows progress on stderr when it is a terminal, and nothing when it is not', () => {
    const quiet = run(['build', '--binaries', 'true', '--modules', '', '--cache-dir', join(dir, 'quiet')]);
    expect(quiet.status, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe('');
    // `script` gives the CLI a terminal; the progress line is redrawn in place with \r.
    const cmd = `${process.execPath} ${CLI} build --binaries true --modules '' --cache-dir ${join(dir, 'tty')}`;
    const tty = spawnSync('script', ['-qfec', cmd, '/dev/null'], { encoding: 'utf8' });
    expect(tty.status, tty.stdout).toBe(0);
    expect(tty.stdout).toMatch(/root\.ext2: \d+\/\d+ files, [\d.]+ [KMG]?i?B of [\d.]+ [KMG]iB/);
  });

  it('another checkout of the same version, on the same cache, builds its own guest programs: a record of ours never answers for its files', () => {
    const cacheDir = join(dir, 'two-checkouts');
    const args = ['build', '--binaries', 'true', '--modules', '', '--cache-dir', cacheDir, '--verbose'];
    expect(run(args).status).toBe(0);
    // A copy of this checkout whose agent differs by one comment (as two working trees do).
    const other = join(dir, 'other-checkout');
    mkdirSync(other);
    for (const part of ['package.json', 'dist', 'src']) execFileSync('cp', ['-r', part, join(other, part)]);
    symlinkSync(resolve('node_modules'), join(other, 'node_modules'));
    writeFileSync(join(other, 'src/guest/c/agent/main.c'), `/* another checkout */\n${readFileSync('src/guest/c/agent/main.c', 'utf8')}`);
    const theirs = spawnSync(process.execPath, [join(other, CLI), ...args], { encoding: 'utf8' });
    expect(theirs.status, theirs.stderr).toBe(0);
    expect(theirs.stderr).not.toMatch(/cache hit/);
    expect(theirs.stdout).not.toBe(run(args).stdout);
    // Each is then a hit for itself.
    expect(spawnSync(process.execPath, [join(other, CLI), ...args], { encoding: 'utf8' }).stderr).toMatch(/cache hit/);
    expect(run(args).stderr).toMatch(/cache hit/);
  });

  it('prints the folder, or JSON; cache ls lists it; cache clear empties it', () => {
    const cacheDir = join(dir, 'cli');
    const first = run(['build', '--binaries', 'true', '--modules', '', '--cache-dir', cacheDir, '--json']);
    expect(first.status, first.stderr).toBe(0);
    const a = JSON.parse(first.stdout) as { dir: string; cacheHit: boolean; key: string; manifest: { root: { files: number } } };
    expect(a.cacheHit).toBe(false);
    const second = run(['build', '--binaries=true', '--modules=', '--verbose'], { APPLIANCE_CACHE_DIR: cacheDir });
    expect(second.status, second.stderr).toBe(0);
    expect(second.stdout).toBe(`${a.dir}\n`);
    expect(second.stderr).toMatch(/cache hit/);

    const ls = run(['cache', 'ls', '--json', '--cache-dir', cacheDir]);
    expect(JSON.parse(ls.stdout).entries.map((e: { key: string }) => e.key)).toEqual([a.key]);
    const clear = run(['cache', 'clear', '--cache-dir', cacheDir]);
    expect(clear.status).toBe(0);
    expect(existsSync(a.dir)).toBe(false);
  });

  it('says clearly what is wrong: an unknown program, an unknown package, an unsafe cache folder', () => {
    const cacheDir = join(dir, 'cli-errors');
    const bin = run(['build', '--binaries', 'no-such-program-xyz', '--cache-dir', cacheDir]);
    expect(bin.status).toBe(1);
    expect(bin.stderr).toMatch(/^appliance: program "no-such-program-xyz" of binaries \(--binaries\) is not found/);
    const pkg = run(['build', '--packages', 'no-such-package-xyz', '--cache-dir', cacheDir]);
    expect(pkg.stderr).toMatch(/package "no-such-package-xyz" is not installed/);
    const open = join(dir, 'world-writable');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const unsafe = run(['build', '--cache-dir', open]);
    expect(unsafe.status).toBe(1);
    expect(unsafe.stderr).toMatch(/writable by others/);
  });

  it('skips an unreadable host file with one warning, and builds', () => {
    // Run as nobody, so that a root-only file is really unreadable.
    const inc = join(dir, 'unreadable');
    mkdirSync(inc);
    writeFileSync(join(inc, 'secret'), 'x');
    chmodSync(join(inc, 'secret'), 0o600);
    writeFileSync(join(inc, 'public'), 'y');
    chmodSync(inc, 0o755);
    chmodSync(dir, 0o755);
    const cacheDir = join(dir, 'nobody-cache');
    mkdirSync(cacheDir, { mode: 0o700 });
    chownSync(cacheDir, 65534, 65534);
    const res = spawnSync(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        process.execPath,
        CLI,
        'build',
        '--binaries',
        'true',
        '--modules',
        '',
        '--include',
        `${inc}:/data`,
        '--cache-dir',
        cacheDir,
        '--json',
      ],
      { encoding: 'utf8', env: { ...process.env, HOME: cacheDir } },
    );
    expect(res.status, res.stderr).toBe(0);
    const warnings = res.stderr.split('\n').filter((l) => l.includes('warning'));
    expect(warnings).toEqual([`appliance: warning: skipping unreadable host file ${join(inc, 'secret')} (EACCES)`]);
    const a = JSON.parse(res.stdout) as { root: string; manifest: { skipped: string[] } };
    expect(a.manifest.skipped).toEqual([`${join(inc, 'secret')}: EACCES`]);
    expect(debugfs(a.root, 'ls /data')).not.toContain('secret');
    expect(debugfs(a.root, 'cat /data/public')).toBe('y');
  });
});
