/**
 * exFAT, after libblkid's superblocks/exfat.c: the boot sector's fields in range and the
 * boot region's checksum (12 sectors from 0). The label is an entry (type 0x83) of the root
 * directory, a cluster chain somewhere in the cluster heap: it is followed as far as the
 * bytes go, the next piece wanted in `needs`. The volume serial is the UUID, "ABCD-1234".
 */
import { ascii, need, serial4, u16le, u32le, u64le, u8, utf16Label } from './bytes.js';
import type { DeviceBytes, Filesystem, Name, Range } from './types.js';

const ENTRY = 32;
const ENTRY_EOD = 0x00;
const ENTRY_LABEL = 0x83;
const FIRST_CLUSTER = 2;
const LAST_CLUSTER = 0xffffff6;
/** How many root-directory entries we look through for the label (libblkid: 256 MiB of them). */
const MAX_ENTRIES = 65536;
/** How much of a cluster one `needs` range asks for. */
const PIECE = 64 * 1024;

interface Sb {
  bps: number;
  clusterBytes: number;
  fatOffset: number;
  heap: number;
  root: number;
  spcShift: number;
}

function superblock(dev: DeviceBytes): { b: Buffer; sb: Sb } | undefined {
  const b = dev.at(0, 512);
  if (!b || u16le(b, 510) !== 0xaa55) return undefined;
  if (b[0] !== 0xeb || b[1] !== 0x76 || b[2] !== 0x90 || ascii(b.subarray(3, 11)) !== 'EXFAT   ') return undefined;
  for (let i = 11; i < 64; i++) if (b[i] !== 0) return undefined;
  const fats = u8(b, 110);
  const bpsShift = u8(b, 108);
  const spcShift = u8(b, 109);
  if (fats < 1 || fats > 2 || bpsShift < 9 || bpsShift > 12 || spcShift > 25 - bpsShift) return undefined;
  const fatOffset = u32le(b, 80);
  const fatLength = u32le(b, 84);
  const heap = u32le(b, 88);
  const clusters = u32le(b, 92);
  const root = u32le(b, 96);
  if (fatOffset < 24 || fatOffset > heap - fatLength * fats) return undefined;
  if (heap < fatOffset + fatLength * fats || heap > 2 ** 31) return undefined;
  if (root < 2 || root > clusters + 1) return undefined;
  const bps = 2 ** bpsShift;
  if (!checksumOk(dev, bps)) return undefined;
  return { b, sb: { bps, clusterBytes: bps * 2 ** spcShift, fatOffset, heap, root, spcShift } };
}

/** The boot region checksum: over 11 sectors (skipping VolumeFlags and PercentInUse), repeated through the 12th. */
function checksumOk(dev: DeviceBytes, bps: number): boolean {
  const region = dev.at(0, bps * 12);
  if (!region) return false;
  let sum = 0;
  for (let i = 0; i < bps * 11; i++) {
    if (i === 106 || i === 107 || i === 112) continue;
    sum = ((sum & 1 ? 0x80000000 : 0) + (sum >>> 1) + region[i]!) >>> 0;
  }
  for (let o = bps * 11; o < bps * 12; o += 4) if (u32le(region, o) !== sum) return false;
  return true;
}

/** Whether sector 0 is an exFAT boot sector (so not an MBR). */
export function isExfat(dev: DeviceBytes): boolean {
  return superblock(dev) !== undefined;
}

export function probeExfat(dev: DeviceBytes): Filesystem | undefined {
  const s = superblock(dev);
  if (!s) return undefined;
  const { b, sb } = s;
  const found = findLabel(dev, sb);
  const label: Name | undefined = found.label;
  const size = u64le(b, 72) * sb.bps;
  return {
    kind: 'filesystem',
    type: 'exfat',
    ...(label !== undefined ? { label } : {}),
    uuid: serial4(b.subarray(100, 104)),
    ...(Number.isSafeInteger(size) ? { size } : {}),
    blockSize: sb.clusterBytes,
    ...(found.needs?.length ? { needs: found.needs } : {}),
  };
}

const clusterOffset = (sb: Sb, cluster: number): number => (sb.heap + (cluster - FIRST_CLUSTER) * 2 ** sb.spcShift) * sb.bps;

function findLabel(dev: DeviceBytes, sb: Sb): { label?: Name; needs?: Range[] } {
  let cluster = sb.root;
  let offset = clusterOffset(sb, cluster);
  for (let i = 0; i < MAX_ENTRIES; i++) {
    const e = dev.at(offset, ENTRY);
    if (!e) {
      const inCluster = sb.clusterBytes - ((offset - clusterOffset(sb, cluster)) % sb.clusterBytes);
      return { needs: need(dev.size, offset, Math.min(inCluster, PIECE)) };
    }
    if (e[0] === ENTRY_EOD) return {};
    if (e[0] === ENTRY_LABEL) return { label: utf16Label(e.subarray(2, 2 + Math.min(e[1]! * 2, 22)), 'le') };
    offset += ENTRY;
    if ((offset - clusterOffset(sb, cluster)) % sb.clusterBytes === 0) {
      const at = sb.fatOffset * sb.bps + cluster * 4;
      const fat = dev.at(at, 4);
      if (!fat) return { needs: need(dev.size, at, 4) };
      cluster = u32le(fat, 0);
      if (cluster < FIRST_CLUSTER || cluster > LAST_CLUSTER) return {};
      offset = clusterOffset(sb, cluster);
    }
  }
  return {};
}
