// A diff a test suite can trust: two images where the second is a clone of the first with
// files changed, as image builders and their tests make them. The clone shares every UUID
// and label with its original, so each disk's fstab must resolve on that disk; the diff
// covers every filesystem the OS mounts, and is sorted by path as virt-diff prints it.
//
// The images: GPT, a vfat ESP (/boot/efi), an ext4 root, an ext4 /srv, fstab by UUID; made
// with mkfs.ext4 -d, mkfs.vfat + mtools and sfdisk, changed with debugfs -w and mtools
// (the clone's files as guestfish would leave them: new inodes, new times).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diff, inspect } from '../src/inspect/index.js';
import { inGuest } from './helpers/in-guest.js';
import { SHARED_CACHE } from './helpers/shared-cache.js';

const CLI = resolve('dist/src/bin.cjs');
const ROOT_UUID = '6a3c1f0e-8a4b-4c55-9d1e-0a1b2c3d4e5f';
const SRV_UUID = '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';
const ESP_ID = 'ABCD1234';
const OLD = new Date('2021-03-04T05:06:07Z');

let work: string;
let before: string;
let after: string;

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, MTOOLS_SKIP_CHECK: '1', ...env } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function tree(dir: string, files: Record<string, string>): void {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
    utimesSync(join(dir, path), OLD, OLD);
  }
}

/** The three partitions, laid out by sfdisk, written into one raw disk. */
function assemble(out: string, esp: string, root: string, srv: string): void {
  writeFileSync(out, '');
  sh('truncate', ['-s', '120M', out]);
  const layout = spawnSync('sfdisk', ['-q', out], {
    input: 'label: gpt\nstart=2048, size=65536, type=uefi\nstart=67584, size=131072, type=linux\nstart=198656, size=32768, type=linux\n',
  });
  if (layout.status !== 0) throw new Error(`sfdisk: ${layout.stderr}`);
  for (const [img, sector] of [
    [esp, 2048],
    [root, 67584],
    [srv, 198656],
  ] as const) {
    sh('dd', [`if=${img}`, `of=${out}`, 'bs=512', `seek=${sector}`, 'conv=notrunc,sparse', 'status=none']);
  }
}

const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args, '--cache-dir', SHARED_CACHE], { encoding: 'utf8', timeout: 180_000 });
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'appliance-diff-clones-'));
  const root = join(work, 'root');
  const docs = Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`/usr/share/doc/pkg${i}/copyright`, `package ${i}\n`.repeat(20)]));
  tree(root, {
    '/etc/fstab': `UUID=${ROOT_UUID} / ext4 errors=remount-ro 0 1\nUUID=${ESP_ID.slice(0, 4)}-${ESP_ID.slice(4)} /boot/efi vfat umask=0077 0 1\nUUID=${SRV_UUID} /srv ext4 defaults 0 2\nUUID=${SRV_UUID} /mnt/absent ext4 noauto 0 0\n`,
    '/etc/os-release': 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n',
    '/etc/debian_version': '12.8\n',
    '/etc/hostname': 'clone-test\n',
    '/etc/motd': 'hello from the original\n',
    '/etc/old.conf': 'removed in the clone\n',
    '/etc/same-size': 'AAAAAAAAAA\n',
    ...docs,
  });
  // A name that is not UTF-8 (Latin-1 "café") and one with a backslash: the command line names them with \xNN.
  writeFileSync(Buffer.from(`${join(root, 'etc')}/caf\xe9`, 'latin1'), 'latin-1\n');
  writeFileSync(join(root, 'etc', 'back\\slash'), 'backslash\n');
  // A program of the host's: the ELF that tells libguestfs's rules (and ours) this is a root.
  mkdirSync(join(root, 'bin'));
  copyFileSync('/bin/ls', join(root, 'bin/ls'));
  mkdirSync(join(root, 'boot/efi'), { recursive: true });
  mkdirSync(join(root, 'srv'), { recursive: true });
  const srv = join(work, 'srv');
  tree(srv, { '/data/kept.txt': 'kept\n' });

  const [rootA, srvA, espA] = ['root-a.img', 'srv-a.img', 'esp-a.img'].map((f) => join(work, f)) as [string, string, string];
  sh('mkfs.ext4', ['-q', '-U', ROOT_UUID, '-E', 'root_owner=0:0', '-d', root, rootA, '64M'], { E2FSPROGS_FAKE_TIME: String(OLD.getTime() / 1000) });
  sh('mkfs.ext4', ['-q', '-U', SRV_UUID, '-d', srv, srvA, '16M'], { E2FSPROGS_FAKE_TIME: String(OLD.getTime() / 1000) });
  sh('mkfs.vfat', ['-i', ESP_ID, '-n', 'ESP', '-C', espA, String(32 * 1024)]);
  writeFileSync(join(work, 'grub.cfg'), 'set root=hd0,gpt2\n');
  sh('mmd', ['-i', espA, '::/EFI', '::/EFI/debian']);
  sh('mcopy', ['-i', espA, join(work, 'grub.cfg'), '::/EFI/debian/grub.cfg']);

  // The clone: the same filesystems, then three files changed as a tool in the image would.
  const [rootB, srvB, espB] = ['root-b.img', 'srv-b.img', 'esp-b.img'].map((f) => join(work, f)) as [string, string, string];
  for (const [a, b] of [
    [rootA, rootB],
    [srvA, srvB],
    [espA, espB],
  ] as const)
    copyFileSync(a, b);
  writeFileSync(join(work, 'motd'), 'hello from the clone!!!\n'); // the same size as the original's
  writeFileSync(join(work, 'same'), 'BBBBBBBBBB\n');
  writeFileSync(join(work, 'new.txt'), 'added in the clone\n');
  sh('debugfs', ['-w', '-R', 'rm /etc/motd', rootB]);
  sh('debugfs', ['-w', '-R', `write ${join(work, 'motd')} /etc/motd`, rootB]);
  sh('debugfs', ['-w', '-R', 'rm /etc/old.conf', rootB]);
  sh('debugfs', ['-w', '-R', 'rm /etc/same-size', rootB]);
  sh('debugfs', ['-w', '-R', `write ${join(work, 'same')} /etc/same-size`, rootB]);
  sh('debugfs', ['-w', '-R', `write ${join(work, 'new.txt')} /data/new.txt`, srvB]);
  writeFileSync(join(work, 'grub.cfg'), 'set root=hd0,gpt3\n');
  sh('mcopy', ['-o', '-i', espB, join(work, 'grub.cfg'), '::/EFI/debian/grub.cfg']);

  const [rawA, rawB] = [join(work, 'a.raw'), join(work, 'b.raw')];
  assemble(rawA, espA, rootA, srvA);
  assemble(rawB, espB, rootB, srvB);
  before = join(work, 'before.qcow2');
  after = join(work, 'after.qcow2');
  sh('qemu-img', ['convert', '-O', 'qcow2', rawA, before]);
  sh('qemu-img', ['convert', '-O', 'qcow2', rawB, after]);
}, 120_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('diff of an image and its clone', () => {
  it('the command lists the changes on every filesystem the OS mounts, sorted by path; either order; the images unchanged', () => {
    const sums = [sha(before), sha(after)];
    const forward = cli('diff', before, after);
    expect(forward.stderr).toBe('');
    expect(forward.status).toBe(0);
    const paths = (out: string) =>
      out
        .trim()
        .split('\n')
        .map((l) => `${l[0]} ${l.slice(l.lastIndexOf(' /') + 1).replace(/ \(.*\)$/, '')}`);
    expect(paths(forward.stdout)).toEqual(['= /boot/efi/EFI/debian/grub.cfg', '= /etc/motd', '- /etc/old.conf', '= /etc/same-size', '+ /srv/data/new.txt']);
    expect(forward.stdout).toMatch(/^= .* \/etc\/motd \(content\)$/m);
    const backward = cli('diff', after, before);
    expect(paths(backward.stdout)).toEqual(['= /boot/efi/EFI/debian/grub.cfg', '= /etc/motd', '+ /etc/old.conf', '= /etc/same-size', '- /srv/data/new.txt']);
    expect([sha(before), sha(after)]).toEqual(sums);
  });

  it('--json, and --checksum-all (every file hashed) finds the same', () => {
    const quick = JSON.parse(cli('diff', '--json', before, after).stdout) as { change: string; path: string; attributes?: string[] }[];
    const all = JSON.parse(cli('diff', '--json', '--checksum-all', before, after).stdout) as typeof quick;
    const brief = (l: typeof quick) => l.map((c) => [c.change, c.path, c.attributes ?? []]);
    expect(brief(quick)).toEqual(brief(all));
    expect(brief(quick)).toContainEqual(['changed', '/etc/same-size', ['content']]);
  });

  it('the library: each disk is its own OS tree, its fstab resolved on that disk; one filesystem against its twin too', async () => {
    await using img = await inspect([before, after], { cacheDir: SHARED_CACHE });
    const oses = await img.os();
    expect(oses.map((o) => o.mountpoints)).toEqual([
      { '/': 'disk0:2', '/boot/efi': 'disk0:1', '/srv': 'disk0:3', '/mnt/absent': 'disk0:3' },
      { '/': 'disk1:2', '/boot/efi': 'disk1:1', '/srv': 'disk1:3', '/mnt/absent': 'disk1:3' },
    ]);
    const changes = await diff(await img.tree(0), await img.tree(1));
    expect(changes.map((c) => `${c.change} ${String(c.path)}`)).toEqual([
      'changed /boot/efi/EFI/debian/grub.cfg',
      'changed /etc/motd',
      'removed /etc/old.conf',
      'changed /etc/same-size',
      'added /srv/data/new.txt',
    ]);
    const srv = await diff(await img.mount('disk0:3'), await img.mount('disk1:3'));
    expect(srv.map((c) => `${c.change} ${String(c.path)}`)).toEqual(['added /data/new.txt']);
  });

  it('the library as a test uses it: { path } of a qcow2 is detected, raw over it refused in our words, a missing image said first, a closed inspection says so', async () => {
    {
      await using img = await inspect([{ path: before }], { cacheDir: SHARED_CACHE });
      expect((await img.os())[0]).toMatchObject({ distro: 'debian', hostname: 'clone-test' });
    }
    await expect(inspect([{ path: before, format: 'raw' }], { cacheDir: SHARED_CACHE })).rejects.toMatchObject({
      code: 'EDISKFORMAT',
      message: `disk ${before} has a qcow2 header: give format: 'qcow2' to inspect it (as raw, its container would be read as the disk)`,
    });
    const missing = await inspect([join(work, 'nope.qcow2')], { cacheDir: join(work, 'empty-cache') }).catch((e: Error) => e);
    expect(missing).toMatchObject({ code: 'EDISKACCESS' });
    // Said before anything was built: the empty cache stays without an appliance.
    expect(existsSync(join(work, 'empty-cache', 'entries'))).toBe(false);
    const img = await inspect([before], { cacheDir: SHARED_CACHE });
    const root = await img.mount('disk0:2');
    await img.close();
    const err = await root.readFile('/etc/motd').catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'ECLOSED' });
    expect((err as Error).message).not.toMatch(/libexec|\/run\/appliance/);
  });

  it('ls and copy-out read the OS as it is mounted: every filesystem below the path in its place, tree order, mount points as folders', () => {
    const all = cli('ls', '-R', before, '/');
    expect(all.status).toBe(0);
    const lines = all.stdout.trim().split('\n');
    // The ESP and /srv in their places, each folder followed by what it holds (as virt-ls -R lists it).
    const at = (p: string) => lines.indexOf(p);
    for (const p of ['/boot/efi/EFI/debian/grub.cfg', '/srv/data/kept.txt', '/etc/motd']) expect(lines).toContain(p);
    expect(at('/boot') < at('/boot/efi') && at('/boot/efi') < at('/boot/efi/EFI') && at('/boot/efi/EFI/debian/grub.cfg') < at('/etc')).toBe(true);
    expect(at('/srv') + 1).toBe(at('/srv/data'));
    // fstab's noauto line for a folder the image lacks is not there (mount(8) would fail): nothing under /mnt.
    expect(lines.filter((l) => l.startsWith('/mnt'))).toEqual([]);
    expect(cli('ls', before, '/').stdout.trim().split('\n')).toEqual(['bin', 'boot', 'etc', 'lost+found', 'srv', 'usr']);
    // A mount point copied as the folder it is, not spread into the host folder.
    const dest = join(work, 'copy-mounts');
    mkdirSync(dest);
    expect(cli('copy-out', before, '/boot/efi', '/srv', dest).status).toBe(0);
    expect(readFileSync(join(dest, 'efi/EFI/debian/grub.cfg'), 'utf8')).toBe('set root=hd0,gpt2\n');
    expect(readFileSync(join(dest, 'srv/data/kept.txt'), 'utf8')).toBe('kept\n');
    // The whole OS: each mounted filesystem in its mount point's folder.
    const whole = join(work, 'copy-whole');
    mkdirSync(whole);
    expect(cli('copy-out', before, '/', whole).status).toBe(0);
    expect(readFileSync(join(whole, 'boot/efi/EFI/debian/grub.cfg'), 'utf8')).toBe('set root=hd0,gpt2\n');
    expect(readFileSync(join(whole, 'srv/data/kept.txt'), 'utf8')).toBe('kept\n');
    expect(readFileSync(join(whole, 'etc/motd'), 'utf8')).toBe('hello from the original\n');
    // Paths spelled otherwise reach the same file; a file named as a folder is refused as the kernel refuses it.
    for (const p of ['//etc/motd', '/boot/efi/../../etc/motd', '/srv/./../etc//motd']) expect(cli('cat', before, p).stdout).toBe('hello from the original\n');
    expect(cli('cat', before, '/etc/caf\\xe9', '/etc/back\\x5cslash').stdout).toBe('latin-1\nbackslash\n');
    const notDir = cli('cat', before, '/etc/motd/');
    expect([notDir.status, notDir.stderr]).toEqual([1, `appliance: ${before}: /etc/motd/: ENOTDIR: not a folder\n`]);
    // A filesystem the image does not hold: the choices as this command line names them (IMAGE:N), not the library's disk0:N.
    for (const r of [cli('cat', `${before}:9`, '/etc/motd'), cli('ls', `${before}:nolabel`, '/'), cli('diff', `${before}:9`, after)]) {
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(`^appliance: no filesystem "${before}:(9|nolabel)": the filesystems are ${before}:1 \\(vfat[^)]*\\), ${before}:2 \\(ext4`),
      );
      expect(r.stderr).not.toMatch(/disk0/);
    }
  });

  it('copy-out never follows a symlink the image put where a mount point is (/boot -> a host folder, fstab mounting /boot/efi)', () => {
    // The victim: a host folder that an absolute symlink in the image names, with the empty folder a mount would fill.
    const victim = join(work, 'victim');
    mkdirSync(join(victim, 'efi'), { recursive: true });
    const rootH = join(work, 'root-h.img');
    copyFileSync(join(work, 'root-a.img'), rootH);
    for (const cmd of ['rmdir /boot/efi', 'rmdir /boot', `symlink /boot ${victim}`]) sh('debugfs', ['-w', '-R', cmd, rootH]);
    const hostile = join(work, 'hostile.raw');
    assemble(hostile, join(work, 'esp-a.img'), rootH, join(work, 'srv-a.img'));
    const dest = join(work, 'copy-hostile');
    mkdirSync(dest);
    const r = cli('copy-out', hostile, '/', dest);
    // The ESP cannot be mounted there, as mount(8) could not: said, exit 1.
    expect([r.status, r.stderr]).toEqual([
      1,
      `appliance: ${hostile}: /boot/efi: cannot mount its filesystem (vfat, read-only) there: ENOENT: the OS has no folder there\n`,
    ]);
    expect(readdirSync(join(victim, 'efi'))).toEqual([]);
    expect(readlinkSync(join(dest, 'boot'))).toBe(victim);
    expect(readFileSync(join(dest, 'srv/data/kept.txt'), 'utf8')).toBe('kept\n');
    // Nor does ls: no /boot/efi below a symlink.
    expect(cli('ls', '-R', hostile, '/').stdout).not.toMatch(/^\/boot\/efi/m);
  });

  it('ls -R of a path on another filesystem prints it as the OS has it', () => {
    const r = cli('ls', '-R', before, '/boot/efi');
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['/boot/efi', '/boot/efi/EFI', '/boot/efi/EFI/debian', '/boot/efi/EFI/debian/grub.cfg']);
  });
});

// Two images built apart from the same inputs but one file's bytes (reproducible builds:
// one UUID, the same inode numbers and times): not clones, so every same-size file is hashed.
describe('diff of two reproducible builds', () => {
  it('finds a file whose bytes differ under the same inode number, size and times', () => {
    const trees = ['build-a', 'build-b'].map((t) => join(work, t));
    trees.forEach((t, i) => tree(t, { '/app.conf': `debug=${i}\n`, '/same.txt': 'same\n' }));
    const [a, b] = trees.map((t) => `${t}.img`) as [string, string];
    for (const [t, img] of [
      [trees[0]!, a],
      [trees[1]!, b],
    ])
      expect(spawnSync(process.execPath, [CLI, 'mkext2', t, img, '--size', '8M'], { encoding: 'utf8' }).status).toBe(0);
    const r = cli('diff', a, b);
    expect([r.status, r.stdout, r.stderr]).toEqual([0, '= - 0644          8 /app.conf (content)\n', '']);
  });
});

// The same on an OS whose root is an LVM logical volume, as most RHEL, Fedora and server
// installs are: a clone shares its PV and VG UUIDs, which one kernel cannot activate twice.
describe('diff of an OS on LVM and its clone', () => {
  const BOOT_UUID = '3b1c2d4e-5f60-4718-8a9b-0c1d2e3f4a5b';
  let lvmA: string;
  let lvmB: string;

  beforeAll(async () => {
    const root = join(work, 'lvm-root');
    tree(root, {
      '/etc/fstab': `/dev/mapper/vgclone-root / ext4 defaults 0 1\nUUID=${BOOT_UUID} /boot ext4 defaults 0 2\n`,
      '/etc/os-release': 'NAME="Fedora Linux"\nVERSION_ID=40\nID=fedora\n',
      '/etc/hostname': 'lvm-clone\n',
      '/etc/motd': 'hello from the original\n',
      '/etc/old.conf': 'removed in the clone\n',
    });
    mkdirSync(join(root, 'bin'));
    copyFileSync('/bin/ls', join(root, 'bin/ls'));
    mkdirSync(join(root, 'boot'));
    const boot_ = join(work, 'lvm-boot');
    tree(boot_, { '/grub.cfg': 'set root=hd0,msdos1\n' });
    const [rootFs, bootFs] = [join(work, 'lvm-root.img'), join(work, 'lvm-boot.img')];
    sh('mkfs.ext4', ['-q', '-d', root, rootFs, '24M']);
    sh('mkfs.ext4', ['-q', '-U', BOOT_UUID, '-d', boot_, bootFs, '8M']);
    lvmA = join(work, 'lvm-a.raw');
    lvmB = join(work, 'lvm-b.raw');
    sh('truncate', ['-s', '48M', lvmA]);
    const layout = spawnSync('sfdisk', ['-q', lvmA], { input: 'label: dos\nstart=2048, size=16384, type=83\nstart=18432, type=8e\n' });
    if (layout.status !== 0) throw new Error(`sfdisk: ${layout.stderr}`);
    sh('dd', [`if=${bootFs}`, `of=${lvmA}`, 'bs=512', 'seek=2048', 'conv=notrunc', 'status=none']);
    // The PV, the VG and the root LV made by lvm in an appliance (this host has no device-mapper), the root copied onto it.
    await inGuest(
      `lvm_ pvcreate "$(disk 0)2"\nlvm_ vgcreate vgclone "$(disk 0)2"\nlvm_ lvcreate -Zn -L 24M -n root vgclone\n` +
        `cat "$(disk 1)" > /dev/mapper/vgclone-root\nsync\nlvm_ vgchange -an vgclone\n`,
      [lvmA],
      [rootFs],
    );
    copyFileSync(lvmA, lvmB);
    // The clone changed through its own LVM: a file rewritten at the same size, one removed, one added, /boot's grub.cfg.
    await inGuest(
      `lvm_ vgchange -ay vgclone\nmount /dev/mapper/vgclone-root /mnt\nprintf 'hello from the clone!!!\\n' > /mnt/etc/motd\n` +
        `rm /mnt/etc/old.conf\necho added > /mnt/etc/new.conf\numount /mnt\nmount "$(disk 0)1" /mnt\n` +
        `printf 'set root=lvm/vgclone-root\\n' > /mnt/grub.cfg\numount /mnt\nlvm_ vgchange -an vgclone\n`,
      [lvmB],
    );
  }, 180_000);

  it('the command finds exactly the changes, on the LV root and /boot, in either order and with --json', () => {
    const sums = [sha(lvmA), sha(lvmB)];
    const lines = (r: ReturnType<typeof cli>) => {
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      return r.stdout
        .trim()
        .split('\n')
        .map((l) => `${l[0]} ${l.slice(l.lastIndexOf(' /') + 1)}`);
    };
    expect(lines(cli('diff', lvmA, lvmB))).toEqual(['= /boot/grub.cfg (size, content)', '= /etc/motd (content)', '+ /etc/new.conf', '- /etc/old.conf']);
    expect(lines(cli('diff', lvmB, lvmA))).toEqual(['= /boot/grub.cfg (size, content)', '= /etc/motd (content)', '- /etc/new.conf', '+ /etc/old.conf']);
    const json = JSON.parse(cli('diff', '--json', lvmA, lvmB).stdout) as { change: string; path: string }[];
    expect(json.map((c) => `${c.change} ${c.path}`)).toEqual(['changed /boot/grub.cfg', 'changed /etc/motd', 'added /etc/new.conf', 'removed /etc/old.conf']);
    expect([sha(lvmA), sha(lvmB)]).toEqual(sums);
  });

  it("the library: an LV root is its disk's tree; clones in one inspection say so (ECLONE) rather than read another filesystem", async () => {
    {
      await using a = await inspect([lvmA], { cacheDir: SHARED_CACHE });
      await using b = await inspect([lvmB], { cacheDir: SHARED_CACHE });
      expect((await a.os())[0]).toMatchObject({ root: 'vgclone/root', mountpoints: { '/': 'vgclone/root', '/boot': 'disk0:1' } });
      const changes = await diff(await a.tree(), await b.tree());
      expect(changes.map((c) => `${c.change} ${String(c.path)}`)).toEqual([
        'changed /boot/grub.cfg',
        'changed /etc/motd',
        'added /etc/new.conf',
        'removed /etc/old.conf',
      ]);
      const [at] = [await a.locate('/etc/hostname')];
      expect(at.fs.info.id).toBe('vgclone/root');
    }
    await using both = await inspect([lvmA, lvmB], { cacheDir: SHARED_CACHE });
    expect(both.volumes().errors.join('\n')).toMatch(/is on disk0:2 and disk1:2 \(cloned images\?\): not assembled; inspect each image on its own/);
    for (const disk of [0, 1]) {
      await expect(both.tree(disk)).rejects.toMatchObject({ code: 'ECLONE', message: expect.stringContaining(`disk${disk} (${disk ? lvmB : lvmA})`) });
      // Its only filesystem left (/boot) is not taken for the OS's tree.
      await expect(both.locate('/etc/hostname', '', disk)).rejects.toMatchObject({ code: 'ECLONE' });
    }
  });
});
