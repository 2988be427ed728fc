/**
 * Test images for inspection, made with the real tools (sfdisk, mkfs.*, mtools, lvm2,
 * mdadm, cryptsetup, xorriso, mksquashfs, qemu-img) and cached in a folder per test file.
 *
 * This host's kernel has loop devices but neither device-mapper nor md nor vfat/exfat
 * drivers, so: partitions are loop devices with -o/--sizelimit; LVM metadata is written
 * by lvm itself with `--driverloaded n` (no activation), and the LVs' filesystems are made
 * through loop devices at the extents lvm reports; vfat is filled with mtools; the md
 * array and the exfat files are made by mdadm and the kernel of an appliance VM (our boot(),
 * the disks writable); the LUKS2 header is cryptsetup's, given the volume key, and the
 * data is encrypted here (aes-xts-plain64, 512-byte sectors: what dm-crypt reads).
 *
 * Every image is made in a temporary folder and renamed into place whole; every loop
 * device and mount is undone even when a step fails. `APPLIANCE_TEST_IMAGES=DIR` keeps
 * the images in DIR across runs (remade when this file changes).
 */
import { execFile } from 'node:child_process';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, copyFile, lchown, link, lutimes, mkdir, mkdtemp, open, readFile, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { boot } from '../../src/vm/index.js';
import { SHARED_CACHE } from './shared-cache.js';

// ---- running tools ---------------------------------------------------------------------

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a program; a failure names the command and its stderr. */
export function run(cmd: string, args: string[], opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { maxBuffer: 256 << 20, env: { ...process.env, LVM_SUPPRESS_FD_WARNINGS: '1', MTOOLS_SKIP_CHECK: '1', ...opts.env }, cwd: opts.cwd },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`));
        else resolve({ stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin?.end();
  });
}

/** A partition of a raw image, as sfdisk lays it out. */
export interface PartitionLayout {
  number: number;
  start: number;
  size: number;
}

async function partitions(raw: string): Promise<PartitionLayout[]> {
  const { stdout } = await run('sfdisk', ['-J', raw]);
  const table = JSON.parse(stdout) as { partitiontable: { sectorsize?: number; partitions: { node: string; start: number; size: number }[] } };
  const ss = table.partitiontable.sectorsize ?? 512;
  return table.partitiontable.partitions.map((p) => ({ number: Number(/(\d+)$/.exec(p.node)![1]), start: p.start * ss, size: p.size * ss }));
}

/** A loop device over `size` bytes of `file` from `offset`, for the time of `fn`. */
async function withLoop<T>(file: string, offset: number, size: number | undefined, fn: (dev: string) => Promise<T>): Promise<T> {
  const args = ['-f', '--show', '-o', String(offset), ...(size !== undefined ? ['--sizelimit', String(size)] : []), file];
  const dev = (await run('losetup', args)).stdout.trim();
  try {
    return await fn(dev);
  } finally {
    await run('losetup', ['-d', dev]).catch(() => {});
  }
}

/** `dev` mounted on a fresh folder for the time of `fn`, unmounted (and synced) after. */
async function withMount<T>(dev: string, options: string[], fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'appliance-img-mnt-'));
  await run('mount', [...options, dev, dir]);
  try {
    return await fn(dir);
  } finally {
    await run('umount', [dir]).catch(async () => {
      await new Promise((r) => setTimeout(r, 500));
      await run('umount', [dir]);
    });
    await rm(dir, { recursive: true, force: true });
  }
}

const MiB = 1024 * 1024;
export const sha256File = (path: string | Buffer): string => createHash('sha256').update(readFileSync(path)).digest('hex');

/** A stable pseudo-random byte stream (xorshift), so images made twice hold the same data. */
function bytes(seed: number, n: number): Buffer {
  const out = Buffer.alloc(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** One time for every file the tests set: 2021-05-06 07:08:09.123456789 UTC. */
export const FIXED_TIME = new Date('2021-05-06T07:08:09.123Z');

// ---- what the images hold ------------------------------------------------------------------

/** A name that is not UTF-8 (Latin-1 "café.txt"). */
export const LATIN1_NAME = Buffer.from('caf\xe9.txt', 'latin1');
export const NEWLINE_NAME = 'new\nline';
/** A FIFO's name that is not UTF-8 ("pïpe" in Latin-1). */
export const LATIN1_FIFO = Buffer.from('p\xefpe', 'latin1');
export const UTF8_NAME = 'snow\u2603.txt';
/** Where the sparse file has data: "start" at 0 and "middle" at 40 MiB, 64 MiB long. */
export const SPARSE = { size: 64 * MiB, at: [0, 40 * MiB] as const };
/** The image's own /etc/shadow: what its symlinks to /etc/shadow may read, never the host's. */
export const IMAGE_SHADOW = 'root:image-own-shadow:19000:0:99999:7:::\n';
export const LUKS_KEY = 'secret-key';
export const HOSTNAME = 'inspect-test';

export interface OsImage {
  /** The qcow2 image: GPT, 1 vfat ESP, 2 ext4 root, 3 xfs /srv. */
  path: string;
  /** The same disk changed a little (for diff): see CHANGES below. */
  changed: string;
  rootUuid: string;
  srvUuid: string;
  espSerial: string;
}

export interface MbrImage {
  /** Raw: 1 ext4 primary, 2 extended, 5 LVM PV (VG testvg: lvext4 ext4, lvxfs xfs), 6 and 7 md raid1 (ext4). */
  path: string;
  vg: string;
  lvs: string[];
  mdName: string;
}

export interface SecondOsImages {
  /** Whole-disk btrfs, subvolumes @ (an Alpine-like root) and @home. */
  btrfs: string;
  iso: string;
  squashfs: string;
  exfat: string;
  btrfsUuid: string;
}

export interface LuksImage {
  path: string;
  uuid: string;
  key: string;
  /** The ext4 inside. */
  innerUuid: string;
}

export interface CloneImages {
  ext4: [string, string];
  btrfs: [string, string];
  ext4Uuid: string;
  btrfsUuid: string;
}

export interface CorruptImage {
  /** GPT: 1 a corrupt ext4 (first_ino 1: the kernel refuses it), 2 a good ext4. */
  path: string;
}

// ---- the factory -----------------------------------------------------------------------

const VERSION = createHash('sha256')
  .update(readFileSync(fileURLToPath(import.meta.url)))
  .digest('hex')
  .slice(0, 12);

export class TestImages {
  private made = new Map<string, Promise<unknown>>();

  constructor(readonly dir: string) {}

  /** A factory whose images live in a new temporary folder (or APPLIANCE_TEST_IMAGES). */
  static async create(name: string): Promise<TestImages> {
    const keep = process.env.APPLIANCE_TEST_IMAGES;
    const dir = keep ? join(keep, VERSION) : await mkdtemp(join(tmpdir(), `appliance-images-${name}-`));
    await mkdir(dir, { recursive: true });
    return new TestImages(dir);
  }

  /** Removes the folder (not a kept one). */
  async cleanup(): Promise<void> {
    if (!process.env.APPLIANCE_TEST_IMAGES) await rm(this.dir, { recursive: true, force: true });
  }

  /** Makes `name` once: in a temporary folder, its files renamed into place with a record of what it is. */
  private once<T>(name: string, make: (tmp: string) => Promise<{ files: string[]; info: T }>): Promise<T> {
    let p = this.made.get(name) as Promise<T> | undefined;
    if (!p) {
      p = (async () => {
        const record = join(this.dir, `${name}.json`);
        if (existsSync(record)) return JSON.parse(await readFile(record, 'utf8')) as T;
        const tmp = await mkdtemp(join(this.dir, `.tmp-${name}-`));
        try {
          const { files, info } = await make(tmp);
          for (const f of files) await rename(join(tmp, f), join(this.dir, f));
          const placed = JSON.parse(JSON.stringify(info).replaceAll(tmp, this.dir)) as T;
          await writeFile(record, JSON.stringify(placed));
          return placed;
        } finally {
          await rm(tmp, { recursive: true, force: true });
        }
      })();
      this.made.set(name, p);
    }
    return p;
  }

  os(): Promise<OsImage> {
    return this.once('os', makeOs);
  }
  mbr(): Promise<MbrImage> {
    return this.once('mbr', makeMbr);
  }
  secondOs(): Promise<SecondOsImages> {
    return this.once('second', makeSecondOs);
  }
  luks(): Promise<LuksImage> {
    return this.once('luks', makeLuks);
  }
  clones(): Promise<CloneImages> {
    return this.once('clones', makeClones);
  }
  corrupt(): Promise<CorruptImage> {
    return this.once('corrupt', makeCorrupt);
  }
}

// ---- (a) the OS image ---------------------------------------------------------------------

/** What `changed` has that `path` has not (for diff): the paths and how. */
export const CHANGES = {
  added: '/data/added.txt',
  removed: '/data/empty',
  content: '/etc/hostname',
  mode: '/data/setuid',
  target: '/data/link-rel',
};

async function fillRoot(dir: string, fstab: string): Promise<void> {
  const p = (...parts: string[]) => join(dir, ...parts);
  for (const d of ['etc', 'bin', 'usr/bin', 'var/lib/dpkg', 'srv', 'boot/efi', 'home/user', 'data/sub/deeper', 'tmp']) await mkdir(p(d), { recursive: true });
  await copyFile('/etc/os-release', p('etc/os-release'));
  await copyFile('/etc/debian_version', p('etc/debian_version'));
  await writeFile(p('etc/hostname'), `${HOSTNAME}\n`);
  await writeFile(p('etc/fstab'), fstab);
  await writeFile(p('etc/shadow'), IMAGE_SHADOW, { mode: 0o640 });
  await writeFile(p('etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n');
  await copyFile('/bin/dash', p('bin/sh'));
  await chmod(p('bin/sh'), 0o755);
  await copyFile('/usr/bin/apt-get', p('usr/bin/apt-get'));
  await copyFile('/var/lib/dpkg/status', p('var/lib/dpkg/status'));
  await chmod(p('tmp'), 0o1777);
  // The user's files: an owner, a mode and a time of their own.
  await writeFile(p('home/user/notes.txt'), 'user notes\n', { mode: 0o640 });
  await lchown(p('home/user/notes.txt'), 1000, 1000);
  await lchown(p('home/user'), 1000, 1000);
  await utimes(p('home/user/notes.txt'), FIXED_TIME, FIXED_TIME);
  // The awkward ones.
  const data = (name: string | Buffer) => (typeof name === 'string' ? p('data', name) : Buffer.concat([Buffer.from(p('data') + '/'), name]));
  await writeFile(data(LATIN1_NAME), 'latin-1 name\n');
  await writeFile(data(NEWLINE_NAME), 'newline name\n');
  await writeFile(data(UTF8_NAME), 'utf-8 name\n');
  await writeFile(data('hard1'), 'two names, one inode\n');
  await link(data('hard1'), data('hard2'));
  const fh = await open(data('sparse'), 'w');
  await fh.write(Buffer.from('start'), 0, 5, SPARSE.at[0]);
  await fh.write(Buffer.from('middle'), 0, 6, SPARSE.at[1]);
  await fh.truncate(SPARSE.size);
  await fh.close();
  await symlink('../etc/hostname', data('link-rel'));
  await symlink('/etc/hostname', data('link-abs'));
  await symlink('/etc/shadow', data('link-shadow'));
  await symlink('../../../../etc/shadow', data('link-escape'));
  await symlink('/nowhere/at/all', data('link-dangling'));
  await run('mkfifo', ['-m', '0620', data('fifo') as string]);
  // A FIFO whose name is not UTF-8 either (a program's arguments are text: made, then renamed).
  await run('mkfifo', ['-m', '0600', data('fifo-tmp') as string]);
  await rename(data('fifo-tmp'), data(LATIN1_FIFO));
  await writeFile(data('setuid'), '#!/bin/sh\n', { mode: 0o4755 });
  await chmod(data('setuid'), 0o4755);
  await writeFile(data('empty'), '');
  await writeFile(data('sub/deeper/deep.txt'), 'deep\n');
  await writeFile(data('big.bin'), bytes(7, 3 * MiB + 123));
  for (const f of ['hard1', 'sparse', 'setuid', 'empty', 'big.bin']) await utimes(data(f), FIXED_TIME, FIXED_TIME);
  await lutimes(data('link-rel'), FIXED_TIME, FIXED_TIME);
}

async function makeOs(tmp: string): Promise<{ files: string[]; info: OsImage }> {
  const raw = join(tmp, 'os.raw');
  await run('truncate', ['-s', `${2 + 32 + 128 + 320 + 1}M`, raw]);
  await run('sfdisk', ['-q', raw], { input: 'label: gpt\nsize=32M, type=U, name="EFI System"\nsize=128M, type=L, name=root\nsize=320M, type=L, name=srv\n' });
  const parts = await partitions(raw);
  const [esp, root, srv] = parts as [PartitionLayout, PartitionLayout, PartitionLayout];
  const srvUuid = '5e1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b';
  const rootUuid = '0a0b0c0d-1111-4222-8333-444455556666';
  const espSerial = '1234-ABCD';
  await withLoop(raw, esp.start, esp.size, async (dev) => {
    await run('mkfs.vfat', ['-n', 'EFI', '-i', espSerial.replace('-', ''), dev]);
    await run('mmd', ['-i', dev, '::/EFI', '::/EFI/BOOT']);
    const efi = join(tmp, 'BOOTX64.EFI');
    await writeFile(efi, bytes(3, 4096 + 17));
    await run('mcopy', ['-i', dev, '-m', efi, '::/EFI/BOOT/BOOTX64.EFI']);
  });
  await withLoop(raw, root.start, root.size, async (dev) => {
    await run('mkfs.ext4', ['-q', '-L', 'root', '-U', rootUuid, dev]);
    const fstab = `UUID=${rootUuid} / ext4 defaults 0 1\nLABEL=EFI /boot/efi vfat defaults 0 2\nUUID=${srvUuid} /srv xfs defaults 0 2\nproc /proc proc defaults 0 0\n`;
    await withMount(dev, [], (dir) => fillRoot(dir, fstab));
  });
  await withLoop(raw, srv.start, srv.size, async (dev) => {
    await run('mkfs.xfs', ['-q', '-f', '-L', 'srv', '-m', `uuid=${srvUuid}`, dev]);
    await withMount(dev, [], async (dir) => {
      await mkdir(join(dir, 'data'));
      for (let i = 1; i <= 200; i++) await writeFile(join(dir, 'data', `f${String(i).padStart(3, '0')}`), bytes(i, i * 97));
      await symlink('../../../../etc/shadow', join(dir, 'escape'));
      await symlink('/etc/shadow', join(dir, 'abs-shadow'));
      await symlink('/etc', join(dir, 'abs-etc'));
    });
  });
  await run('qemu-img', ['convert', '-O', 'qcow2', raw, join(tmp, 'os.qcow2')]);
  // The changed copy: one of each kind of change virt-diff reports.
  await withLoop(raw, root.start, root.size, (dev) =>
    withMount(dev, [], async (dir) => {
      await writeFile(join(dir, CHANGES.added), 'added\n');
      await rm(join(dir, CHANGES.removed));
      await writeFile(join(dir, CHANGES.content), 'other-host\n');
      await chmod(join(dir, CHANGES.mode), 0o755);
      await rm(join(dir, CHANGES.target));
      await symlink('../etc/passwd', join(dir, CHANGES.target));
    }),
  );
  await run('qemu-img', ['convert', '-O', 'qcow2', raw, join(tmp, 'os-changed.qcow2')]);
  return {
    files: ['os.qcow2', 'os-changed.qcow2'],
    info: { path: join(tmp, 'os.qcow2'), changed: join(tmp, 'os-changed.qcow2'), rootUuid, srvUuid, espSerial },
  };
}

// ---- (b) MBR, LVM, md ---------------------------------------------------------------------

const LVM_CONFIG = 'devices { obtain_device_list_from_udev = 0 scan_lvs = 0 } activation { udev_sync = 0 udev_rules = 0 }';
const lvm = (cmd: string, ...args: string[]) => run('lvm', [cmd, '--config', LVM_CONFIG, '--driverloaded', 'n', ...args]);

/** Runs a shell script in an appliance VM with `disks` attached writable (disk0 first). */
async function inGuest(disks: string[], script: string): Promise<string> {
  const vm = await boot({ cacheDir: SHARED_CACHE, disks: disks.map((path) => ({ path, readonly: false })) });
  try {
    const r = await vm.exec(['sh', '-c', `set -eu\n${script}`]);
    if (r.exitCode !== 0) throw new Error(`in the guest: status ${r.exitCode}: ${r.stderr.toString()}\n${r.stdout.toString()}`);
    return r.stdout.toString();
  } finally {
    await vm.close();
  }
}

/** The guest's kernel name for disk i (vdb…). */
const guestDisk = (i: number) => `$(basename "$(readlink -f /dev/disk/by-id/virtio-disk${i})")`;

async function makeMbr(tmp: string): Promise<{ files: string[]; info: MbrImage }> {
  const raw = join(tmp, 'mbr.raw');
  await run('truncate', ['-s', `${1 + 48 + 1 + 400 + 1 + 40 + 1 + 40 + 2}M`, raw]);
  await run('sfdisk', ['-q', raw], { input: 'label: dos\nlabel-id: 0x5ca1ab1e\n,48M,83,*\n,,5\n,400M,8e\n,40M,fd\n,40M,fd\n' });
  const parts = await partitions(raw);
  const part = (n: number) => parts.find((p) => p.number === n)!;
  await withLoop(raw, part(1).start, part(1).size, async (dev) => {
    await run('mkfs.ext4', ['-q', '-L', 'primary', dev]);
    await withMount(dev, [], async (dir) => {
      await writeFile(join(dir, 'primary.txt'), 'on the primary partition\n');
    });
  });
  // LVM: metadata by lvm itself (no device-mapper here), filesystems at the extents it chose.
  const vg = 'testvg';
  const layout = await withLoop(raw, part(5).start, part(5).size, async (dev) => {
    await lvm('pvcreate', '-q', dev);
    await lvm('vgcreate', '-q', vg, dev);
    await lvm('lvcreate', '-q', '-an', '-Zn', '-L', '48M', '-n', 'lvext4', vg);
    await lvm('lvcreate', '-q', '-an', '-Zn', '-L', '320M', '-n', 'lvxfs', vg);
    const pe = Number((await lvm('pvs', '--noheadings', '--units', 'b', '--nosuffix', '-o', 'pe_start', dev)).stdout.trim());
    const extent = Number((await lvm('vgs', '--noheadings', '--units', 'b', '--nosuffix', '-o', 'vg_extent_size', vg)).stdout.trim());
    const lvs = (await lvm('lvs', '--noheadings', '--units', 'b', '--nosuffix', '--separator', ';', '-o', 'lv_name,lv_size,seg_pe_ranges', vg)).stdout;
    const at = new Map<string, { offset: number; size: number }>();
    for (const line of lvs.trim().split('\n')) {
      const [name, size, ranges] = line.trim().split(';') as [string, string, string];
      const first = Number(/:(\d+)-/.exec(ranges)![1]);
      at.set(name, { offset: part(5).start + pe + first * extent, size: Number(size) });
    }
    await lvm('vgchange', '-q', '-an', vg).catch(() => {});
    return at;
  });
  const lvExt4 = layout.get('lvext4')!;
  await withLoop(raw, lvExt4.offset, lvExt4.size, async (dev) => {
    await run('mkfs.ext4', ['-q', '-L', 'lvext4', dev]);
    await withMount(dev, [], async (dir) => {
      await writeFile(join(dir, 'on-lv.txt'), 'on a logical volume\n');
    });
  });
  const lvXfs = layout.get('lvxfs')!;
  await withLoop(raw, lvXfs.offset, lvXfs.size, async (dev) => {
    await run('mkfs.xfs', ['-q', '-f', '-L', 'lvxfs', dev]);
    await withMount(dev, [], async (dir) => {
      await writeFile(join(dir, 'on-xfs-lv.txt'), 'xfs on a logical volume\n');
    });
  });
  // md raid1 over partitions 6 and 7, made by mdadm in an appliance (this host has no md driver).
  const mdName = 'testmd';
  const d = guestDisk(0);
  await inGuest(
    [raw],
    `d=${d}
mdadm --create /dev/md0 --run --assume-clean --level=1 --raid-devices=2 --metadata=1.2 --name=${mdName} --homehost=appliance /dev/\${d}6 /dev/\${d}7 2>&1
mkfs.ext4 -q -L mdfs /dev/md0
mkdir -p /tmp/m && mount /dev/md0 /tmp/m
echo 'on an md array' > /tmp/m/on-md.txt
mkdir /tmp/m/dir && echo nested > /tmp/m/dir/nested.txt
umount /tmp/m
mdadm --stop /dev/md0 2>&1
sync`,
  );
  return { files: ['mbr.raw'], info: { path: raw, vg, lvs: ['lvext4', 'lvxfs'], mdName } };
}

// ---- (c) a second OS on btrfs, and iso9660, squashfs, exfat ----------------------------------

const APK_INSTALLED = `C:Q1abc=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:383152
I:622592
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT

C:Q1def=
P:busybox
V:1.36.1-r15
A:x86_64
S:509000
I:950000
T:Size optimized toolbox of many common UNIX utilities
U:https://busybox.net/
L:GPL-2.0-only

C:Q1ghi=
P:alpine-baselayout
V:3.4.3-r2
A:x86_64
S:8000
I:300000
T:Alpine base dir structure and init scripts
U:https://git.alpinelinux.org/cgit/aports/tree/main/alpine-baselayout
L:GPL-2.0-only

`;

async function makeSecondOs(tmp: string): Promise<{ files: string[]; info: SecondOsImages }> {
  const btrfs = join(tmp, 'btrfs.raw');
  await run('truncate', ['-s', '256M', btrfs]);
  const btrfsUuid = '7b7b7b7b-aaaa-4bbb-8ccc-dddddddddddd';
  await run('mkfs.btrfs', ['-q', '-L', 'alpine', '-U', btrfsUuid, btrfs]);
  await withLoop(btrfs, 0, undefined, (dev) =>
    withMount(dev, [], async (dir) => {
      await run('btrfs', ['subvolume', 'create', join(dir, '@')]);
      await run('btrfs', ['subvolume', 'create', join(dir, '@home')]);
      const r = (...parts: string[]) => join(dir, '@', ...parts);
      for (const d of ['etc', 'bin', 'sbin', 'lib/apk/db', 'home', 'usr/bin']) await mkdir(r(d), { recursive: true });
      await writeFile(
        r('etc/os-release'),
        'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\nHOME_URL="https://alpinelinux.org/"\n',
      );
      await writeFile(r('etc/alpine-release'), '3.19.1\n');
      await writeFile(r('etc/hostname'), 'alpine-box\n');
      // /data names a subvolume that is not there: the kernel refuses that mount, and the OS shows its own folder.
      await writeFile(
        r('etc/fstab'),
        `UUID=${btrfsUuid} / btrfs subvol=@ 0 0\nUUID=${btrfsUuid} /home btrfs subvol=@home 0 0\nUUID=${btrfsUuid} /data btrfs subvol=@missing 0 0\n`,
      );
      await mkdir(r('data'));
      await writeFile(r('data/beneath.txt'), 'in @, beneath /data\n');
      await copyFile('/bin/dash', r('bin/sh'));
      await chmod(r('bin/sh'), 0o755);
      await copyFile('/bin/dash', r('sbin/apk'));
      await writeFile(r('lib/apk/db/installed'), APK_INSTALLED);
      await mkdir(join(dir, '@home', 'alice'));
      await writeFile(join(dir, '@home', 'alice', 'hello.txt'), 'hello from @home\n');
      await writeFile(join(dir, 'top-level.txt'), 'in the top level\n');
    }),
  );
  // iso9660 with Joliet and Rock Ridge, from a folder.
  const src = join(tmp, 'src');
  await mkdir(join(src, 'docs'), { recursive: true });
  await writeFile(join(src, 'README.TXT'), 'on a CD\n');
  await writeFile(join(src, 'docs', 'long-file-name.txt'), 'rock ridge keeps this name\n');
  await writeFile(join(src, 'docs', 'data.bin'), bytes(11, 100_000));
  const iso = join(tmp, 'cd.iso');
  await run('xorriso', ['-as', 'mkisofs', '-quiet', '-V', 'TESTCD', '-J', '-R', '-o', iso, src]);
  const squashfs = join(tmp, 'sq.img');
  await run('mksquashfs', [src, squashfs, '-noappend', '-quiet', '-all-root']);
  // exfat: made here, filled by the appliance's kernel (this host has no exfat driver).
  const exfat = join(tmp, 'exfat.raw');
  await run('truncate', ['-s', '64M', exfat]);
  await run('mkfs.exfat', ['-L', 'EXFATVOL', exfat]);
  await inGuest(
    [exfat],
    `mkdir -p /tmp/e && mount -t exfat /dev/${guestDisk(0)} /tmp/e
mkdir /tmp/e/Folder && echo 'on exfat' > /tmp/e/Folder/file.txt && printf 'x%.0s' $(seq 1 5000) > /tmp/e/big.txt
umount /tmp/e && sync`,
  );
  return { files: ['btrfs.raw', 'cd.iso', 'sq.img', 'exfat.raw'], info: { btrfs, iso, squashfs, exfat, btrfsUuid } };
}

// ---- (d) LUKS2 ----------------------------------------------------------------------------

/** Encrypts `plain` as dm-crypt's aes-xts-plain64 with 512-byte sectors: each sector's IV is its number (little endian). */
function xtsEncrypt(key: Buffer, plain: Buffer): Buffer {
  const out = Buffer.alloc(plain.length);
  const iv = Buffer.alloc(16);
  for (let s = 0; s * 512 < plain.length; s++) {
    iv.fill(0);
    iv.writeBigUInt64LE(BigInt(s), 0);
    const c = createCipheriv('aes-256-xts', key, iv);
    const enc = Buffer.concat([c.update(plain.subarray(s * 512, s * 512 + 512)), c.final()]);
    enc.copy(out, s * 512);
  }
  return out;
}

async function makeLuks(tmp: string): Promise<{ files: string[]; info: LuksImage }> {
  const path = join(tmp, 'luks.raw');
  await run('truncate', ['-s', '64M', path]);
  const keyFile = join(tmp, 'key');
  await writeFile(keyFile, LUKS_KEY);
  const volumeKey = randomBytes(64);
  await writeFile(join(tmp, 'vk'), volumeKey);
  const uuid = 'c0ffee00-1234-4567-89ab-cdef01234567';
  await run('cryptsetup', [
    'luksFormat',
    '--batch-mode',
    '--type',
    'luks2',
    '--pbkdf',
    'pbkdf2',
    '--pbkdf-force-iterations',
    '1000',
    '--cipher',
    'aes-xts-plain64',
    '--key-size',
    '512',
    '--sector-size',
    '512',
    '--uuid',
    uuid,
    '--key-file',
    keyFile,
    '--volume-key-file',
    join(tmp, 'vk'),
    path,
  ]);
  const dump = (await run('cryptsetup', ['luksDump', path])).stdout;
  const offset = Number(/offset:\s+(\d+) \[bytes\]/.exec(dump)![1]);
  // The ext4 inside, made and filled as a plain file, then encrypted into the data segment.
  const inner = join(tmp, 'inner.raw');
  await run('truncate', ['-s', String(64 * MiB - offset), inner]);
  const innerUuid = '11112222-3333-4444-8555-666677778888';
  await run('mkfs.ext4', ['-q', '-L', 'secret', '-U', innerUuid, inner]);
  await withLoop(inner, 0, undefined, (dev) =>
    withMount(dev, [], async (dir) => {
      await writeFile(join(dir, 'secret.txt'), 'inside LUKS\n');
    }),
  );
  const fh = await open(path, 'r+');
  await fh.write(xtsEncrypt(volumeKey, await readFile(inner)), 0, 64 * MiB - offset, offset);
  await fh.close();
  return { files: ['luks.raw'], info: { path, uuid, key: LUKS_KEY, innerUuid } };
}

// ---- (e) clones --------------------------------------------------------------------------

async function makeClones(tmp: string): Promise<{ files: string[]; info: CloneImages }> {
  const ext4Uuid = 'e4e4e4e4-0000-4000-8000-000000000001';
  const base = join(tmp, 'base-ext4.raw');
  await run('truncate', ['-s', '32M', base]);
  await run('mkfs.ext4', ['-q', '-L', 'clone', '-U', ext4Uuid, base]);
  await withLoop(base, 0, undefined, (dev) => withMount(dev, [], (dir) => writeFile(join(dir, 'common.txt'), 'in both\n')));
  const btrfsUuid = 'b7f5b7f5-0000-4000-8000-000000000002';
  const bbase = join(tmp, 'base-btrfs.raw');
  await run('truncate', ['-s', '128M', bbase]);
  await run('mkfs.btrfs', ['-q', '-L', 'bclone', '-U', btrfsUuid, bbase]);
  await withLoop(bbase, 0, undefined, (dev) => withMount(dev, [], (dir) => writeFile(join(dir, 'common.txt'), 'in both\n')));
  const names = { ext4: ['clone-a-ext4.raw', 'clone-b-ext4.raw'], btrfs: ['clone-a-btrfs.raw', 'clone-b-btrfs.raw'] };
  for (const [kind, pair] of Object.entries(names)) {
    for (const [i, name] of pair.entries()) {
      await copyFile(kind === 'ext4' ? base : bbase, join(tmp, name));
      // Each clone gets content of its own after cloning: a read from the twin shows.
      await withLoop(join(tmp, name), 0, undefined, (dev) => withMount(dev, [], (dir) => writeFile(join(dir, 'whoami'), `clone ${'ab'[i]} (${kind})\n`)));
      // btrfs: the host kernel must forget this clone before it mounts its twin.
      if (kind === 'btrfs') await run('btrfs', ['device', 'scan', '--forget']).catch(() => {});
    }
  }
  const at = (n: string) => join(tmp, n);
  return {
    files: [...names.ext4, ...names.btrfs],
    info: { ext4: [at(names.ext4[0]!), at(names.ext4[1]!)], btrfs: [at(names.btrfs[0]!), at(names.btrfs[1]!)], ext4Uuid, btrfsUuid },
  };
}

// ---- (f) a corrupt ext4 ------------------------------------------------------------------

async function makeCorrupt(tmp: string): Promise<{ files: string[]; info: CorruptImage }> {
  const raw = join(tmp, 'corrupt.raw');
  await run('truncate', ['-s', '72M', raw]);
  await run('sfdisk', ['-q', raw], { input: 'label: gpt\nsize=32M, type=L, name=bad\nsize=32M, type=L, name=good\n' });
  const [bad, good] = (await partitions(raw)) as [PartitionLayout, PartitionLayout];
  await withLoop(raw, bad.start, bad.size, async (dev) => {
    await run('mkfs.ext4', ['-q', '-L', 'broken', dev]);
    await withMount(dev, [], (dir) => writeFile(join(dir, 'lost.txt'), 'cannot be read\n'));
    // A superblock that still says ext4 (blkid and we find it) but that the kernel refuses:
    // debugfs sets the field and keeps the superblock's checksum right.
    await run('debugfs', ['-w', '-R', 'ssv first_ino 1', dev]);
  });
  await withLoop(raw, good.start, good.size, async (dev) => {
    await run('mkfs.ext4', ['-q', '-L', 'fine', dev]);
    await withMount(dev, [], (dir) => writeFile(join(dir, 'fine.txt'), 'readable\n'));
  });
  return { files: ['corrupt.raw'], info: { path: raw } };
}
