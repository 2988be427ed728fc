// "A dirty journal is reported, not replayed; images are never written" (SECURITY.md 7).
//
// Three images with a REAL log to replay, made the way a machine that lost its power makes
// them: an appliance VM mounts each read-write, writes and deletes files, unmounts (so
// that state is on disk in place), mounts again, creates after.txt and removes gone.txt,
// fsyncs (ext4: a jbd2 commit; xfs: a log force; btrfs: a log tree) and is reset at once
// (sysrq b, EGUESTDIED): the last changes are only in the journal or the log, never
// checkpointed. The host's own tools confirm it (dumpe2fs needs_recovery, debugfs
// logdump, e2fsck -fn; xfs_repair -n; btrfs dump-super log_root).
//
// inspect() must then say dirty where the superblock says so (ext4, btrfs; xfs keeps it
// in the log, not the superblock: undefined), mount and read every one, and read what is
// in place and nothing from the log: the same as a reader that does not replay (debugfs
// for ext4, the host kernel with norecovery / nologreplay on a copy for xfs and btrfs),
// and not what a replay gives (e2fsck -fy, a read-write mount, on a copy: after.txt
// appears there, gone.txt goes). Every image's sha256, size and times are the same after.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boot } from '../src/index.js';
import { inspect, type FilesystemInfo, type Inspection } from '../src/inspect/index.js';
import { SHARED_CACHE } from './helpers/shared-cache.js';

interface Ran {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs a host program; its status, never a throw (e2fsck -n exits 4 on what it would fix). */
function sh(cmd: string, args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const status = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 255) : 0;
      resolve({ status, stdout, stderr });
    });
  });
}

async function ok(cmd: string, args: string[]): Promise<string> {
  const r = await sh(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: status ${r.status}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

const sha256 = async (path: string) => (await ok('sha256sum', [path])).split(' ')[0]!;
const stamp = (p: string) => {
  const s = statSync(p, { bigint: true });
  return `${s.size} ${s.mtimeNs} ${s.ctimeNs}`;
};

const KINDS = ['ext4', 'xfs', 'btrfs'] as const;
type Kind = (typeof KINDS)[number];
const BEFORE = 'before: written, then unmounted cleanly (in place)\n';
const GONE = 'gone: removed after the remount (the removal is only in the log)\n';
const AFTER = 'after: created after the remount, fsynced, never checkpointed\n';

/** What a reader sees at the root: names (sorted, lost+found left out) and the content of each file we wrote there. */
interface View {
  names: string[];
  files: Record<string, string | undefined>;
  /** Ours only: why it could not be read. */
  error?: string;
}

let tmp: string;
const img = {} as Record<Kind, string>;
let made: { code?: string; message: string };
let hashes: Map<string, string>;
let stamps: Map<string, string>;
let hostTools: Record<string, Ran>;
/** What readers that never replay see, on the images themselves: debugfs (ext4), xfs_db (xfs names), btrfs restore. */
let oracle: { ext4: View; xfsNames: string[]; btrfs: View };
let hashesAfterTools: Map<string, string>;
let filesystems: FilesystemInfo[];
let ours: Record<Kind, View>;
let ourMounts: string;
let ourRo: string;
let copied: View;
let copiedSingle: string[];
let hashesAfter: Map<string, string>;
const ms: Record<string, number> = {};

async function timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    ms[what] = Math.round(performance.now() - t0);
  }
}

/** The guest's script: a clean state in place, then changes only in the journals, then a reset. */
const SCRIPT = `set -eu
dev() { readlink -f /dev/disk/by-id/virtio-disk$1; }
E=$(dev 0) X=$(dev 1) B=$(dev 2)
mkdir -p /run/t/ext4 /run/t/xfs /run/t/btrfs
mount -t ext4 "$E" /run/t/ext4
mount -t xfs "$X" /run/t/xfs
mount -t btrfs "$B" /run/t/btrfs
for m in ext4 xfs btrfs; do
  printf '%s' '${BEFORE}' > /run/t/$m/before.txt
  printf '%s' '${GONE}' > /run/t/$m/gone.txt
done
umount /run/t/ext4 /run/t/xfs /run/t/btrfs
mount -t ext4 "$E" /run/t/ext4
mount -t xfs "$X" /run/t/xfs
mount -t btrfs "$B" /run/t/btrfs
for m in ext4 xfs btrfs; do
  rm /run/t/$m/gone.txt
  printf '%s' '${AFTER}' > /run/t/$m/after.txt
  sync /run/t/$m/after.txt
done
echo b > /proc/sysrq-trigger
sleep 30
`;

/** The root of a filesystem mounted on the host (a loop device over a copy), as a View. */
function viewOf(dir: string): View {
  const names = readdirSync(dir)
    .filter((n) => n !== 'lost+found')
    .sort();
  const files: Record<string, string | undefined> = {};
  for (const n of ['before.txt', 'gone.txt', 'after.txt']) files[n] = names.includes(n) ? readFileSync(join(dir, n), 'utf8') : undefined;
  return { names, files };
}

/** A copy of `image` mounted on the host with `options` (and -r for a read-only loop), its View. */
async function hostView(image: string, type: Kind, options: string, readOnly: boolean): Promise<View> {
  const copy = join(tmp, `copy-${type}-${readOnly ? 'ro' : 'rw'}.raw`);
  await ok('cp', ['--sparse=always', image, copy]);
  const dev = (await ok('losetup', ['-f', '--show', ...(readOnly ? ['-r'] : []), copy])).trim();
  const mnt = mkdtempSync(join(tmp, 'mnt-'));
  try {
    await ok('mount', ['-t', type, ...(options ? ['-o', options] : []), dev, mnt]);
    try {
      return viewOf(mnt);
    } finally {
      await ok('umount', [mnt]);
    }
  } finally {
    await sh('losetup', ['-d', dev]);
    if (type === 'btrfs') await sh('btrfs', ['device', 'scan', '--forget']);
    rmSync(copy, { force: true });
  }
}

/** What our inspection reads at a filesystem's root. */
async function readRoot(insp: Inspection, id: string): Promise<View> {
  const fs = await insp.mount(id);
  const names = (await fs.readdir('/'))
    .map(String)
    .filter((n) => n !== 'lost+found')
    .sort();
  const files: Record<string, string | undefined> = {};
  for (const n of ['before.txt', 'gone.txt', 'after.txt']) {
    files[n] = await fs.readFile(`/${n}`).then(
      (b) => b.toString('utf8'),
      (e: { code?: string }) => {
        if (e.code !== 'ENOENT') throw e;
        return undefined;
      },
    );
  }
  return { names, files };
}

/** xfs_db's names at the root (it reads the filesystem in place, never the log). */
async function xfsDbNames(image: string): Promise<string[]> {
  // "12   131   regular   0x301083d3  10 before.txt (good)"
  return (await ok('xfs_db', ['-r', '-c', 'ls /', image]))
    .split('\n')
    .map((l) => /^\d+\s+\d+\s+\S+\s+0x[0-9a-f]+\s+\d+ (.*) \((?:good|bad)\)$/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined && n !== '.' && n !== '..')
    .sort();
}

/** btrfs restore's view (user space, never replays the log tree). */
async function btrfsRestoreView(image: string): Promise<View> {
  const out = mkdtempSync(join(tmp, 'restore-'));
  await ok('btrfs', ['restore', image, out]);
  return viewOf(out);
}

/** debugfs's view of the ext4 image: it never replays the journal. */
async function debugfsView(image: string): Promise<View> {
  const ls = await ok('debugfs', ['-R', 'ls -p /', image]);
  // -p: /inode/mode/uid/gid/name/size/
  const names = ls
    .split('\n')
    .map((l) => l.split('/')[5])
    .filter((n): n is string => n !== undefined && n !== '' && n !== '.' && n !== '..' && n !== 'lost+found')
    .sort();
  const files: Record<string, string | undefined> = {};
  for (const n of ['before.txt', 'gone.txt', 'after.txt']) {
    const r = await sh('debugfs', ['-R', `cat /${n}`, image]);
    files[n] = /File not found/.test(r.stderr) ? undefined : r.stdout;
  }
  return { names, files };
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'appliance-dirty-'));
  await timed('make the empty filesystems (host mkfs)', async () => {
    for (const k of KINDS) img[k] = join(tmp, `${k}.raw`);
    await ok('truncate', ['-s', '32M', img.ext4]);
    await ok('mkfs.ext4', ['-q', '-F', '-L', 'dirty-ext4', img.ext4]);
    await ok('truncate', ['-s', '300M', img.xfs]); // mkfs.xfs's minimum
    await ok('mkfs.xfs', ['-q', '-f', '-L', 'dirty-xfs', img.xfs]);
    await ok('truncate', ['-s', '128M', img.btrfs]);
    await ok('mkfs.btrfs', ['-q', '-f', '-L', 'dirty-btrfs', img.btrfs]);
  });
  // One VM, the three disks writable: the clean state, the logged changes, the reset.
  made = await timed('one VM: write, unmount, write and fsync, reset (sysrq b)', async () => {
    const vm = await boot({ cacheDir: SHARED_CACHE, disks: KINDS.map((k) => ({ path: img[k], format: 'raw' as const, readonly: false })) });
    try {
      const r = await vm.exec(['sh', '-c', SCRIPT], { timeoutMs: 60_000 }).then(
        (x) => ({ message: `the script ended with status ${x.exitCode}: ${x.stderr.toString()}${x.stdout.toString()}` }),
        (e: { code?: string; message: string }) => ({ code: e.code, message: e.message }),
      );
      return r;
    } finally {
      await vm.close();
    }
  });
  hashes = new Map(await Promise.all(KINDS.map(async (k) => [img[k], await sha256(img[k])] as const)));
  // What the filesystems' own tools say (all read-only: the hashes are checked again below).
  hostTools = await timed('host tools (dumpe2fs, debugfs logdump, e2fsck -fn, xfs_repair -n, dump-super)', async () => ({
    dumpe2fs: await sh('dumpe2fs', ['-h', img.ext4]),
    logdump: await sh('debugfs', ['-R', 'logdump', img.ext4]),
    e2fsck: await sh('e2fsck', ['-fn', img.ext4]),
    xfsRepair: await sh('xfs_repair', ['-n', '-f', img.xfs]),
    xfsLogprint: await sh('xfs_logprint', ['-t', img.xfs]),
    dumpSuper: await sh('btrfs', ['inspect-internal', 'dump-super', img.btrfs]),
  }));
  oracle = await timed('readers that never replay (debugfs, xfs_db ls, btrfs restore)', async () => ({
    ext4: await debugfsView(img.ext4),
    xfsNames: await xfsDbNames(img.xfs),
    btrfs: await btrfsRestoreView(img.btrfs),
  }));
  hashesAfterTools = new Map(await Promise.all(KINDS.map(async (k) => [img[k], await sha256(img[k])] as const)));
  stamps = new Map(KINDS.map((k) => [img[k], stamp(img[k])]));
  // One inspection: the filesystems, each one's root, a copy-out of the ext4.
  await timed('inspect(): filesystems, read each root, copy-out the ext4', async () => {
    await using insp = await inspect(
      KINDS.map((k) => img[k]),
      { cacheDir: SHARED_CACHE },
    );
    filesystems = await insp.filesystems();
    ours = {} as Record<Kind, View>;
    for (const [i, k] of KINDS.entries()) {
      // One that cannot be read fails its own tests (its error as its view), not the others'.
      ours[k] = await readRoot(insp, `disk${i}`).catch((e: Error) => ({ names: [], files: {}, error: e.message }));
    }
    ourMounts = (await insp.vm.exec(['cat', '/proc/mounts'])).stdout.toString();
    ourRo = (
      await insp.vm.exec(['sh', '-c', 'for d in /sys/block/vd*; do echo "$(cat $d/serial 2>/dev/null || echo ?) $(cat $d/ro)"; done'])
    ).stdout.toString();
    const out = join(tmp, 'copy-out');
    await ok('mkdir', [out]);
    await (await insp.mount('disk0')).copyOut('/', out);
    copied = viewOf(out);
    // A file and a folder below the root (the stream's paths checked against the copied one).
    const single = join(tmp, 'copy-out-single');
    await ok('mkdir', [single]);
    await (await insp.mount('disk1')).copyOut('/before.txt', single);
    await (await insp.mount('disk0')).copyOut('/lost+found', single);
    copiedSingle = readdirSync(single)
      .sort()
      .map((n) => (n === 'before.txt' ? `${n}: ${readFileSync(join(single, n), 'utf8')}` : n));
  });
  hashesAfter = new Map(await Promise.all(KINDS.map(async (k) => [img[k], await sha256(img[k])] as const)));
}, 300_000);

afterAll(() => {
  console.log(`inspect-dirty timings (ms): ${JSON.stringify(ms)}`);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('images with a real log to replay', () => {
  it('were made by a guest reset right after an fsync (EGUESTDIED)', () => {
    expect(made).toMatchObject({ code: 'EGUESTDIED' });
    expect(made.message).toMatch(/sysrq: Resetting/);
  });

  it('ext4: dumpe2fs says needs_recovery, logdump shows committed transactions, e2fsck -fn would recover the journal', () => {
    const { dumpe2fs, logdump, e2fsck } = hostTools;
    expect(dumpe2fs!.stdout).toMatch(/^Filesystem features:.*\bneeds_recovery\b/m);
    expect(dumpe2fs!.stdout).toMatch(/^Journal start:\s+[1-9]\d*$/m);
    // A commit block after a descriptor: a transaction in the journal, not yet checkpointed.
    expect(logdump!.stdout).toMatch(/Found expected sequence \d+, type 1 \(descriptor block\)/);
    expect(logdump!.stdout).toMatch(/Found expected sequence \d+, type 2 \(commit block\)/);
    expect(e2fsck!.stdout + e2fsck!.stderr).toMatch(/skipping journal recovery because doing a read-only filesystem check/);
  });

  it('xfs: xfs_repair -n finds metadata changes in the log; xfs_logprint shows transactions', () => {
    const { xfsRepair, xfsLogprint } = hostTools;
    expect(xfsRepair!.stdout + xfsRepair!.stderr).toMatch(/valuable metadata changes in a log/);
    expect(xfsLogprint!.stdout).toMatch(/log tail: \d+ head: \d+ state: <DIRTY>/);
    expect(xfsLogprint!.stdout).toMatch(/^TRANS: /m);
  });

  it('btrfs: the superblock names a log tree (log_root != 0)', () => {
    const m = /^log_root\s+(\d+)$/m.exec(hostTools.dumpSuper!.stdout);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);
  });
});

describe('inspection', () => {
  const info = (k: Kind) => filesystems.find((f) => f.id === `disk${KINDS.indexOf(k)}`)!;

  it('reports dirty where the superblock says so, and mounts every one', () => {
    expect(info('ext4')).toMatchObject({ type: 'ext4', dirty: true });
    expect(info('btrfs')).toMatchObject({ type: 'btrfs', dirty: true });
    // xfs keeps "needs recovery" in its log, not its superblock: our probe cannot say (src/inspect/probe/xfs.ts).
    expect(info('xfs').type).toBe('xfs');
    expect(info('xfs').dirty).toBeUndefined();
    for (const k of KINDS) {
      expect(info(k).error).toBeUndefined();
      expect(info(k).used).toBeGreaterThan(0);
    }
  });

  it('the guest mounted each read-only, replaying nothing, from disks it cannot write', () => {
    const lines = ourMounts.split('\n').filter((l) => l.includes(' /run/appliance/fs/'));
    const line = (type: string) => lines.find((l) => l.split(' ')[2] === type) ?? '';
    expect(line('ext4')).toMatch(/ ro[, ].*\b(norecovery|noload)\b/);
    expect(line('xfs')).toMatch(/ ro[, ].*\bnorecovery\b/);
    expect(line('btrfs')).toMatch(/ ro[, ].*\bnologreplay\b/);
    expect(ourRo).toMatch(/^disk0 1$/m);
    expect(ourRo).toMatch(/^disk1 1$/m);
    expect(ourRo).toMatch(/^disk2 1$/m);
  });

  it('ext4: reads what debugfs (which never replays) reads; a replay (e2fsck -fy on a copy) would show otherwise', async () => {
    expect(ours.ext4).toEqual(oracle.ext4);
    expect(ours.ext4).toEqual({ names: ['before.txt', 'gone.txt'], files: { 'before.txt': BEFORE, 'gone.txt': GONE, 'after.txt': undefined } });
    expect(copied).toEqual(ours.ext4);
    expect(copiedSingle).toEqual([`before.txt: ${BEFORE}`, 'lost+found']);
    const copy = join(tmp, 'replayed-ext4.raw');
    copyFileSync(img.ext4, copy);
    const fsck = await sh('e2fsck', ['-fy', copy]);
    expect(fsck.stdout + fsck.stderr).toMatch(/recovering journal/);
    expect(await debugfsView(copy)).toEqual({ names: ['after.txt', 'before.txt'], files: { 'before.txt': BEFORE, 'gone.txt': undefined, 'after.txt': AFTER } });
  });

  it('xfs: reads the names xfs_db reads and the files the host kernel reads with norecovery; a replay (a read-write mount of a copy) would show otherwise', async () => {
    expect(ours.xfs.names).toEqual(oracle.xfsNames);
    expect(ours.xfs).toEqual(await hostView(img.xfs, 'xfs', 'ro,norecovery', true));
    expect(ours.xfs).toEqual({ names: ['before.txt', 'gone.txt'], files: { 'before.txt': BEFORE, 'gone.txt': GONE, 'after.txt': undefined } });
    expect((await hostView(img.xfs, 'xfs', '', false)).files['after.txt']).toBe(AFTER);
  });

  it('btrfs: reads what btrfs restore and the host kernel with nologreplay read; a replay (a read-write mount of a copy) would show otherwise', async () => {
    expect(ours.btrfs).toEqual(oracle.btrfs);
    expect(ours.btrfs).toEqual(await hostView(img.btrfs, 'btrfs', 'ro,rescue=nologreplay', true));
    expect(ours.btrfs.files['after.txt']).toBeUndefined();
    expect(ours.btrfs.files['before.txt']).toBe(BEFORE);
    expect(ours.btrfs.files['gone.txt']).toBe(GONE);
    expect((await hostView(img.btrfs, 'btrfs', '', false)).files['after.txt']).toBe(AFTER);
  });

  it('wrote none of the images: sha256, size and times unchanged', () => {
    expect(hashesAfterTools).toEqual(hashes);
    expect(hashesAfter).toEqual(hashes);
    expect(new Map(KINDS.map((k) => [img[k], stamp(img[k])]))).toEqual(stamps);
  });
});
