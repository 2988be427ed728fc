/**
 * The MS-DOS partition table (MBR): four primary entries in sector 0 and, for an extended
 * partition, a chain of extended boot records (EBRs), each holding one logical partition
 * and a link to the next. Rules as libblkid's partitions/dos.c: the 0x55AA signature, boot
 * indicators 0 or 0x80 only, no 0xEE entry (that is GPT's protective MBR), and — decided by
 * the caller, see index.ts — sector 0 is not the boot sector of a FAT, exFAT or NTFS.
 */
import { need, u32le, u8 } from './bytes.js';
import type { DeviceBytes, PartitionEntry, PartitionTable, Range } from './types.js';

/** Partition types that hold a chain of EBRs: DOS, Windows 95 (LBA) and Linux extended. */
export const EXTENDED_TYPES: ReadonlySet<number> = new Set([0x05, 0x0f, 0x85]);
/** GPT's protective MBR type. */
export const GPT_PROTECTIVE = 0xee;
/** Linux numbers at most this many partitions on a disk; a longer EBR chain is junk. */
const MAX_LOGICAL = 256;
/** libblkid gives up after this many EBRs in a row without a data partition. */
const MAX_EMPTY_EBRS = 100;

const TABLE = 446;
const AIX_MAGIC = Buffer.from([0xc9, 0xc2, 0xd4, 0xc1]);

interface RawEntry {
  boot: number;
  type: number;
  /** In the table's sectors (relative to what the table's rules say). */
  start: number;
  size: number;
}

function entries(sector: Buffer): RawEntry[] {
  return [0, 1, 2, 3].map((i) => {
    const o = TABLE + i * 16;
    return { boot: u8(sector, o), type: u8(sector, o + 4), start: u32le(sector, o + 8), size: u32le(sector, o + 12) };
  });
}

/** Sector 0 when it ends with 0x55AA. */
export function mbrSector(dev: DeviceBytes): Buffer | undefined {
  const s = dev.at(0, 512);
  return s && s[510] === 0x55 && s[511] === 0xaa ? s : undefined;
}

/** Whether sector 0 has an entry of type 0xEE (a protective MBR, alone or in a hybrid MBR). */
export function hasProtectiveEntry(dev: DeviceBytes): boolean {
  const s = mbrSector(dev);
  return !!s && entries(s).some((e) => e.type === GPT_PROTECTIVE);
}

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');

/**
 * The MBR's primary partitions, and the logical ones as far as the EBRs read so far go
 * (the next EBR wanted is in `needs`). Undefined when sector 0 is not an MBR.
 */
export function probeMbr(dev: DeviceBytes): PartitionTable | undefined {
  const s = mbrSector(dev);
  if (!s || s.subarray(0, 4).equals(AIX_MAGIC)) return undefined;
  const raw = entries(s);
  if (raw.some((e) => e.boot !== 0 && e.boot !== 0x80)) return undefined;
  if (raw.some((e) => e.type === GPT_PROTECTIVE)) return undefined;

  const signature = u32le(s, 440);
  const id = signature ? signature.toString(16).padStart(8, '0') : undefined;
  const ss = dev.sectorSize;
  const partitions: PartitionEntry[] = [];
  raw.forEach((e, i) => {
    if (!e.size) return; // an empty slot keeps its number
    partitions.push(entry(i + 1, e, e.start * ss, ss, id));
  });

  const needs: Range[] = [];
  const notes: string[] = [];
  let next = 5;
  for (const e of raw) {
    if (!e.size || !EXTENDED_TYPES.has(e.type)) continue;
    const logical = mbrLogical(dev, e.start, e.size, { firstNumber: next, diskId: id });
    partitions.push(...logical.partitions);
    next += logical.partitions.length;
    needs.push(...(logical.needs ?? []));
    if (logical.note) notes.push(logical.note);
  }
  return {
    kind: 'partition-table',
    type: 'dos',
    ...(id ? { id } : {}),
    partitions,
    ...(needs.length ? { needs } : {}),
    ...(notes.length ? { note: notes.join('; ') } : {}),
  };
}

function entry(number: number, e: RawEntry, start: number, sectorSize: number, id: string | undefined): PartitionEntry {
  return {
    number,
    start,
    size: e.size * sectorSize,
    type: hex2(e.type),
    ...(id ? { uuid: `${id}-${hex2(number)}` } : {}),
    bootable: e.boot === 0x80,
  };
}

export interface LogicalOptions {
  /** The number of the first logical partition found (5, or more after another extended partition). */
  firstNumber?: number;
  /** The disk signature as 8 hex digits, for the partitions' PARTUUIDs. */
  diskId?: string;
}

/**
 * Walks the EBR chain of the extended partition at `extendedStart` (`extendedSize` long,
 * both in the disk's logical sectors) as far as the bytes go. Each EBR's first data entry
 * is a logical partition (relative to that EBR); its first extended entry links to the
 * next EBR (relative to the extended partition's start). A chain that loops, grows past
 * 256 partitions or runs 100 EBRs without data ends there. When an EBR was not read, the
 * result's `needs` holds its range.
 */
export function mbrLogical(
  dev: DeviceBytes,
  extendedStart: number,
  extendedSize: number,
  options: LogicalOptions = {},
): { partitions: PartitionEntry[]; needs?: Range[]; note?: string } {
  const ss = dev.sectorSize;
  const partitions: PartitionEntry[] = [];
  let number = options.firstNumber ?? 5;
  let cur = extendedStart;
  let curSize = extendedSize;
  const seen = new Set<number>();
  let empty = 0;
  let note: string | undefined;
  while (partitions.length < MAX_LOGICAL) {
    if (seen.has(cur)) {
      note = `the chain of logical partitions loops back to the EBR at sector ${cur}: cut there, after ${partitions.length}`;
      break;
    }
    if (++empty > MAX_EMPTY_EBRS) break;
    seen.add(cur);
    const offset = cur * ss;
    const sector = dev.at(offset, 512);
    if (!sector) {
      const wanted = need(dev.size, offset, 512);
      return wanted.length ? { partitions, needs: wanted } : { partitions };
    }
    if (sector[510] !== 0x55 || sector[511] !== 0xaa) break;
    const raw = entries(sector);
    raw.forEach((e, i) => {
      if (!e.size || EXTENDED_TYPES.has(e.type)) return;
      const absolute = cur + e.start;
      if (i >= 2) {
        // the 3rd and 4th entries count only when they lie inside the extended partition
        if (e.start + e.size > curSize) return;
        if (absolute < extendedStart || absolute + e.size > extendedStart + extendedSize) return;
      }
      if (partitions.length >= MAX_LOGICAL) return;
      partitions.push(entry(number, e, absolute * ss, ss, options.diskId));
      number++;
      empty = 0;
    });
    const link = raw.find((e) => e.size && EXTENDED_TYPES.has(e.type));
    if (!link) break;
    cur = extendedStart + link.start;
    curSize = link.size;
  }
  if (partitions.length >= MAX_LOGICAL) note = `the chain of logical partitions holds more than ${MAX_LOGICAL}: cut there`;
  return { partitions, ...(note ? { note } : {}) };
}
