// NTFS, which Debian's cloud kernel cannot mount, read through ntfs-3g (FUSE) in the guest,
// read-only, against libguestfs (which reads NTFS with ntfs-3g too): an MBR disk with an
// NTFS partition holding nested folders, 1 MiB of random data, non-ASCII names, symlinks,
// a hard link, an empty file, a sparse one and a FIFO; a whole-disk NTFS left dirty by a
// hibernated Windows (dirty flag, hiberfil.sys), which a read-write ntfs-3g would refuse;
// and a corrupt one ($MFTMirr differs from $MFT). The images are made on this host with
// mkntfs and filled through the host's ntfs-3g, hashed before and checked unchanged after.
// One libguestfs launch for all three. Then the guest helper's side: the driver's daemon
// leaves when its mount goes (and PID 1 reaps it), a driver that does not answer is cut
// off, a missing one is ENOENT.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { copyFile, link, mkdir, mkdtemp, open, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { INSPECT_PATH } from '../src/guest/contract.js';
import { inspect, type FileStat, type FilesystemInfo } from '../src/inspect/index.js';
import { num, parseFields, text } from '../src/inspect/records.js';
import { compareWalk, gfsName, guestfs, hex, Timings, type GuestfsResult } from './helpers/guestfs.js';
import { FIXED_TIME, run, sha256File } from './helpers/images.js';
import { SHARED_CACHE } from './helpers/shared-cache.js';

const MiB = 1024 * 1024;
const LABEL = 'Données ☃';
const UTF8_DIR = 'Ünïcödé ☃';
const UTF8_FILE = 'naïve café.txt';
const IMAGE_SHADOW = 'the NTFS image’s own /etc/shadow\n';
const RANDOM = randomBytes(MiB + 123);
const NOTE = 'written before Windows hibernated\n';
/** ntfs-3g.probe's status for a volume that a read-write mount refuses: Windows is hibernated. */
const NTFS_VOLUME_HIBERNATED = 14;

const timings = new Timings('inspect (ntfs)');
let dir: string;
let disk: string;
let dirty: string;
let corrupt: string;
let all: string[];
let hashes: Map<string, string>;
let stamps: Map<string, string>;
let filesystems: FilesystemInfo[];
let walks: Map<string, FileStat[]>;
let reads: Map<string, Buffer | string>;
let theirs: GuestfsResult;

const stamp = (p: string) => {
  const s = statSync(p, { bigint: true });
  return `${s.size} ${s.mtimeNs} ${s.ctimeNs}`;
};

/** A loop device over `size` bytes of `file` from `offset` (no udev here for partitions), for the time of `fn`. */
async function withLoop<T>(file: string, offset: number, size: number, fn: (dev: string) => Promise<T>): Promise<T> {
  const dev = (await run('losetup', ['-f', '--show', '-o', String(offset), '--sizelimit', String(size), file])).stdout.trim();
  try {
    return await fn(dev);
  } finally {
    await run('losetup', ['-d', dev]).catch(() => {});
  }
}

/** The NTFS on block device `dev` mounted read-write by the host's ntfs-3g for the time of `fn`: a fuseblk mount, whose umount waits for ntfs-3g to write everything back. */
async function withNtfs3g<T>(dev: string, fn: (mnt: string) => Promise<T>): Promise<T> {
  const mnt = await mkdtemp(join(tmpdir(), 'appliance-ntfs-mnt-'));
  await run('ntfs-3g', ['-o', 'rw', dev, mnt]);
  try {
    return await fn(mnt);
  } finally {
    await run('umount', [mnt]);
    await rm(mnt, { recursive: true, force: true });
  }
}

async function fill(mnt: string): Promise<void> {
  const p = (...parts: string[]) => join(mnt, ...parts);
  await mkdir(p('Documents', 'Reports', '2024'), { recursive: true });
  await writeFile(p('Documents', 'Reports', '2024', 'q1.txt'), 'first quarter\n');
  await writeFile(p('Documents', 'random.bin'), RANDOM);
  await symlink('random.bin', p('Documents', 'link-rel'));
  await mkdir(p(UTF8_DIR));
  await writeFile(p(UTF8_DIR, UTF8_FILE), 'ñ\n');
  await mkdir(p('etc'));
  await writeFile(p('etc', 'shadow'), IMAGE_SHADOW);
  await symlink('/etc/shadow', p('link-abs'));
  await writeFile(p('hard1'), 'two names, one MFT record\n');
  await link(p('hard1'), p('Documents', 'hard2'));
  await writeFile(p('empty'), '');
  const fh = await open(p('sparse'), 'w');
  await fh.write(Buffer.from('middle'), 0, 6, 3 * MiB);
  await fh.truncate(4 * MiB);
  await fh.close();
  await run('mkfifo', [p('fifo')]);
  for (const f of ['hard1', 'empty', 'sparse', 'Documents/random.bin']) await utimes(p(f), FIXED_TIME, FIXED_TIME);
}

/**
 * Sets the dirty flag of $Volume's VOLUME_INFORMATION (MFT record 3) as a Windows that did
 * not shut down cleanly leaves it: in $MFT, in its mirror $MFTMirr, or both (one only: the
 * two disagree, which ntfs-3g refuses as corrupt). The flags are far from the record's
 * sector ends, where the update sequence would have to be redone.
 */
function setDirtyFlag(file: string, where: { mft: boolean; mirror: boolean }): void {
  const fd = openSync(file, 'r+');
  try {
    const boot = Buffer.alloc(512);
    readSync(fd, boot, 0, 512, 0);
    const cluster = boot.readUInt16LE(11) * boot.readUInt8(13);
    const perRecord = boot.readInt8(64);
    const recordSize = perRecord > 0 ? perRecord * cluster : 2 ** -perRecord;
    for (const [lcnAt, wanted] of [
      [48, where.mft],
      [56, where.mirror],
    ] as const) {
      if (!wanted) continue;
      const at = Number(boot.readBigUInt64LE(lcnAt)) * cluster + 3 * recordSize;
      const record = Buffer.alloc(recordSize);
      readSync(fd, record, 0, recordSize, at);
      let attr = record.readUInt16LE(20);
      while (record.readUInt32LE(attr) !== 0x70) attr += record.readUInt32LE(attr + 4);
      const flags = attr + record.readUInt16LE(attr + 20) + 10;
      expect(flags % 512).toBeLessThan(510);
      record.writeUInt16LE(record.readUInt16LE(flags) | 0x0001, flags);
      writeSync(fd, record, flags, 2, at + flags);
    }
  } finally {
    closeSync(fd);
  }
}

/** ntfs-3g.probe's verdict on a volume: 0 when it can be mounted so, else why not (NTFS_VOLUME_*). */
const probeStatus = (file: string, mode: '--readwrite' | '--readonly'): number | null => spawnSync('ntfs-3g.probe', [mode, file]).status;

async function makeImages(): Promise<void> {
  // An MBR disk, one NTFS partition (type 07), made and filled on a loop device over it.
  disk = join(dir, 'ntfs-mbr.raw');
  await run('truncate', ['-s', '66M', disk]);
  await run('sfdisk', ['-q', disk], { input: 'label: dos\nlabel-id: 0x4e544653\n,64M,7\n' });
  const [part] = (JSON.parse((await run('sfdisk', ['-J', disk])).stdout) as { partitiontable: { partitions: { start: number; size: number }[] } })
    .partitiontable.partitions;
  await withLoop(disk, part!.start * 512, part!.size * 512, async (dev) => {
    await run('mkntfs', ['-q', '-Q', '-F', '-L', LABEL, '-p', String(part!.start), dev]);
    await withNtfs3g(dev, fill);
  });
  // Whole-disk NTFS: a hibernated Windows's (hiberfil.sys starting "hibr", the dirty flag set), and a corrupt copy.
  const base = join(dir, 'base.raw');
  await run('truncate', ['-s', '32M', base]);
  await withLoop(base, 0, 32 * MiB, async (dev) => {
    await run('mkntfs', ['-q', '-Q', '-F', '-L', 'hibernated', dev]);
    await withNtfs3g(dev, async (mnt) => {
      await writeFile(join(mnt, 'note.txt'), NOTE);
      await writeFile(join(mnt, 'hiberfil.sys'), Buffer.concat([Buffer.from('hibr'), Buffer.alloc(8188)]));
    });
  });
  dirty = join(dir, 'dirty.raw');
  corrupt = join(dir, 'corrupt.raw');
  await copyFile(base, dirty);
  await copyFile(base, corrupt);
  setDirtyFlag(dirty, { mft: true, mirror: true });
  setDirtyFlag(corrupt, { mft: false, mirror: true });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'appliance-images-ntfs-'));
  await timings.time('make the images (mkntfs, the host’s ntfs-3g)', makeImages);
  all = [disk, dirty, corrupt];
  hashes = new Map(all.map((p) => [p, sha256File(p)]));
  stamps = new Map(all.map((p) => [p, stamp(p)]));

  const img = await timings.time('ours: inspect() 3 NTFS disks', () => inspect(all, { cacheDir: SHARED_CACHE }));
  try {
    await timings.time('ours: mount() of one NTFS (ntfs-3g in the guest)', () => img.mount('disk0:1'));
    filesystems = await timings.time('ours: filesystems() (mounts the 2 others)', () => img.filesystems());
    walks = new Map();
    await timings.time('ours: walk both NTFS with sha256', async () => {
      for (const id of ['disk0:1', 'disk1']) {
        const out: FileStat[] = [];
        for await (const s of (await img.mount(id)).walk('/', { checksum: true })) out.push(s);
        walks.set(id, out);
      }
    });
    const fs = await img.mount('disk0:1');
    reads = new Map();
    for (const path of ['/Documents/random.bin', '/Documents/Reports/2024/q1.txt', `/${UTF8_DIR}/${UTF8_FILE}`, '/link-abs', '/Documents/link-rel', '/empty']) {
      reads.set(path, await fs.readFile(path).catch((err: Error) => err.message));
    }
  } finally {
    await img.close();
  }
  theirs = await timings.time('libguestfs: one launch (3 NTFS: filesystems, 3 walks)', () =>
    guestfs({
      disks: all.map((path) => ({ path, format: 'raw' as const })),
      walks: [{ mount: '/dev/sda1', checksums: true, cats: [...reads.keys()].map(hex) }, { mount: '/dev/sdb', checksums: true }, { mount: '/dev/sdc' }],
    }),
  );
  for (const [k, v] of Object.entries(theirs.ms)) timings.add(`  libguestfs ${k}`, v);
}, 600_000);

afterEach(() => {
  // Nothing wrote the images: their sizes and times are as they were (the sha256 is checked at the end).
  expect(new Map(all.map((p) => [p, stamp(p)]))).toEqual(stamps);
});

afterAll(async () => {
  timings.print();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const info = (id: string) => filesystems.find((f) => f.id === id)!;
const oracleWalk = (mount: string) => theirs.walks!.find((w) => w.mount === mount)!;

describe('NTFS through ntfs-3g, compared with libguestfs', () => {
  it('lists each NTFS with its type, label and UUID as list-filesystems and vfs-* say; the size is the volume’s (its device less the backup boot sector)', () => {
    expect(filesystems.map((f) => gfsName(f.id)).sort()).toEqual(Object.keys(theirs.filesystems).sort());
    for (const [id, file] of [
      ['disk0:1', disk],
      ['disk1', dirty],
      ['disk2', corrupt],
    ] as const) {
      const f = info(id);
      const o = theirs.filesystems[gfsName(id)]!;
      // Known difference: libguestfs reads an NTFS label with ntfslabel, which opens the
      // volume and refuses a dirty one ("scheduled for check") or a corrupt one, so it has
      // none for those; ours is the $Volume record's as blkid reads it (and libguestfs, for
      // every other type).
      const label = id === 'disk0:1' ? o.label : hex(execFileSync('blkid', ['-p', '-s', 'LABEL', '-o', 'value', file]).subarray(0, -1));
      if (id !== 'disk0:1') expect(o.label, id).toBeNull();
      expect({ id, type: f.type, label: hex(f.label ?? ''), uuid: f.uuid, size: f.size + 512 }).toEqual({
        id,
        type: o.type,
        label,
        uuid: o.uuid,
        size: o.size,
      });
    }
    expect(info('disk0:1')).toMatchObject({ type: 'ntfs', label: LABEL, disk: 0, partition: 1 });
    expect(info('disk0:1').uuid).toMatch(/^[0-9A-F]{16}$/);
  });

  it('used and free space as statvfs says', () => {
    for (const [id, mount] of [
      ['disk0:1', '/dev/sda1'],
      ['disk1', '/dev/sdb'],
    ] as const) {
      const sv = oracleWalk(mount).statvfs!;
      expect({ id, used: info(id).used, available: info(id).available }).toEqual({
        id,
        used: (sv.blocks! - sv.bfree!) * sv.frsize!,
        available: sv.bavail! * sv.frsize!,
      });
    }
  });

  it('ls -lR (names, types, modes, sizes, blocks, links, inodes, times, symlink targets, sha256) as lstatns, readlink and checksum say', () => {
    const names = walks.get('disk0:1')!.map((s) => String(s.path));
    for (const p of ['/Documents/Reports/2024/q1.txt', `/${UTF8_DIR}/${UTF8_FILE}`, '/fifo', '/sparse', '/empty']) expect(names).toContain(p);
    const byPath = new Map(walks.get('disk0:1')!.map((s) => [String(s.path), s]));
    expect(byPath.get('/Documents/link-rel')).toMatchObject({ type: 'symlink', target: 'random.bin' });
    expect(byPath.get('/hard1')).toMatchObject({ nlink: 2, ino: byPath.get('/Documents/hard2')!.ino });
    expect(byPath.get('/fifo')!.type).toBe('fifo');
    expect(byPath.get('/sparse')!.allocated).toBeLessThan(4 * MiB);
    for (const [id, mount] of [
      ['disk0:1', '/dev/sda1'],
      ['disk1', '/dev/sdb'],
    ] as const) {
      expect(oracleWalk(mount).error, id).toBeUndefined();
      compareWalk(walks.get(id)!, oracleWalk(mount).entries!, { what: id });
    }
  });

  it('file contents as read-file says; an absolute symlink reads the image’s own file', () => {
    for (const c of oracleWalk('/dev/sda1').cats!) {
      const path = Buffer.from(c.path, 'hex').toString();
      expect(c.error, path).toBeUndefined();
      expect(hex(reads.get(path) as Buffer), path).toBe(c.hex);
    }
    // Buffers compared whole (toEqual goes byte by byte: seconds for 1 MiB).
    expect(RANDOM.equals(reads.get('/Documents/random.bin') as Buffer)).toBe(true);
    expect(RANDOM.equals(reads.get('/Documents/link-rel') as Buffer)).toBe(true);
    expect(reads.get('/link-abs')!.toString()).toBe(IMAGE_SHADOW);
    expect(reads.get('/empty')).toEqual(Buffer.alloc(0));
  });

  it('a hibernated, dirty NTFS: reported dirty, read as it is (a read-write ntfs-3g would refuse it, and still would after)', async () => {
    expect(info('disk1')).toMatchObject({ type: 'ntfs', label: 'hibernated', dirty: true });
    expect(info('disk1').error).toBeUndefined();
    expect(info('disk0:1').dirty).toBeUndefined();
    expect(walks.get('disk1')!.map((s) => String(s.path))).toEqual(['/', '/hiberfil.sys', '/note.txt']);
    expect((await run('ntfsinfo', ['-m', '-f', dirty])).stdout).toMatch(/Volume Flags: 0x0001 DIRTY/);
    expect(probeStatus(dirty, '--readwrite')).toBe(NTFS_VOLUME_HIBERNATED);
    expect(probeStatus(dirty, '--readonly')).toBe(0);
  });

  it('a corrupt NTFS is an error of its own (EMOUNT, with ntfs-3g’s words) while the others read', () => {
    // One line, the reason first and ntfs-3g's first words after it; its whole log beside.
    expect(info('disk2').error).toMatch(
      /^cannot mount disk2 \(ntfs, read-only\): EINVAL: [^\n]+: ntfs-3g says "\$MFTMirr does not match \$MFT \(record 3\)\."$/,
    );
    expect(info('disk2').error!.length).toBeLessThan(300);
    expect(info('disk2').mountLog?.join('\n')).toMatch(/Failed to mount[^]*\(exit status \d+\)$/);
    expect(oracleWalk('/dev/sdc').error).toMatch(/MFTMirr does not match/);
    expect(probeStatus(corrupt, '--readonly')).not.toBe(0);
    for (const id of ['disk0:1', 'disk1']) expect(info(id).error, id).toBeUndefined();
  });
});

describe('the guest helper and its FUSE driver', () => {
  it('ntfs-3g runs read-only; unmounted, its daemon leaves and PID 1 reaps it; one that does not answer is cut off after 2 s; a missing driver is ENOENT', async () => {
    await using img = await inspect([dirty], { cacheDir: SHARED_CACHE });
    const sh = async (script: string) => (await img.vm.exec(['sh', '-c', script])).stdout.toString();
    const helper = async (...args: string[]) => {
      const r = await img.vm.exec([INSPECT_PATH, ...args]);
      expect(r.exitCode, r.stderr.toString()).toBe(0);
      return { line: parseFields(r.stdout)[0]!, ms: r.durationMs };
    };
    // Every ntfs-3g process, zombies too: pid, state, command line (one grep over /proc:
    // a fork per process would cost seconds under TCG).
    const drivers = async () =>
      (
        await sh(
          `for c in $(grep -lx ntfs-3g /proc/[0-9]*/comm 2>/dev/null); do p=\${c%/comm}; echo "\${p#/proc/} $(cut -d' ' -f3 $p/stat) $(tr '\\000' ' ' < $p/cmdline)"; done; true`,
        )
      )
        .split('\n')
        .filter(Boolean);
    const gone = async () => {
      for (let i = 0; i < 50 && (await drivers()).length > 0; i++) await sleep(100);
      return drivers();
    };
    const at = '/run/appliance/ntfs-check';
    const dev = (await sh('readlink -f /dev/disk/by-id/virtio-disk0')).trim();

    const mounted = await helper('mount', dev, at, 'fuse:ntfs-3g', '');
    timings.add('guest: the helper mounts an NTFS with ntfs-3g', mounted.ms);
    expect([text(mounted.line, 'dir'), num(mounted.line, 'errno'), num(mounted.line, 'frsize')]).toEqual([at, 0, 4096]);
    const [driver] = await drivers();
    expect(driver).toMatch(new RegExp(`^\\d+ [^Z] ntfs-3g -o ro,nosuid,nodev,noexec ${dev} ${at} $`));
    expect(await sh(`grep ' ${at} ' /proc/mounts`)).toMatch(/ fuseblk ro,nosuid,nodev,noexec,/);
    expect(await sh(`cat ${at}/note.txt`)).toBe(NOTE);

    const unmounted = await helper('umount', at);
    timings.add('guest: the helper unmounts it', unmounted.ms);
    expect(num(unmounted.line, 'errno')).toBe(0);
    expect(await gone()).toEqual([]);

    // A driver that does not answer (stopped): the kernel waits for its DESTROY reply, the
    // helper ends the connection after 2 s, and the driver leaves once it runs again.
    expect(num((await helper('mount', dev, at, 'fuse:ntfs-3g', '')).line, 'errno')).toBe(0);
    const pid = (await drivers())[0]!.split(' ')[0]!;
    await sh(`kill -STOP ${pid}`);
    const cut = await helper('umount', at);
    timings.add('guest: unmounting a stopped ntfs-3g', cut.ms);
    expect(num(cut.line, 'errno')).toBe(0);
    expect(cut.ms).toBeGreaterThanOrEqual(2000);
    await sh(`kill -CONT ${pid}`);
    expect(await gone()).toEqual([]);
    expect(await sh(`grep -c ' ${at} ' /proc/mounts; true`)).toBe('0\n');

    const missing = await helper('mount', dev, at, 'fuse:no-such-driver', '');
    expect([num(missing.line, 'errno'), text(missing.line, 'kernel')]).toEqual([2, 'no-such-driver is not a program of the appliance']);
  });
});

describe('safety', () => {
  it('no image was written: every sha256 is as before', () => {
    expect(new Map(all.map((p) => [p, sha256File(p)]))).toEqual(hashes);
  });
});
