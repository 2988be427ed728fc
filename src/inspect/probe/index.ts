/**
 * Probing a block device from a few ranges of its bytes: which partition table, which
 * filesystem or which kind of member (LVM PV, md, LUKS) it holds, with labels and UUIDs as
 * `blkid -p` shows them. The guest reads PROBE_RANGES of every device in one go; probe()
 * runs every parser over them; a result may ask for more bytes (`needs`), and
 * probeDevice() does those further rounds. One on-disk format per file in this folder.
 *
 * What is tried, and in which order, is libblkid's (util-linux 2.38):
 * - partition tables: MBR ("dos") unless sector 0 is a FAT, exFAT or NTFS boot sector or
 *   has a 0xEE entry (blkid 2.38 still takes an exFAT boot sector for an empty MBR; newer
 *   libblkid does not, nor do we); then GPT (under a protective MBR); a protective MBR
 *   whose GPT is bad is blkid's "PMBR" (a gpt table, `protectiveOnly`). One table at most.
 * - members: md, then LVM2, then LUKS; the first found ends the search (a RAID or crypto
 *   member is not also a filesystem). An LVM label under an MBR written after pvcreate is
 *   stale (pvcreate wipes the first 8 KiB): it is dropped, as blkid does.
 * - filesystems: vfat, swap, xfs, ext2/3/4, iso9660, ntfs, squashfs, btrfs, exfat, f2fs;
 *   all that are found are returned in that order. More than one (iso9660 aside, which
 *   shares disks by design) is what blkid calls ambivalent and refuses to choose from.
 * A partition table and a filesystem may both be found: an isohybrid image is an iso9660
 * and has an MBR or a GPT. (A FAT's boot sector is never also read as an MBR: rule above.)
 */
import { deviceBytes, mergeRanges, NEED_MAX, type Chunk } from './bytes.js';
import { probeBtrfs } from './btrfs.js';
import { isExfat, probeExfat } from './exfat.js';
import { probeExt } from './ext.js';
import { probeF2fs } from './f2fs.js';
import { isFat, probeFat } from './fat.js';
import { probeGpt } from './gpt.js';
import { probeIso9660 } from './iso9660.js';
import { probeLuks } from './luks.js';
import { probeLvm } from './lvm.js';
import { md090Offset, probeMd } from './md.js';
import { probeMbr } from './mbr.js';
import { isNtfs, probeNtfs } from './ntfs.js';
import { probeSquashfs } from './squashfs.js';
import { probeSwap } from './swap.js';
import { probeXfs } from './xfs.js';
import type { DeviceBytes, Filesystem, Member, PartitionTable, Probed, Range } from './types.js';

export type { DeviceBytes, Filesystem, Incomplete, Member, Name, PartitionEntry, PartitionTable, Probed, Range } from './types.js';
export { deviceBytes, NEED_MAX, type Chunk } from './bytes.js';
export { mbrLogical } from './mbr.js';

/** The start of every device read at once: MBR, GPT header and entries, every superblock we know at its place. */
export const START_BYTES = 128 * 1024;
/** The end read at once: the backup GPT header and its entries, md 1.0's superblock. */
export const END_BYTES = 32 * 1024;
/** md 0.90's superblock (64 KiB-aligned, 64-128 KiB before the end): its first 4 KiB. */
const MD090_BYTES = 4096;

/**
 * The ranges of a device of `size` bytes the guest reads in one go before probing, merged
 * and clamped to the device: at most 164 KiB. At the start (128 KiB): MBR and GPT header
 * and entries (for 512 and 4096-byte sectors), the ext superblock at 1024, xfs, squashfs,
 * FAT/exFAT/NTFS boot sectors and the exFAT boot checksum at 0, LVM2's label (sectors 0-3)
 * and usually its metadata, md 1.1 and 1.2, LUKS1/2 primary and secondary headers, swap's
 * signature for every page size up to 64 KiB, f2fs, iso9660's volume descriptors from 32
 * KiB, btrfs at 64 KiB. At the end (32 KiB): the backup GPT header and entries, md 1.0. And
 * md 0.90's superblock. `sectorSize` needs no range of its own: both sizes fit these.
 */
export function PROBE_RANGES(size: number, sectorSize: number): Range[] {
  void sectorSize;
  if (!Number.isSafeInteger(size) || size <= 0) return [];
  const ranges: Range[] = [
    { offset: 0, length: START_BYTES },
    { offset: Math.max(0, size - END_BYTES), length: END_BYTES },
  ];
  if (size > 0x10000) ranges.push({ offset: md090Offset(size), length: MD090_BYTES });
  return mergeRanges(ranges, size);
}

/** Runs one parser; a parser that throws (it should not) finds nothing rather than ending the probe. */
function attempt<T>(parse: () => T | undefined): T | undefined {
  try {
    return parse();
  } catch {
    return undefined;
  }
}

/**
 * Everything recognised in the bytes of `dev`: at most one partition table, then either
 * one member (md, LVM PV, LUKS) or the filesystems found (usually one). Never throws.
 */
export function probe(dev: DeviceBytes): Probed[] {
  const table = partitionTable(dev);
  const out: Probed[] = table ? [table] : [];
  const member = members(dev, table);
  if (member) return [...out, member];
  const parsers: (() => Filesystem | undefined)[] = [
    () => probeFat(dev),
    () => probeSwap(dev),
    () => probeXfs(dev),
    () => probeExt(dev),
    () => probeIso9660(dev),
    () => probeNtfs(dev),
    () => probeSquashfs(dev),
    () => probeBtrfs(dev),
    () => probeExfat(dev),
    () => probeF2fs(dev),
  ];
  for (const parse of parsers) {
    const fs = attempt(parse);
    if (fs) out.push(fs);
  }
  return out;
}

function partitionTable(dev: DeviceBytes): PartitionTable | undefined {
  const bootSector = attempt(() => isFat(dev) || isExfat(dev) || isNtfs(dev)) ?? false;
  return (bootSector ? undefined : attempt(() => probeMbr(dev))) ?? attempt(() => probeGpt(dev));
}

function members(dev: DeviceBytes, table: PartitionTable | undefined): Member | undefined {
  const md = attempt(() => probeMd(dev, table?.partitions ?? []));
  if (md) return md;
  const lvm = attempt(() => probeLvm(dev));
  if (lvm && table?.type !== 'dos') return lvm;
  return attempt(() => probeLuks(dev));
}

export interface ProbeDeviceOptions {
  /** How many rounds of further reads (`needs`) at most: an EBR chain takes one per logical partition. Default 300. */
  maxRounds?: number;
  /** How many bytes one round may ask for at most. Default 4 MiB. */
  maxRoundBytes?: number;
}

/**
 * Probes a device given a way to read ranges of it: PROBE_RANGES first, then the `needs`
 * of what was found, round after round, until nothing more is wanted (or the bounds are
 * reached). `read` answers one Buffer per range (shorter at the end of the device is fine).
 * A range is never asked for twice.
 */
export async function probeDevice(
  size: number,
  sectorSize: number,
  read: (ranges: Range[]) => Promise<Buffer[]>,
  options: ProbeDeviceOptions = {},
): Promise<Probed[]> {
  const maxRounds = options.maxRounds ?? 300;
  const maxRoundBytes = options.maxRoundBytes ?? 4 * NEED_MAX;
  const chunks: Chunk[] = [];
  const asked = new Set<string>();
  const fetch = async (ranges: Range[]) => {
    const data = await read(ranges);
    ranges.forEach((r, i) => {
      asked.add(`${r.offset}+${r.length}`);
      const d = data[i];
      if (d && d.length) chunks.push({ offset: r.offset, data: d.subarray(0, r.length) });
    });
  };
  await fetch(PROBE_RANGES(size, sectorSize));
  let found = probe(deviceBytes(size, sectorSize, chunks));
  for (let round = 0; round < maxRounds; round++) {
    const dev = deviceBytes(size, sectorSize, chunks);
    const wanted: Range[] = [];
    let bytes = 0;
    for (const r of found.flatMap((p) => p.needs ?? [])) {
      if (asked.has(`${r.offset}+${r.length}`) || r.length > NEED_MAX || r.offset + r.length > size || dev.at(r.offset, r.length)) continue;
      if (bytes + r.length > maxRoundBytes) break;
      bytes += r.length;
      wanted.push(r);
    }
    if (!wanted.length) break;
    await fetch(wanted);
    found = probe(deviceBytes(size, sectorSize, chunks));
  }
  return found;
}
