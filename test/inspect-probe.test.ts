// Probing disk images on the host (src/inspect/probe), against real oracles: images made by
// the real tools (mkfs.*, sfdisk, xorriso, mksquashfs, mkswap, pvcreate, cryptsetup, mdadm
// in a tiny guest), probed from the ranges PROBE_RANGES asks for (and the `needs` rounds),
// and compared field by field with `blkid -p -o udev` (TYPE, LABEL, UUID, UUID_SUB, VERSION,
// PTTYPE, PTUUID), `partx -P` (libblkid's partition list: number, start, size, type, uuid,
// name, flags), `sfdisk -J`, and the formats' own tools for what blkid does not print
// (dumpe2fs, xfs_db, btrfs inspect-internal, unsquashfs, pvs, mdadm --examine). Then hostile
// bytes: random data, truncated images, mutated superblocks, huge fields and EBR loops,
// which must never throw, never ask for more than NEED_MAX bytes at once, and end.
import { execFile, execFileSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeBtrfs } from '../src/inspect/probe/btrfs.js';
import { crc32, crc32c, deviceBytes, NEED_MAX } from '../src/inspect/probe/bytes.js';
import { probeExfat } from '../src/inspect/probe/exfat.js';
import { probeExt } from '../src/inspect/probe/ext.js';
import { probeF2fs } from '../src/inspect/probe/f2fs.js';
import { probeFat } from '../src/inspect/probe/fat.js';
import { probeGpt } from '../src/inspect/probe/gpt.js';
import { mbrLogical, probe, PROBE_RANGES, probeDevice } from '../src/inspect/probe/index.js';
import { probeIso9660 } from '../src/inspect/probe/iso9660.js';
import { probeLuks } from '../src/inspect/probe/luks.js';
import { probeLvm } from '../src/inspect/probe/lvm.js';
import { probeMbr } from '../src/inspect/probe/mbr.js';
import { probeMd } from '../src/inspect/probe/md.js';
import { probeNtfs } from '../src/inspect/probe/ntfs.js';
import { probeSquashfs } from '../src/inspect/probe/squashfs.js';
import { probeSwap } from '../src/inspect/probe/swap.js';
import type { DeviceBytes, Filesystem, Member, Name, PartitionTable, Probed, Range } from '../src/inspect/probe/types.js';
import { probeXfs } from '../src/inspect/probe/xfs.js';
import { hostKernel } from './qemu-fixture.js';

const exec = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), 'appliance-probe-test-'));
const MiB = 1024 * 1024;
const env = { ...process.env, LC_ALL: 'C.UTF-8', LVM_SUPPRESS_FD_WARNINGS: '1' };

/** Runs a tool, its stdout as text; `ok` exit codes beside 0 count as success. */
function sh(cmd: string, args: string[], ok: number[] = []): string {
  try {
    return execFileSync(cmd, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * MiB });
  } catch (e) {
    const err = e as { status?: number; stdout?: string; stderr?: string };
    if (err.status !== undefined && ok.includes(err.status)) return err.stdout ?? '';
    throw new Error(`${cmd} ${args.join(' ')}: ${err.stderr ?? e}`);
  }
}
const run = (cmd: string, args: string[]) => exec(cmd, args, { env, maxBuffer: 64 * MiB });
const path = (name: string) => join(tmp, name);
async function blank(name: string, size: number): Promise<string> {
  const p = path(name);
  rmSync(p, { force: true });
  writeFileSync(p, '');
  await run('truncate', ['-s', String(size), p]);
  return p;
}

/** Writes `bytes` into a file at `offset`. */
function poke(file: string, offset: number, bytes: Buffer): void {
  const fd = openSync(file, 'r+');
  writeSync(fd, bytes, 0, bytes.length, offset);
  closeSync(fd);
}
function peek(file: string, offset: number, length: number): Buffer {
  const fd = openSync(file, 'r');
  const b = Buffer.alloc(length);
  const n = readSync(fd, b, 0, length, offset);
  closeSync(fd);
  return b.subarray(0, n);
}

// ---- probing a host file, the way the guest's reads will feed it -----------------------

interface FileProbe {
  found: Probed[];
  rounds: number;
  bytesRead: number;
  largestRead: number;
}

async function probeFile(file: string, sectorSize = 512, size = statSync(file).size): Promise<FileProbe> {
  const fd = openSync(file, 'r');
  let rounds = 0;
  let bytesRead = 0;
  let largestRead = 0;
  try {
    const found = await probeDevice(size, sectorSize, async (ranges: Range[]) => {
      rounds++;
      return ranges.map((r) => {
        expect(r.offset + r.length).toBeLessThanOrEqual(size);
        bytesRead += r.length;
        largestRead = Math.max(largestRead, r.length);
        const b = Buffer.alloc(r.length);
        return b.subarray(0, readSync(fd, b, 0, r.length, r.offset));
      });
    });
    return { found, rounds, bytesRead, largestRead };
  } finally {
    closeSync(fd);
  }
}

// ---- oracles ---------------------------------------------------------------------------

/** `\xNN` escapes (blkid's udev output, partx -P) back to bytes. */
function unescape(s: string): Buffer {
  const out: number[] = [];
  const utf8 = Buffer.from(s, 'utf8');
  for (let i = 0; i < utf8.length; i++) {
    if (utf8[i] === 0x5c && utf8[i + 1] === 0x78 && /^[0-9a-fA-F]{2}$/.test(utf8.subarray(i + 2, i + 4).toString())) {
      out.push(parseInt(utf8.subarray(i + 2, i + 4).toString(), 16));
      i += 3;
    } else out.push(utf8[i]!);
  }
  return Buffer.from(out);
}
const bytesOf = (n: Name | undefined): Buffer | undefined => (n === undefined ? undefined : typeof n === 'string' ? Buffer.from(n, 'utf8') : n);

/** `blkid -p -o udev FILE` as a map, values unescaped to text (latin1 keeps raw bytes). */
function blkid(file: string): Map<string, Buffer> {
  const out = sh('blkid', ['-p', '-o', 'udev', file], [2]);
  const m = new Map<string, Buffer>();
  for (const line of out.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) m.set(line.slice(0, eq), unescape(line.slice(eq + 1)));
  }
  return m;
}

interface PartxRow {
  NR: number;
  START: number;
  SECTORS: number;
  TYPE: string;
  UUID: string;
  NAME: Buffer;
  FLAGS: bigint;
}
/** libblkid's partition list through partx, in 512-byte sectors. */
function partx(file: string): PartxRow[] {
  const out = sh('partx', ['-P', '-o', 'NR,START,SECTORS,TYPE,UUID,NAME,FLAGS', file], [1]);
  return out
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const f: Record<string, string> = {};
      for (const m of line.matchAll(/(\w+)="([^"]*)"/g)) f[m[1]!] = m[2]!;
      return {
        NR: Number(f.NR),
        START: Number(f.START),
        SECTORS: Number(f.SECTORS),
        TYPE: f.TYPE!,
        UUID: f.UUID!,
        NAME: unescape(f.NAME!),
        FLAGS: BigInt(f.FLAGS || '0'),
      };
    });
}

interface SfdiskJson {
  partitiontable: {
    label: string;
    id: string;
    sectorsize: number;
    partitions: { node: string; start: number; size: number; type: string; uuid?: string; name?: string; bootable?: boolean }[];
  };
}
function sfdisk(file: string): SfdiskJson['partitiontable'] {
  return (JSON.parse(sh('sfdisk', ['-J', file])) as SfdiskJson).partitiontable;
}

const blkidType = (p: Filesystem | Member): string =>
  p.kind === 'filesystem' ? p.type : { 'lvm-pv': 'LVM2_member', 'md-member': 'linux_raid_member', luks: 'crypto_LUKS' }[p.kind];
const tableOf = (found: Probed[]) => found.find((p): p is PartitionTable => p.kind === 'partition-table');
const contentOf = (found: Probed[]) => found.filter((p): p is Filesystem | Member => p.kind !== 'partition-table');

/**
 * The probe agrees with blkid field by field: TYPE, LABEL, UUID, UUID_SUB, VERSION (members),
 * PTTYPE, PTUUID; and with partx (libblkid) and sfdisk on every partition.
 */
function expectLikeBlkid(found: Probed[], file: string, sectorSize = 512, oracle = blkid(file), rows?: PartxRow[], tableToo = true): void {
  const text = (k: string) => oracle.get(k)?.toString('utf8');
  const content = contentOf(found);
  if (oracle.has('ID_FS_TYPE')) {
    expect(content.map(blkidType)).toEqual([text('ID_FS_TYPE')]);
    const c = content[0]!;
    const label = c.kind === 'filesystem' ? c.label : c.kind === 'lvm-pv' ? undefined : c.name;
    if (c.kind !== 'lvm-pv') expect(bytesOf(label)?.toString('hex'), 'LABEL').toBe(oracle.get('ID_FS_LABEL_ENC')?.toString('hex'));
    expect(c.uuid || undefined, 'UUID').toBe(text('ID_FS_UUID_ENC'));
    expect(c.subUuid, 'UUID_SUB').toBe(text('ID_FS_UUID_SUB_ENC'));
    if (c.kind !== 'filesystem') expect(c.version, 'VERSION').toBe(text('ID_FS_VERSION'));
  } else expect(content).toEqual([]);

  if (!tableToo) return;
  const table = tableOf(found);
  if (!oracle.has('ID_PART_TABLE_TYPE')) {
    expect(table).toBeUndefined();
    return;
  }
  expect(table!.protectiveOnly ? 'PMBR' : table!.type, 'PTTYPE').toBe(text('ID_PART_TABLE_TYPE'));
  expect(table!.id, 'PTUUID').toBe(text('ID_PART_TABLE_UUID'));
  if (table!.protectiveOnly) return;
  const ssf = sectorSize / 512;
  const px = rows ?? partx(file);
  expect(table!.partitions.map((p) => p.number)).toEqual(px.map((r) => r.NR));
  for (const [i, p] of table!.partitions.entries()) {
    const r = px[i]!;
    expect(p.start / 512, `partition ${p.number} start`).toBe(r.START);
    expect(p.size / 512, `partition ${p.number} size`).toBe(r.SECTORS);
    expect(p.uuid ?? '', `partition ${p.number} uuid`).toBe(r.UUID);
    expect(bytesOf(p.name)?.toString('hex') ?? '', `partition ${p.number} name`).toBe(r.NAME.toString('hex'));
    if (table!.type === 'gpt') {
      expect(p.type).toBe(r.TYPE);
      expect(p.bootable).toBe((r.FLAGS & 4n) !== 0n);
    } else {
      expect(`0x${parseInt(p.type, 16).toString(16)}`).toBe(r.TYPE);
      expect(p.bootable).toBe(r.FLAGS === 0x80n);
    }
    expect(p.start % (512 * ssf)).toBe(0);
  }
}

/** The same partitions as `sfdisk -J` lists (another parser: fdisk's). */
function expectLikeSfdisk(table: PartitionTable | undefined, file: string, sectorSize = 512): void {
  const s = sfdisk(file);
  expect(table?.type).toBe(s.label);
  expect(table?.id).toBe(s.label === 'gpt' ? s.id.toLowerCase() : s.id === '0x00000000' ? undefined : s.id.replace(/^0x/, ''));
  expect(table!.partitions.map((p) => p.number)).toEqual(s.partitions.map((p) => Number(/(\d+)$/.exec(p.node)![1])));
  for (const [i, p] of table!.partitions.entries()) {
    const q = s.partitions[i]!;
    expect([p.start / sectorSize, p.size / sectorSize]).toEqual([q.start, q.size]);
    if (s.label === 'gpt') {
      // blkid (and so we) trims trailing blanks off names; fdisk keeps them
      expect([p.type, p.uuid, p.name ?? '']).toEqual([q.type.toLowerCase(), q.uuid!.toLowerCase(), (q.name ?? '').trimEnd()]);
    } else {
      expect(parseInt(p.type, 16)).toBe(parseInt(q.type, 16));
      expect(p.bootable).toBe(q.bootable === true);
    }
  }
}

// ---- the images ------------------------------------------------------------------------

const UUID_EXT = '0c3f5a4e-9e1b-4b7a-8d2a-3f7d7b9c1e22';
const UUID_SWAP = '11111111-2222-3333-4444-555555555555';
const UUID_LUKS = '01234567-89ab-cdef-0123-456789abcdef';
const img: Record<string, string> = {};
/** Oracle outputs captured while a loop device existed (LVM, 4K-sector GPT). */
const captured: { pvs?: string[]; gpt4k?: { blkid: Map<string, Buffer>; partx: PartxRow[] }; md?: Record<string, string> } = {};

async function makeFilesystems(): Promise<void> {
  const tree = path('tree');
  mkdirSync(join(tree, 'd'), { recursive: true });
  writeFileSync(join(tree, 'd/f'), 'hello\n');
  const jobs: (() => Promise<unknown>)[] = [
    async () => run('mkfs.ext2', ['-q', '-F', '-L', 'ext2lab', (img.ext2 = await blank('ext2.img', 16 * MiB))]),
    async () => run('mkfs.ext3', ['-q', '-F', '-L', 'ext3lab', (img.ext3 = await blank('ext3.img', 16 * MiB))]),
    async () => run('mkfs.ext4', ['-q', '-F', '-L', 'lab é', '-U', UUID_EXT, (img.ext4 = await blank('ext4.img', 64 * MiB))]),
    async () => {
      await run('mkfs.ext4', ['-q', '-F', '-L', 'dirty', (img.ext4dirty = await blank('ext4-dirty.img', 32 * MiB))]);
      await run('debugfs', ['-w', '-R', 'feature needs_recovery', img.ext4dirty]);
    },
    async () => {
      await run('mkfs.ext4', ['-q', '-F', '-L', 'XX', (img.ext4raw = await blank('ext4-raw.img', 16 * MiB))]);
      // a label that is not UTF-8 (and the superblock's checksum redone, for metadata_csum)
      const sb = peek(img.ext4raw, 1024, 1024);
      Buffer.from([0xff, 0xfe, 0x61, 0x62]).copy(sb, 120);
      if (sb.readUInt32LE(100) & 0x400) sb.writeUInt32LE((crc32c(sb.subarray(0, 1020)) ^ 0xffffffff) >>> 0, 1020);
      poke(img.ext4raw, 1024, sb);
    },
    async () => run('mkfs.xfs', ['-q', '-f', '-L', 'xlab', (img.xfs = await blank('xfs.img', 300 * MiB))]),
    async () => run('mkfs.btrfs', ['-q', '-f', '-L', 'bträ', (img.btrfs = await blank('btrfs.img', 128 * MiB))]),
    async () =>
      run('mkfs.btrfs', [
        '-q',
        '-f',
        '-L',
        'two',
        '-d',
        'raid1',
        '-m',
        'raid1',
        (img.btrfs1 = await blank('btrfs1.img', 128 * MiB)),
        (img.btrfs2 = await blank('btrfs2.img', 128 * MiB)),
      ]),
    async () => run('mkfs.vfat', ['-F', '12', '-n', 'F12', '-i', '0a0b0c0d', (img.fat12 = await blank('fat12.img', 2 * MiB))]),
    async () => run('mkfs.vfat', ['-F', '16', '-n', 'MYLABEL', '-i', '1234abcd', (img.fat16 = await blank('fat16.img', 64 * MiB))]),
    async () => run('mkfs.vfat', ['-F', '32', '-n', 'BIG ONE', '-i', 'deadbeef', (img.fat32 = await blank('fat32.img', 300 * MiB))]),
    async () => run('mkfs.vfat', [(img.fatnolabel = await blank('fat-nolabel.img', 10 * MiB))]),
    async () => {
      // dosfstools refuses non-ASCII labels: made with 'XBC', then the X becomes CP850's 'Ä' (0x8E)
      await run('mkfs.vfat', ['-n', 'XBC', (img.fatcp = await blank('fat-cp850.img', 8 * MiB))]);
      const head = peek(img.fatcp, 0, 128 * 1024);
      for (let at = head.indexOf('XBC        '); at >= 0; at = head.indexOf('XBC        ', at + 1)) poke(img.fatcp, at, Buffer.from([0x8e]));
    },
    async () => run('mkfs.exfat', ['-L', 'exlab Ü', (img.exfat = await blank('exfat.img', 64 * MiB))]),
    async () => run('mkntfs', ['-q', '-F', '-Q', '-L', 'NTFS Ñ', (img.ntfs = await blank('ntfs.img', 64 * MiB))]),
    async () => run('mkswap', ['-q', '-L', 'swlab', '-U', UUID_SWAP, (img.swap = await blank('swap.img', 64 * MiB))]),
    async () => run('mkswap', ['-q', '-p', '65536', '-L', 'big pages', (img.swap64k = await blank('swap64k.img', 16 * MiB))]),
    async () => run('mksquashfs', [tree, (img.squashfs = path('squashfs.img')), '-quiet', '-noappend', '-no-progress']),
    async () => run('xorriso', ['-as', 'mkisofs', '-quiet', '-V', 'ISO_LABEL', '-J', '-o', (img.iso = path('plain.iso')), tree]),
    async () => run('xorriso', ['-as', 'mkisofs', '-quiet', '-V', 'Mixed Case Ünï label', '-J', '-o', (img.joliet = path('joliet.iso')), tree]),
    async () => run('mkfs.f2fs', ['-q', '-f', '-l', 'f2lab', (img.f2fs = await blank('f2fs.img', 100 * MiB))]),
    async () => {
      await run('cryptsetup', [
        'luksFormat',
        '-q',
        '--type',
        'luks1',
        '--pbkdf-force-iterations',
        '1000',
        '--uuid',
        UUID_LUKS,
        '--key-file',
        (img.key = path('key')),
        (img.luks1 = await blank('luks1.img', 20 * MiB)),
      ]);
    },
    async () => {
      await run('cryptsetup', [
        'luksFormat',
        '-q',
        '--type',
        'luks2',
        '--pbkdf',
        'pbkdf2',
        '--pbkdf-force-iterations',
        '1000',
        '--label',
        'lüks',
        '--key-file',
        path('key'),
        (img.luks2 = await blank('luks2.img', 20 * MiB)),
      ]);
    },
    async () => blank('zero.img', 10 * MiB).then((p) => (img.zero = p)),
  ];
  writeFileSync(path('key'), 'secret');
  await pool(jobs, 2);
}

async function makeHybrids(): Promise<void> {
  const efi = path('htree/efi.img');
  mkdirSync(path('htree'), { recursive: true });
  writeFileSync(path('htree/readme'), 'x\n');
  await run('truncate', ['-s', '2M', efi]);
  await run('mkfs.vfat', ['-n', 'EFIBOOT', efi]);
  const common = ['-as', 'mkisofs', '-quiet', '-J'];
  await run('xorriso', [...common, '-V', 'HYBDOS', '-append_partition', '2', '0xef', efi, '-o', (img.hybridDos = path('hybrid-dos.iso')), path('htree')]);
  await run('xorriso', [
    ...common,
    '-V',
    'HYBGPT',
    '-appended_part_as_gpt',
    '-append_partition',
    '2',
    'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
    efi,
    '-o',
    (img.hybridGpt = path('hybrid-gpt.iso')),
    path('htree'),
  ]);
}

async function makeTables(): Promise<void> {
  img.mbr = await blank('mbr.img', 100 * MiB);
  const mbrScript = [
    'label: dos',
    'label-id: 0x1234abcd',
    'start=2048, size=20480, type=83, bootable',
    'start=22528, size=40960, type=5',
    'start=63488, size=8192, type=82',
    'start=24576, size=8192, type=83',
    'start=34816, size=4096, type=7',
    'start=40960, size=8192, type=c',
  ].join('\n');
  execFileSync('sfdisk', ['-q', img.mbr], { input: mbrScript + '\n', env });
  img.gpt = await blank('gpt.img', 100 * MiB);
  const gptScript = [
    'label: gpt',
    'label-id: 3F1E2D4C-5B6A-4978-8695-A4B3C2D1E0F9',
    'start=2048, size=20480, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI system", uuid=11111111-2222-3333-4444-555555555555',
    'start=22528, size=40960, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="Ünïcode räksmörgås ☃"',
    'start=63488, size=8192, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, attrs="LegacyBIOSBootable", name="swap  "',
  ].join('\n');
  execFileSync('sfdisk', ['-q', img.gpt], { input: gptScript + '\n', env });
  // the same table with the primary header broken: the backup header at the end is used
  copyFileSync(img.gpt, (img.gptBackup = path('gpt-backup.img')));
  poke(img.gptBackup, 512 + 16, Buffer.from([0xde, 0xad]));
  // both headers broken: only the protective MBR is left (blkid's PMBR)
  copyFileSync(img.gptBackup, (img.pmbr = path('pmbr.img')));
  poke(img.pmbr, statSync(img.pmbr).size - 512 + 16, Buffer.from([0xde, 0xad]));
  // 4096-byte sectors: sfdisk and blkid see them through a loop device
  img.gpt4k = await blank('gpt4k.img', 64 * MiB);
  const loop = sh('losetup', ['-f', '--show', '-b', '4096', img.gpt4k]).trim();
  try {
    execFileSync('sfdisk', ['-q', loop], { input: 'label: gpt\nstart=256, size=2560, type=L, name="four k"\nstart=4096, size=4096, type=S\n', env });
    captured.gpt4k = { blkid: blkid(loop), partx: partx(loop) };
  } finally {
    sh('losetup', ['-d', loop]);
  }
}

async function makeLvm(): Promise<void> {
  img.lvm = await blank('lvm.img', 64 * MiB);
  const loop = sh('losetup', ['-f', '--show', img.lvm]).trim();
  const vg = `vgprobe${process.pid}`;
  const noBackup = ['--config', 'backup { backup = 0 archive = 0 }'];
  try {
    sh('pvcreate', ['-q', '-y', ...noBackup, loop]);
    sh('vgcreate', ['-q', ...noBackup, vg, loop]);
    captured.pvs = sh('pvs', ['--noheadings', '-o', 'pv_uuid,vg_name', ...noBackup, loop])
      .trim()
      .split(/\s+/);
  } finally {
    sh('losetup', ['-d', loop]);
  }
  // an orphan PV (no volume group) on a file of its own
  img.lvmOrphan = await blank('lvm-orphan.img', 16 * MiB);
  const loop2 = sh('losetup', ['-f', '--show', img.lvmOrphan]).trim();
  try {
    sh('pvcreate', ['-q', '-y', ...noBackup, loop2]);
  } finally {
    sh('losetup', ['-d', loop2]);
  }
}

const MD_INIT_C = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
  char line[1024];
  FILE *order = fopen("/modules.order", "r");
  while (order && fgets(line, sizeof line, order)) {
    line[strcspn(line, "\n")] = 0;
    int m = open(line, O_RDONLY | O_CLOEXEC);
    if (m < 0 || (syscall(SYS_finit_module, m, "", 0) != 0 && errno != EEXIST)) printf("md-init: cannot load %s: %s\n", line, strerror(errno));
    if (m >= 0) close(m);
  }
  mkdir("/proc", 0755); mount("proc", "/proc", "proc", 0, 0);
  mkdir("/sys", 0755); mount("sysfs", "/sys", "sysfs", 0, 0);
  mkdir("/dev", 0755); mount("devtmpfs", "/dev", "devtmpfs", 0, 0);
  mkdir("/run", 0755); mkdir("/tmp", 0755);
  setenv("MDADM_NO_UDEV", "1", 1); setenv("MDADM_NO_SYSTEMCTL", "1", 1);
  for (int i = 0; i < 250 && access("/dev/vdf", F_OK) != 0; i++) usleep(20000);
  FILE *cmds = fopen("/commands", "r");
  while (cmds && fgets(line, sizeof line, cmds)) {
    line[strcspn(line, "\n")] = 0;
    char *argv[64]; int n = 0;
    for (char *t = strtok(line, " "); t && n < 63; t = strtok(0, " ")) argv[n++] = t;
    argv[n] = 0;
    if (!n) continue;
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) { execv(argv[0], argv); _exit(127); }
    int st; waitpid(p, &st, 0);
    printf("md-init: %s %s exit %d\n", argv[1], argv[2], WEXITSTATUS(st));
  }
  fflush(stdout); sync();
  reboot(RB_POWER_OFF);
  return 0;
}
`;

/**
 * md members need the kernel's md driver, which this host's kernel lacks: mdadm runs in a
 * tiny guest (the host's Debian kernel under qemu, mdadm and its libraries in the initrd)
 * on six image files, makes a 0.90 raid1, a 1.2 raid1 and a 1.0 raid0, stops them and
 * powers off. The members are then plain files for blkid and for us.
 */
async function makeMd(): Promise<void> {
  const kernel = hostKernel();
  const dir = path('md');
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'm'), { recursive: true });
  writeFileSync(join(dir, 'init.c'), MD_INIT_C);
  await run('musl-gcc', ['-static', '-Os', '-o', join(tree, 'init'), join(dir, 'init.c')]);
  const mdadm = '/sbin/mdadm';
  const libs = sh('ldd', [mdadm]).match(/\/\S+/g) ?? [];
  for (const f of [mdadm, ...libs]) {
    mkdirSync(join(tree, f, '..'), { recursive: true });
    copyFileSync(f, join(tree, f));
  }
  const dep = readFileSync(join(kernel.modulesDir, 'modules.dep'), 'utf8')
    .split('\n')
    .map((l) => l.split(':')[0]!);
  const order: string[] = [];
  for (const name of ['virtio_ring', 'virtio', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci', 'virtio_blk', 'md-mod', 'raid0', 'raid1']) {
    const rel = dep.find((p) => p.endsWith(`/${name}.ko`));
    if (!rel) throw new Error(`${name}.ko is not in ${kernel.modulesDir} (uncompressed modules needed)`);
    copyFileSync(join(kernel.modulesDir, rel), join(tree, 'm', `${name}.ko`));
    order.push(`/m/${name}.ko`);
  }
  writeFileSync(join(tree, 'modules.order'), order.join('\n') + '\n');
  const create = '/sbin/mdadm --create --run --assume-clean';
  writeFileSync(
    join(tree, 'commands'),
    [
      `${create} /dev/md0 --metadata=0.90 --level=1 --raid-devices=2 /dev/vda /dev/vdb`,
      '/sbin/mdadm --stop /dev/md0',
      `${create} /dev/md1 --metadata=1.2 --level=1 --raid-devices=2 --name=mdtest /dev/vdc /dev/vdd`,
      '/sbin/mdadm --stop /dev/md1',
      `${create} /dev/md2 --metadata=1.0 --level=0 --raid-devices=2 --name=stripe /dev/vde /dev/vdf`,
      '/sbin/mdadm --stop /dev/md2',
    ].join('\n') + '\n',
  );
  const initrd = join(dir, 'initrd.cpio');
  // every folder too: the kernel's unpacker does not make a file's parents
  execFileSync('sh', ['-c', `find . | cpio -o -H newc --quiet > ${JSON.stringify(initrd)}`], { cwd: tree });
  const disks = ['a', 'b', 'c', 'd', 'e', 'f'];
  for (const d of disks) img[`md${d}`] = await blank(`md-${d}.img`, 20 * MiB);
  const { stdout } = await exec(
    'timeout',
    [
      '90',
      'qemu-system-x86_64',
      '-M',
      'pc',
      '-accel',
      'tcg',
      '-m',
      '256',
      '-nodefaults',
      '-display',
      'none',
      '-serial',
      'stdio',
      '-no-reboot',
      '-kernel',
      kernel.path,
      '-initrd',
      initrd,
      '-append',
      'console=ttyS0 panic=-1 quiet',
      ...disks.flatMap((d) => ['-drive', `file=${img[`md${d}`]},format=raw,if=virtio`]),
    ],
    { env, maxBuffer: 16 * MiB },
  );
  const exits = [...stdout.matchAll(/md-init: (\S+) (\S+) exit (\d+)/g)];
  expect(
    exits.map((m) => m[3]),
    stdout,
  ).toEqual(['0', '0', '0', '0', '0', '0']);
  captured.md = Object.fromEntries(['a', 'c', 'e', 'f'].map((d) => [d, sh('mdadm', ['--examine', img[`md${d}`]!])]));
}

async function pool(jobs: (() => Promise<unknown>)[], width: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < jobs.length) await jobs[next++]!();
    }),
  );
}

beforeAll(async () => {
  // the guest that makes md members runs beside the other tools (one core each)
  await Promise.all([
    makeMd(),
    (async () => {
      await makeFilesystems();
      await makeHybrids();
      await makeTables();
      await makeLvm();
    })(),
  ]);
}, 120_000);

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

// ---- the tests -------------------------------------------------------------------------

describe('PROBE_RANGES', () => {
  it('is the start, the end and md 0.90, merged, in the device, at most 164 KiB', () => {
    for (const size of [0, 1, 4095, 65536, 100 * 1024, 200 * 1024, MiB, 10 * MiB + 12345, 2 ** 40 + 512, 2 ** 52]) {
      const ranges = PROBE_RANGES(size, 512);
      const total = ranges.reduce((n, r) => n + r.length, 0);
      expect(total).toBeLessThanOrEqual(Math.min(size, 164 * 1024));
      for (const [i, r] of ranges.entries()) {
        expect(r.offset).toBeGreaterThanOrEqual(i ? ranges[i - 1]!.offset + ranges[i - 1]!.length + 1 : 0);
        expect(r.offset + r.length).toBeLessThanOrEqual(size);
      }
      if (size >= 1024 * 1024) {
        const covers = (o: number, l: number) => ranges.some((r) => r.offset <= o && o + l <= r.offset + r.length);
        expect(covers(0, 128 * 1024)).toBe(true); // MBR, GPT + entries, ext, xfs, iso, btrfs, swap 64K pages, LUKS2 secondary, md 1.1/1.2
        expect(covers(size - 32 * 1024, 32 * 1024)).toBe(true); // backup GPT, md 1.0
        expect(covers(Math.floor(size / 65536) * 65536 - 65536, 4096)).toBe(true); // md 0.90
        expect(covers(Math.floor(size / 4096) * 4096 - 8192, 4096)).toBe(true); // md 1.0
      }
    }
  });
});

describe('filesystems, against blkid and their own tools', () => {
  const cases: [string, string][] = [
    ['ext2', 'ext2'],
    ['ext3', 'ext3'],
    ['ext4 with a UTF-8 label and a given UUID', 'ext4'],
    ['ext4 with a label that is not UTF-8', 'ext4raw'],
    ['xfs', 'xfs'],
    ['btrfs with a UTF-8 label', 'btrfs'],
    ['FAT12', 'fat12'],
    ['FAT16', 'fat16'],
    ['FAT32', 'fat32'],
    ['FAT without a label', 'fatnolabel'],
    ['FAT with a CP850 label', 'fatcp'],
    ['exFAT with a UTF-16 label', 'exfat'],
    ['NTFS (label from $Volume)', 'ntfs'],
    ['swap', 'swap'],
    ['swap for 64 KiB pages', 'swap64k'],
    ['squashfs', 'squashfs'],
    ['iso9660', 'iso'],
    ['iso9660 with a Joliet label', 'joliet'],
    ['f2fs', 'f2fs'],
    ['LUKS1', 'luks1'],
    ['LUKS2 with a label', 'luks2'],
    ['an LVM2 PV of a volume group', 'lvm'],
    ['an orphan LVM2 PV', 'lvmOrphan'],
    ['a zeroed disk (nothing)', 'zero'],
  ];
  it.each(cases)('%s', async (_, key) => {
    const r = await probeFile(img[key]!);
    // exFAT: blkid 2.38 also sees an empty "dos" table in its boot sector (see below)
    expectLikeBlkid(r.found, img[key]!, 512, undefined, undefined, key !== 'exfat');
    expect(r.found.every((p) => !p.needs)).toBe(true);
    expect(r.largestRead).toBeLessThanOrEqual(NEED_MAX);
  });

  it('ext: size and block size as dumpe2fs says; ext4 with needs_recovery is dirty, a clean one is not', async () => {
    for (const key of ['ext2', 'ext3', 'ext4', 'ext4dirty']) {
      const fs = contentOf((await probeFile(img[key]!)).found)[0] as Filesystem;
      const dump = sh('dumpe2fs', ['-h', img[key]!], [0]);
      const field = (n: string) => Number(new RegExp(`^${n}:\\s+(\\d+)`, 'm').exec(dump)![1]);
      expect(fs.blockSize).toBe(field('Block size'));
      expect(fs.size).toBe(field('Block count') * field('Block size'));
      expect(fs.dirty, key).toBe(/^Filesystem features:.*\bneeds_recovery\b/m.test(dump));
    }
    expect(((await probeFile(img.ext4dirty!)).found[0] as Filesystem).dirty).toBe(true);
  });

  it('xfs: size and block size as xfs_db says; dirty unknown', async () => {
    const fs = (await probeFile(img.xfs!)).found[0] as Filesystem;
    const db = sh('xfs_db', ['-r', '-c', 'sb 0', '-c', 'p dblocks', '-c', 'p blocksize', img.xfs!]);
    const v = (n: string) => Number(new RegExp(`^${n} = (\\d+)`, 'm').exec(db)![1]);
    expect([fs.size, fs.blockSize, fs.dirty]).toEqual([v('dblocks') * v('blocksize'), v('blocksize'), undefined]);
  });

  const dumpSuper = (file: string) => {
    const out = sh('btrfs', ['inspect-internal', 'dump-super', file]);
    return (n: string) => new RegExp(`^${n.replace('.', '\\.')}\\s+(\\S+)`, 'm').exec(out)![1]!;
  };

  it('btrfs with two devices: one fsid, a devid and device UUID each, 2 devices (blkid, dump-super)', async () => {
    const [one, two] = [await probeFile(img.btrfs1!), await probeFile(img.btrfs2!)];
    expectLikeBlkid(one.found, img.btrfs1!);
    expectLikeBlkid(two.found, img.btrfs2!);
    for (const [file, r] of [
      [img.btrfs1!, one],
      [img.btrfs2!, two],
    ] as const) {
      const s = dumpSuper(file);
      expect(r.found[0]).toMatchObject({
        devid: Number(s('dev_item.devid')),
        devices: 2,
        size: Number(s('total_bytes')),
        blockSize: Number(s('sectorsize')),
        dirty: false,
      });
    }
    expect((one.found[0] as Filesystem).uuid).toBe((two.found[0] as Filesystem).uuid);
    expect((one.found[0] as Filesystem).subUuid).not.toBe((two.found[0] as Filesystem).subUuid);
  });

  it('btrfs with a log tree to replay is dirty (log_root set, checksum redone: dump-super agrees)', async () => {
    const file = path('btrfs-log.img');
    copyFileSync(img.btrfs!, file);
    const sb = peek(file, 65536, 4096);
    sb.writeBigUInt64LE(0x1d4000n, 96);
    sb.writeUInt32LE(crc32c(sb.subarray(32)), 0);
    poke(file, 65536, sb);
    const s = dumpSuper(file);
    expect(sh('btrfs', ['inspect-internal', 'dump-super', file])).toMatch(/^csum\s+0x[0-9a-f]+ \[match\]/m);
    const fs = (await probeFile(file)).found[0] as Filesystem;
    expect(fs.dirty).toBe(Number(s('log_root')) !== 0);
    expect(fs.dirty).toBe(true);
  });

  it('squashfs: its size is bytes_used (unsquashfs -s)', async () => {
    const fs = (await probeFile(img.squashfs!)).found[0] as Filesystem;
    const s = sh('unsquashfs', ['-s', img.squashfs!]);
    expect(fs.size).toBe(Number(/Filesystem size (\d+) bytes/.exec(s)![1]));
    expect(fs.blockSize).toBe(Number(/Block size (\d+)/.exec(s)![1]));
  });

  it('sizes the tools gave: swap, f2fs and iso9660 fill their files, NTFS leaves its backup boot sector', async () => {
    for (const key of ['swap', 'swap64k', 'iso', 'f2fs']) {
      expect(((await probeFile(img[key]!)).found[0] as Filesystem).size, key).toBe(statSync(img[key]!).size);
    }
    expect(((await probeFile(img.ntfs!)).found[0] as Filesystem).size).toBe(64 * MiB - 512);
  });

  it('FAT: size and cluster size as fsck.fat -v says', async () => {
    for (const key of ['fat12', 'fat16', 'fat32', 'fatnolabel']) {
      const v = sh('fsck.fat', ['-n', '-v', img[key]!]);
      const n = (re: RegExp) => Number(re.exec(v)![1]);
      const fs = (await probeFile(img[key]!)).found[0] as Filesystem;
      expect([fs.size, fs.blockSize], key).toEqual([n(/(\d+) sectors total/) * n(/(\d+) bytes per logical sector/), n(/(\d+) bytes per cluster/)]);
    }
  });

  it('exFAT: size, cluster size, serial and label as dump.exfat says', async () => {
    const d = sh('dump.exfat', [img.exfat!]);
    const n = (name: string) => Number(new RegExp(`^${name}[^:]*:\\s+(\\S+)`, 'm').exec(d)![1]);
    const fs = (await probeFile(img.exfat!)).found[0] as Filesystem;
    expect(fs.size).toBe(n('Volume Length') * 2 ** n('Sector Size Bits'));
    expect(fs.blockSize).toBe(2 ** (n('Sector Size Bits') + n('Sector per Cluster bits')));
    expect(fs.uuid!.replace('-', '').toLowerCase()).toBe(/^Volume Serial:\s+0x([0-9a-f]+)/m.exec(d)![1]!.padStart(8, '0'));
    expect(fs.label).toBe(/^Volume label:\s+(.*)$/m.exec(d)![1]);
  });

  it('NTFS: label, sector and cluster size as ntfsinfo says', async () => {
    const i = sh('ntfsinfo', ['-m', '-f', img.ntfs!]);
    const fs = (await probeFile(img.ntfs!)).found[0] as Filesystem;
    expect(fs.label).toBe(/Volume Name: (.*)$/m.exec(i)![1]);
    expect(fs.blockSize).toBe(Number(/Cluster Size: (\d+)/.exec(i)![1]));
  });

  it('FAT and exFAT labels live in the root directory: a later round reads it when the first did not', async () => {
    for (const key of ['fat16', 'fat32', 'exfat']) {
      const r = await probeFile(img[key]!);
      expect(r.rounds, key).toBeGreaterThanOrEqual(2);
      expect(r.bytesRead, key).toBeLessThan(1.2 * MiB);
    }
  });

  it('LVM: the PV UUID and the volume group as pvs printed them', async () => {
    const pv = (await probeFile(img.lvm!)).found[0] as Member;
    expect([pv.uuid, pv.name]).toEqual(captured.pvs);
    expect(((await probeFile(img.lvmOrphan!)).found[0] as Member).name).toBeUndefined();
  });

  it('LUKS: UUID and version as cryptsetup luksDump says', async () => {
    for (const key of ['luks1', 'luks2']) {
      const dump = sh('cryptsetup', ['luksDump', img[key]!]);
      const m = (await probeFile(img[key]!)).found[0] as Member;
      expect(m.uuid).toBe(/^UUID:\s+(\S+)/m.exec(dump)![1]);
      expect(m.detail).toBe(/^Version:\s+(\d+)/m.exec(dump)![1]);
    }
    expect(((await probeFile(img.luks1!)).found[0] as Member).uuid).toBe(UUID_LUKS);
  });
});

describe('md members (made by mdadm in a guest)', () => {
  it.each([
    ['0.90 raid1', 'a'],
    ['0.90 raid1, second member', 'b'],
    ['1.2 raid1', 'c'],
    ['1.2 raid1, second member', 'd'],
    ['1.0 raid0', 'e'],
    ['1.0 raid0, second member', 'f'],
  ])('%s: as blkid says', async (_, d) => {
    const r = await probeFile(img[`md${d}`]!);
    expectLikeBlkid(r.found, img[`md${d}`]!);
    expect(r.rounds).toBe(1);
  });

  it('level, name and array UUID as mdadm --examine says (mdadm prints the UUID with colons)', async () => {
    for (const d of ['a', 'c', 'e', 'f']) {
      const x = captured.md![d]!;
      const m = (await probeFile(img[`md${d}`]!)).found[0] as Member;
      expect(m.detail).toBe(/Raid Level : (\S+)/.exec(x)![1]);
      expect(m.uuid.replace(/-/g, '')).toBe(/(?:Array )?UUID : ([0-9a-f:]+)/.exec(x)![1]!.replace(/:/g, ''));
      const name = /Name : (\S+)/.exec(x)?.[1];
      expect(m.name).toBe(name);
    }
  });

  it("a 0.90 superblock inside the disk's last partition belongs to the partition, not the disk (blkid agrees)", async () => {
    const file = path('md-in-partition.img');
    await blank('md-in-partition.img', 21 * MiB);
    execFileSync('sfdisk', ['-q', file], { input: 'label: dos\nstart=2048, size=40960, type=fd\n', env });
    poke(file, MiB, readFileSync(img.mda!));
    const r = await probeFile(file);
    expectLikeBlkid(r.found, file);
    expect(contentOf(r.found)).toEqual([]);
    // the partition itself, seen alone, is the member
    const alone = probe(deviceBytes(20 * MiB, 512, [{ offset: 0, data: readFileSync(img.mda!) }]));
    expect(alone[0]).toMatchObject({ kind: 'md-member', version: '0.90.0' });
  });
});

describe('partition tables, against blkid, partx and sfdisk', () => {
  it('MBR with primary, extended and logical partitions (the EBR chain read round by round)', async () => {
    const r = await probeFile(img.mbr!);
    expectLikeBlkid(r.found, img.mbr!);
    expectLikeSfdisk(tableOf(r.found), img.mbr!);
    expect(tableOf(r.found)!.partitions.map((p) => p.number)).toEqual([1, 2, 3, 5, 6, 7]);
    expect(r.rounds).toBe(4); // the ranges, then one EBR a round
  });

  it('GPT with names (UTF-8 and trailing blanks), types, unique GUIDs and the legacy-bootable attribute', async () => {
    const r = await probeFile(img.gpt!);
    expectLikeBlkid(r.found, img.gpt!);
    expectLikeSfdisk(tableOf(r.found), img.gpt!);
    expect(tableOf(r.found)!.partitions[2]).toMatchObject({ name: 'swap', bootable: true });
    expect(r.rounds).toBe(1);
  });

  it('GPT whose primary header is broken: the backup header at the end', async () => {
    const r = await probeFile(img.gptBackup!);
    expectLikeBlkid(r.found, img.gptBackup!);
    expect(tableOf(r.found)!.partitions).toHaveLength(3);
  });

  it("a protective MBR with both GPT headers broken: blkid's PMBR, no partitions", async () => {
    const r = await probeFile(img.pmbr!);
    expectLikeBlkid(r.found, img.pmbr!);
    expect(tableOf(r.found)).toMatchObject({ type: 'gpt', protectiveOnly: true, partitions: [] });
  });

  it('GPT on 4096-byte sectors (blkid and partx through a 4K loop device)', async () => {
    const r = await probeFile(img.gpt4k!, 4096);
    expectLikeBlkid(r.found, img.gpt4k!, 4096, captured.gpt4k!.blkid, captured.gpt4k!.partx);
    expect(tableOf(r.found)!.partitions.map((p) => [p.start, p.size])).toEqual([
      [256 * 4096, 2560 * 4096],
      [4096 * 4096, 4096 * 4096],
    ]);
  });

  it('hybrid ISOs: iso9660 and an MBR (xorriso -append_partition), iso9660 and a GPT (-appended_part_as_gpt)', async () => {
    for (const key of ['hybridDos', 'hybridGpt']) {
      const r = await probeFile(img[key]!);
      expectLikeBlkid(r.found, img[key]!);
      expectLikeSfdisk(tableOf(r.found), img[key]!);
      expect(r.found.map((p) => p.kind)).toEqual(['partition-table', 'filesystem']);
    }
  });

  it('exFAT is not an MBR (blkid 2.38 calls its boot sector an empty "dos" table; newer libblkid does not)', async () => {
    const r = await probeFile(img.exfat!);
    expect(tableOf(r.found)).toBeUndefined();
    const b = blkid(img.exfat!);
    if (b.has('ID_PART_TABLE_TYPE')) expect(partx(img.exfat!)).toEqual([]); // an empty table, whatever its type
  });

  it('a FAT or NTFS boot sector is a filesystem, not an MBR (blkid agrees)', async () => {
    for (const key of ['fat12', 'fat16', 'fat32', 'ntfs']) {
      const r = await probeFile(img[key]!);
      expect(tableOf(r.found), key).toBeUndefined();
      expect(blkid(img[key]!).has('ID_PART_TABLE_TYPE'), key).toBe(false);
    }
  });

  it('an LVM label under an MBR written later is stale (blkid drops it too)', async () => {
    const file = path('lvm-then-mbr.img');
    copyFileSync(img.lvmOrphan!, file);
    const mbr = Buffer.alloc(512);
    mbr.writeUInt32LE(0xcafe1234, 440);
    Buffer.from([0, 0, 0, 0, 0x83, 0, 0, 0]).copy(mbr, 446);
    mbr.writeUInt32LE(2048, 446 + 8);
    mbr.writeUInt32LE(8192, 446 + 12);
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    poke(file, 0, mbr);
    const r = await probeFile(file);
    expectLikeBlkid(r.found, file);
    expect(r.found.map((p) => p.kind)).toEqual(['partition-table']);
  });
});

// ---- hostile bytes ---------------------------------------------------------------------

const PARSERS: [string, (dev: DeviceBytes) => unknown][] = [
  ['mbr', probeMbr],
  ['gpt', probeGpt],
  ['ext', probeExt],
  ['xfs', probeXfs],
  ['btrfs', probeBtrfs],
  ['fat', probeFat],
  ['exfat', probeExfat],
  ['iso9660', probeIso9660],
  ['squashfs', probeSquashfs],
  ['ntfs', probeNtfs],
  ['swap', probeSwap],
  ['lvm', probeLvm],
  ['md', probeMd],
  ['luks', probeLuks],
  ['f2fs', probeF2fs],
];

/** A DeviceBytes that records the largest range any parser asked of it. */
function watched(dev: DeviceBytes): DeviceBytes & { largest: number } {
  const w = {
    size: dev.size,
    sectorSize: dev.sectorSize,
    largest: 0,
    at(offset: number, length: number) {
      w.largest = Math.max(w.largest, length);
      return dev.at(offset, length);
    },
  };
  return w;
}

/** Every parser directly (they must not throw: probe() would hide it), then probe(); results sane. */
function expectSane(dev: DeviceBytes, what: string): Probed[] {
  const w = watched(dev);
  for (const [name, parse] of PARSERS) expect(() => parse(w), `${name} on ${what}`).not.toThrow();
  const found = probe(w);
  for (const p of found) {
    for (const r of p.needs ?? []) {
      expect(r.length, what).toBeLessThanOrEqual(NEED_MAX);
      expect(r.offset + r.length, what).toBeLessThanOrEqual(dev.size);
    }
    const numbers = JSON.stringify(p, (_, v) => (typeof v === 'number' && !Number.isSafeInteger(v) ? `BAD ${v}` : v));
    expect(numbers, what).not.toContain('BAD');
  }
  expect(w.largest, what).toBeLessThanOrEqual(NEED_MAX);
  return found;
}

/** What the guest's first read would give for a file. */
function firstRead(file: string, size = statSync(file).size, sectorSize = 512): DeviceBytes {
  return deviceBytes(
    size,
    sectorSize,
    PROBE_RANGES(size, sectorSize).map((r) => ({ offset: r.offset, data: peek(file, r.offset, r.length) })),
  );
}

/** A little PRNG: the same hostile bytes every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    s ^= s + Math.imul(s ^ (s >>> 7), s | 61);
    return ((s ^ (s >>> 14)) >>> 0) / 2 ** 32;
  };
}

describe('hostile bytes', () => {
  it('random data of many sizes: nothing throws', () => {
    const next = rng(1);
    for (const size of [0, 1, 511, 512, 4096, 65536, 131072, 200_000, MiB, 64 * MiB]) {
      for (let i = 0; i < 4; i++) {
        const data = Buffer.from(Array.from({ length: Math.min(size, 256 * 1024) }, () => Math.floor(next() * 256)));
        expectSane(
          deviceBytes(size, 512, [
            { offset: 0, data },
            { offset: Math.max(0, size - 32768), data: data.subarray(0, Math.min(size, 32768)) },
          ]),
          `random ${size}`,
        );
      }
    }
  });

  it('truncated images: nothing throws, nothing is read past the end', async () => {
    for (const key of ['ext4', 'xfs', 'btrfs', 'fat32', 'exfat', 'ntfs', 'iso', 'hybridGpt', 'mbr', 'gpt', 'luks2', 'lvm', 'mdc', 'f2fs', 'swap64k']) {
      for (const size of [0, 100, 512, 1100, 4096, 40_000, 70_000, 131_072, 1_500_000]) {
        const file = path(`cut-${key}`);
        writeFileSync(file, peek(img[key]!, 0, size));
        expectSane(firstRead(file), `${key} cut at ${size}`);
        await probeFile(file);
      }
    }
  });

  it('mutated superblocks: nothing throws, every range asked for is bounded', () => {
    const next = rng(2);
    const hot = [0, 512, 1024, 4096, 0x8000, 0x8800, 0x10000, 0x10040];
    for (const key of [
      'ext4',
      'xfs',
      'btrfs',
      'fat12',
      'fat32',
      'exfat',
      'ntfs',
      'iso',
      'joliet',
      'squashfs',
      'swap',
      'mbr',
      'gpt',
      'lvm',
      'luks1',
      'luks2',
      'mda',
      'mdc',
      'mde',
      'f2fs',
    ]) {
      const size = statSync(img[key]!).size;
      const ranges = PROBE_RANGES(size, 512);
      const base = ranges.map((r) => ({ offset: r.offset, data: peek(img[key]!, r.offset, r.length) }));
      for (let round = 0; round < 60; round++) {
        const chunks = base.map((c) => ({ offset: c.offset, data: Buffer.from(c.data) }));
        for (let k = 0; k < 1 + Math.floor(next() * 8); k++) {
          const c = chunks[Math.floor(next() * chunks.length)]!;
          const around = c.offset === 0 ? hot[Math.floor(next() * hot.length)]! : 0;
          const at = Math.min(c.data.length - 8, around + Math.floor(next() * 1024));
          if (at < 0) continue;
          // bytes, or an all-ones / high-bit word where lengths and counts live
          if (next() < 0.5) c.data[at] = Math.floor(next() * 256);
          else c.data.fill(next() < 0.5 ? 0xff : 0x80, at, at + 8);
        }
        expectSane(deviceBytes(size, 512, chunks), `${key} mutated (${round})`);
      }
    }
  });

  it('a GPT header claiming 2^32-1 entries (its CRC right): no GPT, nothing asked for, nothing allocated (blkid: PMBR)', async () => {
    const file = path('gpt-huge.img');
    copyFileSync(img.gpt!, file);
    const h = peek(file, 512, 92);
    h.writeUInt32LE(0xffffffff, 80);
    h.writeUInt32LE(0, 16);
    h.writeUInt32LE(crc32(h), 16);
    poke(file, 512, h);
    poke(file, statSync(file).size - 512, Buffer.alloc(512)); // and no backup
    const dev = watched(firstRead(file));
    const before = process.memoryUsage().arrayBuffers;
    const found = probe(dev);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(8 * MiB);
    expect(dev.largest).toBeLessThanOrEqual(NEED_MAX);
    expect(tableOf(found)).toMatchObject({ protectiveOnly: true, partitions: [] });
    expect(tableOf(found)!.needs).toBeUndefined();
    expectLikeBlkid((await probeFile(file)).found, file);
  });

  it('GPT entries far away: asked for in a bounded range, read in a second round', async () => {
    const file = path('gpt-far.img');
    copyFileSync(img.gpt!, file);
    const entries = peek(file, 1024, 16384);
    poke(file, 1024, Buffer.alloc(16384));
    poke(file, 50 * MiB, entries);
    const h = peek(file, 512, 92);
    h.writeBigUInt64LE(BigInt((50 * MiB) / 512), 72);
    h.writeUInt32LE(0, 16);
    h.writeUInt32LE(crc32(h), 16);
    poke(file, 512, h);
    const first = probe(firstRead(file));
    expect(tableOf(first)).toMatchObject({ type: 'gpt', partitions: [], needs: [{ offset: 50 * MiB, length: 16384 }] });
    const r = await probeFile(file);
    expect(r.rounds).toBe(2);
    expectLikeBlkid(r.found, file);
  });

  /** An MBR whose one extended partition starts at sector 2048, and EBRs written by `ebrs`. */
  function ebrDisk(name: string, ebrs: [lba: number, data: [start: number, size: number] | null, link: [start: number, size: number] | null][]): string {
    const file = path(name);
    writeFileSync(file, '');
    execFileSync('truncate', ['-s', String(64 * MiB), file]);
    const entry = (type: number, start: number, size: number) => {
      const e = Buffer.alloc(16);
      e[4] = type;
      e.writeUInt32LE(start, 8);
      e.writeUInt32LE(size, 12);
      return e;
    };
    const sector = (...entries: Buffer[]) => {
      const s = Buffer.alloc(512);
      entries.forEach((e, i) => e.copy(s, 446 + 16 * i));
      s[510] = 0x55;
      s[511] = 0xaa;
      return s;
    };
    poke(file, 0, sector(entry(0x05, 2048, 100_000)));
    for (const [lba, data, link] of ebrs) {
      poke(file, lba * 512, sector(data ? entry(0x83, ...data) : Buffer.alloc(16), link ? entry(0x05, ...link) : Buffer.alloc(16)));
    }
    return file;
  }

  it('an EBR that links to itself: one logical partition, the walk ends (partx agrees)', async () => {
    const file = ebrDisk('ebr-self.img', [[2048, [63, 100], [0, 100_000]]]);
    const r = await probeFile(file);
    expectLikeBlkid(r.found, file);
    expect(tableOf(r.found)!.partitions.map((p) => p.number)).toEqual([1, 5]);
  });

  it('two EBRs linking to each other: two logical partitions, the walk ends', async () => {
    const file = ebrDisk('ebr-pair.img', [
      [2048, [63, 100], [1000, 2000]],
      [3048, [63, 100], [0, 100_000]],
    ]);
    const r = await probeFile(file);
    expect(tableOf(r.found)!.partitions.map((p) => p.number)).toEqual([1, 5, 6]);
    expect(r.rounds).toBeLessThanOrEqual(3);
  });

  it('a chain of 300 EBRs: at most 256 logical partitions, bounded rounds', () => {
    // given all at once (mbrLogical over bytes in hand), the walk stops at Linux's limit
    const chunks = [];
    for (let i = 0; i < 300; i++) {
      const s = Buffer.alloc(512);
      const data = Buffer.alloc(16);
      data[4] = 0x83;
      data.writeUInt32LE(1, 8);
      data.writeUInt32LE(1, 12);
      data.copy(s, 446);
      const link = Buffer.alloc(16);
      link[4] = 0x05;
      link.writeUInt32LE((i + 1) * 2, 8);
      link.writeUInt32LE(2, 12);
      link.copy(s, 462);
      s[510] = 0x55;
      s[511] = 0xaa;
      chunks.push({ offset: (2048 + i * 2) * 512, data: s });
    }
    const dev = deviceBytes(64 * MiB, 512, chunks);
    const { partitions, needs } = mbrLogical(dev, 2048, 100_000, { firstNumber: 5, diskId: 'abcd0123' });
    expect(partitions).toHaveLength(256);
    expect(partitions[0]).toMatchObject({ number: 5, start: 2049 * 512, size: 512, type: '83', uuid: 'abcd0123-05' });
    expect(partitions.at(-1)!.number).toBe(260);
    expect(needs).toBeUndefined();
  });

  it('an EBR chain pointing past the device: what is known, nothing asked past the end', () => {
    const mbr = Buffer.alloc(512);
    mbr[446 + 4] = 0x0f;
    mbr.writeUInt32LE(0xfffffff0, 446 + 8);
    mbr.writeUInt32LE(0xffff, 446 + 12);
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    const found = expectSane(deviceBytes(10 * MiB, 512, [{ offset: 0, data: mbr }]), 'EBR past the end');
    expect(tableOf(found)).toMatchObject({ type: 'dos', partitions: [{ number: 1, type: '0f' }] });
    expect(tableOf(found)!.needs).toBeUndefined();
  });
});
