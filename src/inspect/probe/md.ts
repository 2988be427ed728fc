/**
 * Linux software RAID (md) member superblocks, after libblkid's superblocks/linux_raid.c:
 * 0.90 (either endianness) in the last 64 KiB-aligned 64 KiB of the device, 1.0 8 KiB
 * before the 4 KiB-aligned end, 1.1 at 0 and 1.2 at 4 KiB, tried in that order. Beyond
 * blkid 2.38 (like newer libblkid) a 1.x superblock's checksum must hold. A 0.90
 * superblock that lies inside a partition of the disk's table belongs to that partition,
 * not to the disk: the caller passes the partitions to tell.
 */
import { byteLabel, i32be, i32le, u32be, u32le, u64le, uuid } from './bytes.js';
import type { DeviceBytes, Member, PartitionEntry } from './types.js';

const MAGIC = 0xa92b4efc;
const RESERVED = 0x10000;
const SB1_SIZE = 256;
const SB1_MAX = 4096;

const LEVELS: Record<number, string> = {
  [-1]: 'linear',
  0: 'raid0',
  1: 'raid1',
  4: 'raid4',
  5: 'raid5',
  6: 'raid6',
  10: 'raid10',
  [-4]: 'multipath',
  [-5]: 'faulty',
  [-100]: 'container',
};

/** Where the 0.90 superblock of a device of `size` bytes is. */
export const md090Offset = (size: number): number => Math.floor(size / RESERVED) * RESERVED - RESERVED;
/** Where the 1.0 superblock of a device of `size` bytes is. */
export const md10Offset = (size: number): number => Math.floor(size / 4096) * 4096 - 0x2000;

export function probeMd(dev: DeviceBytes, partitions: readonly PartitionEntry[] = []): Member | undefined {
  if (dev.size > RESERVED) {
    const v090 = md090(dev, md090Offset(dev.size), partitions);
    if (v090) return v090;
    const v10 = md1(dev, md10Offset(dev.size), '1.0');
    if (v10) return v10;
  }
  return md1(dev, 0, '1.1') ?? md1(dev, 0x1000, '1.2');
}

function md090(dev: DeviceBytes, off: number, partitions: readonly PartitionEntry[]): Member | undefined {
  const sb = dev.at(off, 128);
  if (!sb) return undefined;
  const le = u32le(sb, 0) === MAGIC;
  if (!le && u32be(sb, 0) !== MAGIC) return undefined;
  const word = le ? u32le : u32be;
  const [major, minor, patch] = [word(sb, 4), word(sb, 8), word(sb, 12)];
  const arraySize = word(sb, 32) * 1024;
  if (dev.size < arraySize + RESERVED || off < arraySize) return undefined;
  // the superblock at the end of the last partition is also near the end of the disk
  const from = off - arraySize;
  const to = off + RESERVED;
  if (partitions.some((p) => Math.floor(from / 512) >= Math.floor(p.start / 512) && Math.floor(to / 512) <= Math.floor((p.start + p.size) / 512)))
    return undefined;
  const words = minor >= 90 ? [20, 52, 56, 60] : [20];
  const raw = Buffer.alloc(16);
  words.forEach((o, i) => raw.writeUInt32BE(word(sb, o), i * 4));
  const id = uuid(raw);
  if (!id) return undefined;
  const level = LEVELS[(le ? i32le : i32be)(sb, 28)];
  return { kind: 'md-member', uuid: id, version: `${major}.${minor}.${patch}`, ...(level ? { detail: level } : {}) };
}

function md1(dev: DeviceBytes, off: number, version: string): Member | undefined {
  const head = dev.at(off, SB1_SIZE);
  if (!head || u32le(head, 0) !== MAGIC || u32le(head, 4) !== 1) return undefined;
  if (u64le(head, 144) !== off / 512) return undefined;
  const length = SB1_SIZE + u32le(head, 220) * 2;
  if (length > SB1_MAX) return undefined;
  const sb = dev.at(off, length);
  if (!sb || checksum(sb) !== u32le(sb, 216)) return undefined;
  const id = uuid(sb.subarray(16, 32));
  if (!id) return undefined;
  const name = byteLabel(sb.subarray(32, 64));
  const sub = uuid(sb.subarray(168, 184));
  const level = LEVELS[i32le(sb, 72)];
  return {
    kind: 'md-member',
    uuid: id,
    version,
    ...(level ? { detail: level } : {}),
    ...(name !== undefined ? { name } : {}),
    ...(sub ? { subUuid: sub } : {}),
  };
}

/** mdadm's calc_sb_1_csum: 32-bit little-endian words summed in 64 bits (sb_csum as 0), folded. */
function checksum(sb: Buffer): number {
  let lo = 0;
  let hi = 0;
  let i = 0;
  for (; i + 4 <= sb.length; i += 4) {
    lo += i === 216 ? 0 : u32le(sb, i);
    if (lo >= 0x1_0000_0000) {
      hi += Math.floor(lo / 0x1_0000_0000);
      lo %= 0x1_0000_0000;
    }
  }
  if (sb.length - i === 2) lo += sb[i]! | (sb[i + 1]! << 8);
  return (lo + hi) % 0x1_0000_0000;
}
