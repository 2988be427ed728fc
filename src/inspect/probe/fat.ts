/**
 * FAT12/16/32 (vfat), after libblkid's superblocks/vfat.c. A boot sector is FAT when a
 * magic string or a jump instruction is there and the BIOS parameter block is valid (the
 * same test keeps the MBR parser off a FAT: see index.ts). The label is the volume-label
 * entry of the root directory, as blkid 2.38 reports LABEL (the boot sector's copy is its
 * LABEL_FATBOOT): the root directory is read as a `needs` range when it lies outside the
 * bytes read so far. The serial is the UUID, "ABCD-1234".
 */
import { ascii, byteLabel, isPowerOf2, NEED_MAX, need, serial4, u16le, u32le, u8 } from './bytes.js';
import type { DeviceBytes, Filesystem, Name, Range } from './types.js';

const FAT12_MAX = 0xff4;
const FAT16_MAX = 0xfff4;
const FAT32_MAX = 0x0ffffff6;
const ATTR_VOLUME_ID = 0x08;
const ATTR_DIR = 0x10;
const ATTR_LONG_NAME = 0x0f;
const ENTRY_FREE = 0xe5;
/** libblkid follows a FAT32 root directory's cluster chain this far. */
const MAX_ROOT_CLUSTERS = 99;

interface Bpb {
  sectorSize: number;
  clusterSectors: number;
  reserved: number;
  fats: number;
  rootEntries: number;
  sectors: number;
  fatLength16: number;
  fatLength32: number;
  fatSectors: number;
  clusters: number;
}

/** The boot sector and its parameters when it is a FAT's. */
function bootSector(dev: DeviceBytes): { b: Buffer; bpb: Bpb } | undefined {
  const b = dev.at(0, 512);
  if (!b) return undefined;
  const at52 = ascii(b.subarray(0x52, 0x5a));
  const at36 = ascii(b.subarray(0x36, 0x3e));
  const strong = at52.startsWith('MSWIN') || at52 === 'FAT32   ' || at36.startsWith('MSDOS') || ['FAT16   ', 'FAT12   ', 'FAT     '].includes(at36);
  if (!strong) {
    const weak = b[0] === 0xeb || b[0] === 0xe9 || (b[0x1fe] === 0x55 && b[0x1ff] === 0xaa);
    if (!weak) return undefined;
    // Only the jump or the 0x55AA: also an MBR's, or OS/2's pseudo-FAT in front of JFS and HPFS.
    if (b[0x1fe] !== 0x55 || b[0x1ff] !== 0xaa) return undefined;
    if (at36 === 'JFS     ' || at36 === 'HPFS    ') return undefined;
  }
  const fats = u8(b, 0x10);
  const reserved = u16le(b, 0x0e);
  const media = u8(b, 0x15);
  const clusterSectors = u8(b, 0x0d);
  const sectorSize = u16le(b, 0x0b);
  if (!fats || !reserved || !(media >= 0xf8 || media === 0xf0) || !isPowerOf2(clusterSectors)) return undefined;
  if (!isPowerOf2(sectorSize) || sectorSize < 512 || sectorSize > 4096) return undefined;
  const rootEntries = u16le(b, 0x11);
  const sectors = u16le(b, 0x13) || u32le(b, 0x20);
  const fatLength16 = u16le(b, 0x16);
  const fatLength32 = u32le(b, 0x24);
  const fatSectors = (fatLength16 || fatLength32) * fats;
  const dirSectors = Math.floor((rootEntries * 32 + sectorSize - 1) / sectorSize);
  const data = sectors - (reserved + fatSectors + dirSectors);
  // blkid computes this in 32 bits: a negative count wraps to a huge one, and fails below
  const clusters = Math.floor((data < 0 ? data + 2 ** 32 : data) / clusterSectors);
  const max = !fatLength16 && fatLength32 ? FAT32_MAX : clusters > FAT12_MAX ? FAT16_MAX : FAT12_MAX;
  if (clusters > max) return undefined;
  return { b, bpb: { sectorSize, clusterSectors, reserved, fats, rootEntries, sectors, fatLength16, fatLength32, fatSectors, clusters } };
}

/** Whether sector 0 is a FAT boot sector (libblkid's blkid_probe_is_vfat). */
export function isFat(dev: DeviceBytes): boolean {
  return bootSector(dev) !== undefined;
}

export function probeFat(dev: DeviceBytes): Filesystem | undefined {
  const boot = bootSector(dev);
  if (!boot) return undefined;
  const { b, bpb } = boot;
  const ss = bpb.sectorSize;
  let serial: Buffer | undefined;
  let found: { label?: Buffer; needs?: Range[] };

  if (bpb.fatLength16) {
    const ext = u8(b, 0x26);
    if (ext === 0x28 || ext === 0x29) serial = b.subarray(0x27, 0x2b);
    found = rootLabel(dev, (bpb.reserved + bpb.fatSectors) * ss, bpb.rootEntries);
  } else if (bpb.fatLength32) {
    serial = b.subarray(0x43, 0x47);
    const fsinfo = u16le(b, 0x30);
    if (fsinfo) {
      const info = dev.at(fsinfo * ss, 512);
      if (!info) return withNeeds(need(dev.size, fsinfo * ss, 512));
      const sig1 = ascii(info.subarray(0, 4));
      const sig2 = ascii(info.subarray(484, 488));
      if (!['RRaA', 'RRdA', '\0\0\0\0'].includes(sig1) || !['rrAa', '\0\0\0\0'].includes(sig2)) return undefined;
    }
    found = fat32RootLabel(dev, b, bpb);
  } else return undefined;

  const label: Name | undefined = byteLabel(found.label);
  return {
    kind: 'filesystem',
    type: 'vfat',
    ...(label !== undefined ? { label } : {}),
    ...(serial ? { uuid: serial4(serial) } : {}),
    size: bpb.sectors * ss,
    blockSize: bpb.clusterSectors * ss,
    ...(found.needs?.length ? { needs: found.needs } : {}),
  };
}

/** A FAT whose boot sector is valid but whose FSInfo sector is still to be read: only the needs. */
function withNeeds(needs: Range[]): Filesystem | undefined {
  return needs.length ? { kind: 'filesystem', type: 'vfat', needs } : undefined;
}

/** The volume-label entry among `entries` directory entries at `offset`, as libblkid looks for it. */
function rootLabel(dev: DeviceBytes, offset: number, entries: number): { label?: Buffer; needs?: Range[] } {
  const bytes = Math.min(entries * 32, NEED_MAX);
  if (!bytes) return {};
  const dir = dev.at(offset, bytes);
  if (!dir) return { needs: need(dev.size, offset, bytes) };
  const r = searchLabel(dir);
  return r.label ? { label: r.label } : {};
}

function searchLabel(dir: Buffer): { label?: Buffer; end: boolean } {
  for (let o = 0; o + 32 <= dir.length; o += 32) {
    const first = dir[o]!;
    if (first === 0) return { end: true };
    const attr = dir[o + 11]!;
    if (first === ENTRY_FREE || u16le(dir, o + 20) || u16le(dir, o + 26) || (attr & 0x3f) === ATTR_LONG_NAME) continue;
    if ((attr & (ATTR_VOLUME_ID | ATTR_DIR)) === ATTR_VOLUME_ID) {
      const name = Buffer.from(dir.subarray(o, o + 11));
      if (name[0] === 0x05) name[0] = 0xe5;
      return { label: name, end: true };
    }
  }
  return { end: false };
}

/** A FAT32 root directory is a cluster chain: follow it (as far as the bytes go) for the label. */
function fat32RootLabel(dev: DeviceBytes, b: Buffer, bpb: Bpb): { label?: Buffer; needs?: Range[] } {
  const ss = bpb.sectorSize;
  const clusterBytes = bpb.clusterSectors * ss;
  const dataStart = bpb.reserved + bpb.fatSectors;
  const fatEntries = Math.floor((bpb.fatLength32 * ss) / 4);
  let next = u32le(b, 0x2c);
  for (let i = 0; i < MAX_ROOT_CLUSTERS && next && next < fatEntries; i++) {
    const offset = (dataStart + (next - 2) * bpb.clusterSectors) * ss;
    const dir = dev.at(offset, clusterBytes);
    if (!dir) return { needs: need(dev.size, offset, clusterBytes) };
    const r = searchLabel(dir);
    if (r.label) return { label: r.label };
    // libblkid reads on through the cluster chain even past an end-of-directory entry
    const entryAt = bpb.reserved * ss + next * 4;
    const fat = dev.at(entryAt, 4);
    if (!fat) return { needs: need(dev.size, entryAt, 4) };
    next = u32le(fat, 0) & 0x0fffffff;
  }
  return {};
}
