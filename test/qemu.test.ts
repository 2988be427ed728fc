// The launcher's parts that need no boot: argv, disk format safety (qemu-img as the
// oracle), the host TSC rule, the accelerator verdict, and the PVH vmlinux extraction
// (readelf and the lz4 tool as oracles).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { DiskRefusedError } from '../src/errors.js';
import { DISK_SLOTS } from '../src/guest/contract.js';
import { planAccel, TCG } from '../src/launcher/accel.js';
import { BASE_CMDLINE, DISK_FD, kernelCmdline, qemuArgv, TCG_TB_SIZE_MB } from '../src/launcher/argv.js';
import { closeDisks, detectDiskFormat, diskSpecs, openDisk, openDisks, type DiskFormat, type DiskSpec } from '../src/launcher/disks.js';
import { findQemu } from '../src/launcher/binary.js';
import { machineCandidates, machineProfile } from '../src/launcher/machine.js';
import { snapshotKey } from '../src/launcher/snapshot.js';
import { hostTscKhz } from '../src/launcher/tsc.js';
import { hasPvhEntry } from '../src/kernel/pvh.js';
import { pvhKernel } from '../src/launcher/kernel.js';
import { hostKernel } from './qemu-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'qemu-unit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Splits argv into the values of each option: `-drive` → every -drive value. */
function values(argv: string[], option: string): string[] {
  return argv.flatMap((a, i) => (a === option ? [argv[i + 1]!] : []));
}

describe('qemu argv', () => {
  const base = {
    accel: TCG,
    memoryMb: 512,
    cpus: 1,
    boot: { kernel: '/k', initrd: '/i', cmdline: 'console=ttyS0' },
    root: '/cache/root,1.ext2',
    disks: [
      { path: '/d/a.img', format: 'raw' as const, readonly: true, protocol: 'file' as const, allowBackingFile: false },
      { path: '/d/b,2.qcow2', format: 'qcow2' as const, readonly: false, protocol: 'host_device' as const, allowBackingFile: false },
      { path: '/d/trusted.qcow2', format: 'qcow2' as const, readonly: true, protocol: 'file' as const, allowBackingFile: true },
    ],
    channelSocket: '/run/ch.sock',
  };

  it('attaches the root read-only and raw, user disks by inherited descriptor with explicit formats, and the agent port', () => {
    const argv = qemuArgv({ ...base, machine: machineProfile('q35') });
    for (const flag of ['-nodefaults', '-no-user-config', '-no-reboot']) expect(argv).toContain(flag);
    expect(values(argv, '-display')).toEqual(['none']);
    expect(values(argv, '-serial')).toEqual(['stdio']);
    // The comma in the root's path is doubled, or qemu would read "1.ext2" as an option.
    // Every file by an explicit protocol driver: no path or image name is ever parsed as a
    // protocol (fat:, json:…). User disks come as inherited fds from 4 on, two slots each (a
    // read-write disk also gets a read-only fd), and open no backing file unless allowed
    // ("backing": null); a trusted backed image goes by its path.
    expect(values(argv, '-drive')).toEqual(['if=none,id=root,driver=raw,file.driver=file,file.filename=/cache/root,,1.ext2,readonly=on']);
    expect(values(argv, '-blockdev').map((j) => JSON.parse(j))).toEqual([
      { driver: 'raw', 'node-name': 'disk0', 'read-only': true, file: { driver: 'file', filename: '/dev/fdset/1' } },
      { driver: 'qcow2', 'node-name': 'disk1', 'read-only': false, backing: null, file: { driver: 'host_device', filename: '/dev/fdset/2' } },
      { driver: 'qcow2', 'node-name': 'disk2', 'read-only': true, file: { driver: 'file', filename: '/d/trusted.qcow2' } },
    ]);
    expect(DISK_FD).toBe(4);
    expect(values(argv, '-add-fd')).toEqual(['fd=4,set=1', 'fd=6,set=2', 'fd=7,set=2']);
    // The root disk and the channel first: the init binds the first two before its snapshot point.
    expect(values(argv, '-device')).toEqual([
      'virtio-blk-pci,drive=root,serial=appliance-root',
      'virtio-serial-pci',
      'virtserialport,chardev=agent,name=org.appliance.agent',
      'virtio-blk-pci,drive=disk0,serial=disk0',
      'virtio-blk-pci,drive=disk1,serial=disk1',
      'virtio-blk-pci,drive=disk2,serial=disk2',
    ]);
    expect(values(argv, '-chardev')).toEqual(['socket,id=agent,path=/run/ch.sock']);
    expect(values(argv, '-accel')).toEqual([`tcg,tb-size=${TCG_TB_SIZE_MB}`]);
    expect(values(argv, '-cpu')).toEqual(['max']);
  });

  it("uses virtio-mmio devices on microvm, and no -cpu for KVM with qemu's default model", () => {
    const argv = qemuArgv({ ...base, machine: machineProfile('microvm'), accel: { accel: 'kvm' } });
    expect(values(argv, '-machine')[0]).toMatch(/^microvm,/);
    expect(values(argv, '-device').filter((d) => d.includes('-pci'))).toEqual([]);
    expect(values(argv, '-device')).toContain('virtio-serial-device');
    expect(argv).not.toContain('-cpu');
    expect(argv).not.toContain('-bios');
  });

  it('gives the guest the TSC frequency under TCG only', () => {
    expect(kernelCmdline(TCG, 2445402, ['appliance.root=x'])).toBe(`${BASE_CMDLINE.join(' ')} tsc_early_khz=2445402 appliance.root=x`);
    expect(kernelCmdline({ accel: 'kvm' }, 2445402)).not.toContain('tsc_early_khz');
    expect(kernelCmdline(TCG, undefined)).not.toContain('tsc_early_khz');
  });

  it('saves a snapshot with the RAM in a shared file, and restores one privately without the kernel', () => {
    const cfg = { ...base, machine: machineProfile('microvm'), disks: [] };
    const save = qemuArgv({ ...cfg, ramFile: { path: '/c/s,1/ram', shared: true }, monitorSocket: '/run/m.sock' });
    expect(values(save, '-machine')[0]).toMatch(/,memory-backend=ram$/);
    expect(values(save, '-object')).toEqual(['memory-backend-file,id=ram,size=512M,mem-path=/c/s,,1/ram,share=on']);
    expect(values(save, '-global')).toEqual(['migration.store-global-state=off']);
    expect(values(save, '-kernel')).toEqual(['/k']);
    expect(values(save, '-mon')).toEqual(['chardev=qmp,mode=control']);
    expect(values(save, '-chardev')).toContain('socket,id=qmp,path=/run/m.sock');

    const restore = qemuArgv({ ...cfg, boot: 'incoming', ramFile: { path: '/c/s/ram', shared: false }, monitorSocket: '/run/m.sock' });
    expect(values(restore, '-object')).toEqual(['memory-backend-file,id=ram,size=512M,mem-path=/c/s/ram,share=off']);
    // qemu would copy a -kernel over the restored memory at reset.
    for (const o of ['-kernel', '-initrd', '-append', '-global']) expect(restore).not.toContain(o);
    expect(values(restore, '-incoming')).toEqual(['defer']);
    expect(qemuArgv(cfg)).not.toContain('-object');
  });

  it('keys snapshots by what the saved guest depends on: not by user disk paths, formats, read-only flags or a count up to DISK_SLOTS', async () => {
    const qemu = findQemu();
    const cfg = { ...base, machine: machineProfile('microvm') };
    const key = snapshotKey(qemu, cfg);
    expect(key).toMatch(/^[0-9a-f]{32}$/);
    const otherFiles = {
      ...cfg,
      channelSocket: '/x',
      disks: cfg.disks.map((d, i) => ({ ...d, path: `/o/${i}`, format: 'vdi' as const, protocol: 'file' as const, allowBackingFile: false })),
    };
    expect(snapshotKey(qemu, otherFiles)).toBe(key);
    // One snapshot for every count of disks up to DISK_SLOTS, read-only or not (stand-ins fill the slots).
    for (const same of [
      { ...cfg, disks: [] },
      { ...cfg, disks: cfg.disks.slice(1) },
      { ...cfg, disks: cfg.disks.map((d) => ({ ...d, readonly: !d.readonly })) },
    ])
      expect(snapshotKey(qemu, same)).toBe(key);
    const changed = [
      { ...cfg, disks: Array.from({ length: DISK_SLOTS + 1 }, () => cfg.disks[0]!) },
      { ...cfg, memoryMb: 1024 },
      { ...cfg, boot: { ...cfg.boot, initrd: '/other-initrd' } },
      { ...cfg, root: 'another-root-identity' },
      { ...cfg, boot: { ...cfg.boot, cmdline: 'console=ttyS0 quiet' } },
      { ...cfg, machine: machineProfile('q35') },
    ];
    for (const c of changed) expect(snapshotKey(qemu, c)).not.toBe(key);
  });

  it('avoids microvm under TCG when the TSC frequency is unknown', () => {
    expect(machineCandidates('auto', 'tcg', 2445402)[0]).toBe('microvm');
    expect(machineCandidates('auto', 'tcg', undefined)).toEqual(['q35', 'pc']);
    expect(machineCandidates('auto', 'kvm', undefined)[0]).toBe('microvm');
    expect(machineCandidates('pc', 'tcg', undefined)).toEqual(['pc']);
  });
});

describe('host TSC frequency', () => {
  const cpuinfo = (flags: string) => {
    const path = join(tmp, `cpuinfo-${Math.random()}`);
    writeFileSync(path, `processor\t: 0\ncpu MHz\t\t: 2445.402\nflags\t\t: fpu ${flags}\n\nprocessor\t: 1\ncpu MHz\t\t: 1.0\n`);
    return path;
  };
  const noCpufreq = join(tmp, 'no-such-policy');

  it('reads cpu MHz when the TSC is constant and its frequency known', () => {
    expect(hostTscKhz(cpuinfo('constant_tsc tsc_known_freq'), tmp)).toBe(2445402);
    expect(hostTscKhz(cpuinfo('constant_tsc'), noCpufreq)).toBe(2445402);
  });

  it('refuses a frequency cpufreq may have changed, or a TSC that is not constant', () => {
    expect(hostTscKhz(cpuinfo('constant_tsc'), tmp)).toBeUndefined();
    expect(hostTscKhz(cpuinfo('tsc_known_freq'), noCpufreq)).toBeUndefined();
    expect(hostTscKhz(join(tmp, 'missing'), noCpufreq)).toBeUndefined();
  });
});

describe('disk formats', () => {
  /** What openDisk decided, its descriptor closed again. */
  const resolveDisk = async (spec: DiskSpec) => {
    const d = await openDisk(spec);
    await closeDisks([d]);
    return { path: d.path, format: d.format, readonly: d.readonly };
  };
  const img = (name: string, ...args: string[]) => {
    const path = join(tmp, name);
    execFileSync('qemu-img', ['create', '-q', ...args, path, '1M']);
    return path;
  };

  it('detects what qemu-img created', async () => {
    for (const format of ['qcow2', 'qcow', 'qed', 'vmdk', 'vdi', 'vhdx', 'vpc', 'raw'] as DiskFormat[]) {
      expect(await detectDiskFormat(img(`fmt.${format}`, '-f', format))).toBe(format);
    }
  });

  it("takes a fixed VHD named vpc (its footer only at its end, where qemu's vpc driver reads it); as raw without a name", async () => {
    const fixed = img('fixed.vhd', '-f', 'vpc', '-o', 'subformat=fixed');
    expect(await detectDiskFormat(fixed)).toBe('raw'); // qemu cannot probe it either
    expect(await resolveDisk({ path: fixed, format: 'vpc' })).toMatchObject({ format: 'vpc' });
    expect(await resolveDisk({ path: fixed })).toMatchObject({ format: 'raw' });
    // A raw image is still not a VHD for being named one.
    await expect(resolveDisk({ path: img('plain.raw', '-f', 'raw'), format: 'vpc' })).rejects.toMatchObject({ code: 'EDISKFORMAT' });
  });

  it('refuses a qcow2 or qed image with a backing file unless allowed, naming both files', async () => {
    const base = img('base.qcow2', '-f', 'qcow2');
    const overlay = img('overlay.qcow2', '-f', 'qcow2', '-b', base, '-F', 'qcow2');
    for (const format of ['auto', 'qcow2'] as const) {
      const err = await resolveDisk({ path: overlay, format }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'EDISKBACKING' });
      expect((err as Error).message).toContain(overlay);
      expect((err as Error).message).toContain(base);
    }
    expect(await resolveDisk({ path: overlay, format: 'auto', allowBackingFile: true })).toEqual({ path: overlay, format: 'qcow2', readonly: true });
    const qed = img('overlay.qed', '-f', 'qed', '-b', base, '-F', 'qcow2');
    await expect(resolveDisk({ path: qed, format: 'auto' })).rejects.toMatchObject({ code: 'EDISKBACKING' });
    expect(await resolveDisk({ path: img('plain.qcow2', '-f', 'qcow2'), format: 'auto' })).toMatchObject({ format: 'qcow2' });
  });

  it('keeps a raw disk raw even when its first bytes are a qcow2 header', async () => {
    // What a guest can write at the start of its raw disk: an image pointing at a host file.
    const raw = join(tmp, 'guest-written.raw');
    writeFileSync(raw, readFileSync(img('evil.qcow2', '-f', 'qcow2', '-b', '/etc/shadow', '-F', 'raw')));
    expect(await resolveDisk({ path: raw, format: 'raw', readonly: false })).toEqual({ path: raw, format: 'raw', readonly: false });
    await expect(resolveDisk({ path: raw, format: 'auto' })).rejects.toMatchObject({ code: 'EDISKBACKING' });
  });

  it('refuses a format that does not match the header, and a missing file', async () => {
    const raw = img('plain.raw', '-f', 'raw');
    await expect(resolveDisk({ path: raw, format: 'qcow2' })).rejects.toMatchObject({ code: 'EDISKFORMAT' });
    // No format given: raw, unless the header says otherwise, which names the format to pass.
    expect(await resolveDisk({ path: raw })).toMatchObject({ format: 'raw' });
    const qcow2 = img('unnamed.qcow2', '-f', 'qcow2');
    const unnamed = await resolveDisk({ path: qcow2 }).catch((e: unknown) => e);
    expect(unnamed).toMatchObject({ code: 'EDISKFORMAT' });
    expect((unnamed as Error).message).toBe(
      `disk ${qcow2} has a qcow2 header: give format: 'qcow2' to attach it as a qcow2 image, or format: 'raw' to attach its bytes as they are`,
    );
    // The command lines say it in their own options.
    expect((unnamed as DiskRefusedError).inWords({ format: (d, f) => `--disk ${d},format=${f}`, backing: (d) => `--disk ${d},backing` })).toBe(
      `disk ${qcow2} has a qcow2 header: give --disk ${qcow2},format=qcow2 to attach it as a qcow2 image, or --disk ${qcow2},format=raw to attach its bytes as they are`,
    );
    const missing = join(tmp, 'missing.img');
    const err = await resolveDisk({ path: missing, format: 'raw' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EDISKACCESS' });
    expect((err as Error).message).toContain(missing);
  });
  it('refuses an encrypted qcow or qcow2 image (AES or LUKS) before qemu asks for a key, and detects its format all the same', async () => {
    const aes = (format: string) =>
      img(`enc-aes.${format}`, '-f', format, '--object', 'secret,id=s0,data=abc', '-o', 'encrypt.format=aes,encrypt.key-secret=s0');
    // A LUKS qcow2 by its header's crypt_method (2) alone: qemu-img spends seconds on its key
    // derivation, and fails now and then on a busy host ("Unable to get accurate CPU usage").
    const luks = img('enc-luks.qcow2', '-f', 'qcow2');
    const handle = await open(luks, 'r+');
    await handle.write(Buffer.from([0, 0, 0, 2]), 0, 4, 32);
    await handle.close();
    for (const [path, format, cipher] of [
      [aes('qcow2'), 'qcow2', 'aes'],
      [aes('qcow'), 'qcow', 'aes'],
      [luks, 'qcow2', 'luks'],
    ] as const) {
      expect(await detectDiskFormat(path)).toBe(format);
      const err = await resolveDisk({ path, format: 'auto' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'EDISKFORMAT' });
      expect((err as Error).message).toBe(
        `disk ${path} is an encrypted ${format} image (${cipher}): qemu would need its key, which appliance does not pass; decrypt a copy first (qemu-img convert with --object secret, see qemu-img(1))`,
      );
    }
    expect(await resolveDisk({ path: img('clear.qcow', '-f', 'qcow'), format: 'qcow' })).toMatchObject({ format: 'qcow' });
  });

  it('takes a path alone as { path }, and refuses by name what the types forbid and JavaScript can pass', () => {
    expect(diskSpecs(['a.img', { path: 'b.qcow2', format: 'qcow2', readonly: false }])).toEqual([
      { path: 'a.img' },
      { path: 'b.qcow2', format: 'qcow2', readonly: false },
    ]);
    const usage = 'give a list of disk images, each a path or { path, format?, readonly?, allowBackingFile? }';
    const refused: [unknown, string][] = [
      ['a.img', `disks: ${usage} (got one path)`],
      [{ path: 'a.img' }, `disks: ${usage} (got object)`],
      [[42], `disks[0]: ${usage}`],
      [['a.img', null], `disks[1]: ${usage}`],
      [[{ path: '' }], `disks[0]: ${usage}`],
      [
        [{ path: 'a.img', format: 'ext4' }],
        'disks[0] (a.img): format "ext4" is not an image format: use one of raw, qcow2, qcow, qed, vmdk, vdi, vhdx, vpc, auto',
      ],
      [[{ path: 'a.img', readonly: 'no' }], 'disks[0] (a.img): readonly must be true or false'],
      [[{ path: 'a.img', allowBackingFile: 1 }], 'disks[0] (a.img): allowBackingFile must be true or false'],
    ];
    for (const [disks, message] of refused) expect(() => diskSpecs(disks)).toThrow(expect.objectContaining({ code: 'EINVAL', message }));
  });

  it('refuses one image given twice when either is read-write (by one path, or a symlink), and takes it twice read-only', async () => {
    const image = img('twice.raw', '-f', 'raw');
    const link = join(tmp, 'twice-link');
    symlinkSync(image, link);
    for (const [a, b] of [
      [
        { path: image, readonly: false },
        { path: image, readonly: false },
      ],
      [{ path: image }, { path: link, readonly: false }],
      [{ path: link, readonly: false }, { path: image }],
    ]) {
      const err = await openDisks([a!, b!]).catch((e: unknown) => e);
      expect(err).toMatchObject({
        code: 'EDISKOPEN',
        message: `disk ${b!.path} is the image of disk0 (${a!.path}) again, and read-write: the guest would write it through two devices at once; give it once, or read-only both times`,
      });
    }
    await closeDisks(await openDisks([{ path: image }, { path: link }]));
  });

  it('detects formats only of what can be a disk: a folder or a FIFO is refused, not read', async () => {
    const fifo = join(tmp, 'detect.fifo');
    execFileSync('mkfifo', [fifo]);
    for (const path of [tmp, fifo]) {
      await expect(detectDiskFormat(path)).rejects.toMatchObject({
        code: 'EDISKACCESS',
        message: `disk ${path} is not a regular file or a block device: pass a disk image`,
      });
    }
  });
});

describe('accelerator verdict', () => {
  // A writable regular file opens read-write like a usable /dev/kvm.
  const kvmDevice = join(tmp, 'fake-kvm');
  writeFileSync(kvmDevice, '');

  it('tries KVM then TCG without a verdict, remembers what worked, and forgets it after 7 days', async () => {
    const cacheRoot = join(tmp, 'verdict-cache');
    const qemu = findQemu();
    const now = Date.now();
    const first = await planAccel('auto', { qemu, cacheRoot, kvmDevice, now });
    expect(first.candidates.map((c) => c.accel)).toEqual(['kvm', 'kvm', 'tcg']);
    await first.remember!(TCG);

    const second = await planAccel('auto', { qemu, cacheRoot, kvmDevice, now: now + 3600_000 });
    expect(second.candidates).toEqual([TCG]);
    const later = await planAccel('auto', { qemu, cacheRoot, kvmDevice, now: now + 8 * 24 * 3600_000 });
    expect(later.candidates.map((c) => c.accel)).toEqual(['kvm', 'kvm', 'tcg']);
  });

  it('tries KVM again when the qemu binary changes (an upgrade), without running it', async () => {
    const cacheRoot = join(tmp, 'verdict-upgrade');
    // Not a qemu at all: the verdict keys the binary by a stat, it never runs it.
    const qemu = join(tmp, 'qemu-upgraded');
    writeFileSync(qemu, '#!/bin/sh\nexit 99\n', { mode: 0o755 });
    const first = await planAccel('auto', { qemu, cacheRoot, kvmDevice });
    await first.remember!(TCG);
    expect((await planAccel('auto', { qemu, cacheRoot, kvmDevice })).candidates).toEqual([TCG]);
    writeFileSync(qemu, '#!/bin/sh\nexit 98 # a new version\n', { mode: 0o755 });
    expect((await planAccel('auto', { qemu, cacheRoot, kvmDevice })).candidates.map((c) => c.accel)).toEqual(['kvm', 'kvm', 'tcg']);
  });

  it('goes straight to TCG when /dev/kvm cannot be opened, and refuses an explicit kvm', async () => {
    const qemu = findQemu();
    const missing = join(tmp, 'no-kvm');
    expect((await planAccel('auto', { qemu, cacheRoot: tmp, kvmDevice: missing })).candidates).toEqual([TCG]);
    await expect(planAccel('kvm', { qemu, cacheRoot: tmp, kvmDevice: missing })).rejects.toMatchObject({ code: 'ENOKVM' });
  });

  it('names the package to install when qemu is missing', () => {
    expect(() => findQemu(join(tmp, 'no-qemu'))).toThrow(/apt-get install qemu-system-x86/);
  });
});

describe('PVH vmlinux', () => {
  const kernel = hostKernel();
  const cacheRoot = join(tmp, 'vmlinux-cache');
  // The compressed payload and, in the 4 bytes after it, the size of what it decompresses to.
  const image = readFileSync(kernel.path);
  const start = (image[0x1f1]! + 1) * 512 + image.readUInt32LE(0x248);
  const end = start + image.readUInt32LE(0x24c) - 4;
  const payload = image.subarray(start, end);
  const size = image.readUInt32LE(end);

  it('extracts the ELF with the Xen PVH note from the bzImage, once', async () => {
    const elf = await pvhKernel(kernel.path, cacheRoot);
    expect(elf).toBeDefined();
    // readelf names Xen note 18 by number: "Unknown note type: (0x00000012)".
    expect(execFileSync('readelf', ['-n', elf!], { encoding: 'utf8' })).toMatch(/Xen\s+0x[0-9a-f]+\s+Unknown note type: \(0x00000012\)/);
    expect(statSync(elf!).size).toBe(size);
    const ino = statSync(elf!).ino;
    expect(await pvhKernel(kernel.path, cacheRoot)).toBe(elf);
    expect(statSync(elf!).ino).toBe(ino);
  });

  it('decodes the payload byte for byte as the lz4 tool does', async (ctx) => {
    const elf = await pvhKernel(kernel.path, cacheRoot);
    if (payload.readUInt32LE(0) !== 0x184c2102 || !existsSync('/usr/bin/lz4')) return ctx.skip();
    const expected = execFileSync('lz4', ['-dc'], { input: payload, maxBuffer: 1 << 30 });
    expect(readFileSync(elf!).equals(expected)).toBe(true);
  });

  it('leaves an ELF without the PVH note alone', async () => {
    const fh = await open('/bin/true', 'r');
    expect(await hasPvhEntry(fh).finally(() => fh.close())).toBe(false);
    expect(await pvhKernel('/bin/true', cacheRoot)).toBeUndefined();
  });
});
