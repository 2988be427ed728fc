/**
 * What the attached disks hold, from the guest's block devices and the bytes probed on
 * the host: each disk's partition table and partitions, each device's filesystem or
 * membership (LVM, md, LUKS). Device-mapper and md devices the guest assembled later
 * (volumes.ts) are probed the same way.
 */
import { diskSerial } from '../guest/contract.js';
import type { BlockDevice, Helper } from './helper.js';
import { probeDevice, PROBE_RANGES } from './probe/index.js';
import { EXTENDED_TYPES } from './probe/mbr.js';
import type { Filesystem as ProbedFs, Member, Name, PartitionTable, Probed, Range } from './probe/types.js';

export interface Partition {
  /** 1-based, as the kernel numbers it (MBR logical partitions from 5). */
  number: number;
  /** The guest's name for it (vdb2). */
  device: string;
  /** Bytes from the start of the disk. */
  start: number;
  size: number;
  /** GPT: the type GUID; MBR: the type byte as two hex digits ("83"). */
  type?: string;
  /** GPT: its GUID; MBR: the kernel's PARTUUID (disk signature and number). */
  uuid?: string;
  /** GPT: its name. */
  name?: Name;
  bootable?: boolean;
}

export interface Disk {
  /** Its place in the caller's list: disk0 is the first. */
  index: number;
  /** The image on the host. */
  path: string;
  /** Its format as attached: raw, qcow2, vmdk… (src/launcher/disks.ts). */
  format: string;
  /** The guest's name for it (vdb). */
  device: string;
  size: number;
  sectorSize: number;
  /** PMBR: a protective MBR whose GPT is not valid (no partitions). */
  partitionTable?: { type: PartitionTable['type']; id?: string; /** What was wrong with it and what was read instead. */ note?: string };
  partitions: Partition[];
}

/** A device the host probed: what it is, found from its bytes. */
export interface Probe {
  device: BlockDevice;
  found: Probed[];
}

/**
 * Probes `devices`: the first reads of all of them in one call to the guest; a device
 * whose findings want more (an MBR's chain of logical partitions…) asks in further rounds.
 */
export async function probeDevices(helper: Helper, devices: BlockDevice[], all: BlockDevice[]): Promise<Probe[]> {
  const sector = (d: BlockDevice) => d.sectorSize ?? all.find((p) => p.name === d.partition?.parent)?.sectorSize ?? 512;
  const reads = devices.map((d) => ({ device: d.name, ranges: PROBE_RANGES(d.size, sector(d)) }));
  const first = await helper.read(reads);
  return Promise.all(
    devices.map(async (d, i) => {
      const cached = new Map(reads[i]!.ranges.map((r, j) => [`${r.offset}+${r.length}`, first[i]![j]!]));
      const read = async (ranges: Range[]) => {
        const missing = ranges.filter((r) => !cached.has(`${r.offset}+${r.length}`));
        if (missing.length) {
          const [got] = await helper.read([{ device: d.name, ranges: missing }]);
          missing.forEach((r, j) => cached.set(`${r.offset}+${r.length}`, got![j]!));
        }
        return ranges.map((r) => cached.get(`${r.offset}+${r.length}`)!);
      };
      return { device: d, found: await probeDevice(d.size, sector(d), read) };
    }),
  );
}

/** The user's disks (serials disk0, disk1, … in the order given) with their partitions. */
export function disksOf(devices: BlockDevice[], probes: Probe[], images: { path: string; format: string }[]): Disk[] {
  return images.map(({ path, format }, index) => {
    const device = devices.find((d) => d.serial === diskSerial(index));
    if (!device) return { index, path, format, device: '', size: 0, sectorSize: 512, partitions: [] };
    const table = probes.find((p) => p.device.name === device.name)?.found.find((f): f is PartitionTable => f.kind === 'partition-table');
    const partitions = devices
      .filter((d) => d.partition?.parent === device.name)
      .map((d): Partition => {
        const entry = table?.partitions.find((e) => e.number === d.partition!.number);
        return {
          number: d.partition!.number,
          device: d.name,
          start: d.partition!.start,
          // The table's size where it has the partition: the kernel gives an MBR extended
          // partition 1 KiB (the EBR it may read), not the space its logical ones share.
          // Never past the disk's end, where the kernel cuts it too.
          size: entry && entry.start === d.partition!.start ? Math.min(entry.size, device.size - entry.start) : d.size,
          ...(entry ? { type: entry.type, uuid: entry.uuid, name: entry.name, bootable: entry.bootable } : {}),
        };
      })
      .sort((a, b) => a.number - b.number);
    const note = [table?.note, ...(table ? tableFaults(table, device.size) : [])].filter(Boolean).join('; ');
    return {
      index,
      path,
      format,
      device: device.name,
      size: device.size,
      sectorSize: device.sectorSize ?? 512,
      ...(table ? { partitionTable: { type: table.type, ...(table.id ? { id: table.id } : {}), ...(note ? { note } : {}) } } : {}),
      partitions,
    };
  });
}

/**
 * What a table says that cannot be so on a disk of `size` bytes: a partition past its end
 * (the kernel leaves it out, or cuts it at the end), partitions over one another (an
 * extended partition holds its logical ones: not counted; the rest cut at the disk's end).
 */
function tableFaults(table: PartitionTable, size: number): string[] {
  const faults: string[] = [];
  const data = table.partitions.filter((e) => e.start < size && !(table.type === 'dos' && EXTENDED_TYPES.has(parseInt(e.type, 16))));
  for (const e of table.partitions) {
    if (e.start >= size) faults.push(`partition ${e.number} starts past the disk's end (at ${e.start} bytes of ${size}): left out`);
    else if (e.start + e.size > size) faults.push(`partition ${e.number} ends past the disk's end (${e.start + e.size} bytes of ${size}): cut there`);
  }
  for (const [i, a] of data.entries())
    for (const b of data.slice(i + 1))
      if (a.start < b.start + b.size && b.start < a.start + a.size) faults.push(`partitions ${a.number} and ${b.number} overlap`);
  return faults;
}

export const filesystemOf = (p: Probe): ProbedFs | undefined => p.found.find((f): f is ProbedFs => f.kind === 'filesystem');
export const memberOf = (p: Probe): Member | undefined => p.found.find((f): f is Member => f.kind === 'lvm-pv' || f.kind === 'md-member' || f.kind === 'luks');

/** Partitions kept of a disk whose table we could not read, where the kernel found one (a BSD label, say). */
const KERNEL_ONLY_MAX = 64;

/**
 * The devices without the kernel's partitions that our own reading of their disk's table
 * does not have: a table is the image's, and a crafted one (an EBR that links to itself)
 * has the kernel list up to 253 partitions, copies of one another; ours cuts such loops
 * (probe/mbr.ts). A partition stays when our table has its number at its start. A disk
 * whose table we found none of keeps the kernel's first KERNEL_ONLY_MAX.
 */
export function ownPartitions(devices: BlockDevice[], probes: Probe[]): BlockDevice[] {
  const tables = new Map(probes.map((p) => [p.device.name, p.found.find((f): f is PartitionTable => f.kind === 'partition-table')]));
  const kernelOnly = new Map<string, number>();
  return devices.filter((d) => {
    if (!d.partition) return true;
    const table = tables.get(d.partition.parent);
    if (table) return table.partitions.some((e) => e.number === d.partition!.number && e.start === d.partition!.start);
    const n = (kernelOnly.get(d.partition.parent) ?? 0) + 1;
    kernelOnly.set(d.partition.parent, n);
    return n <= KERNEL_ONLY_MAX;
  });
}

/** The devices worth probing: the user disks, their partitions, and what was assembled from them (dm, md). */
export function probeTargets(devices: BlockDevice[]): BlockDevice[] {
  const disks = new Set(devices.filter((d) => d.serial && /^disk\d+$/.test(d.serial)).map((d) => d.name));
  // Partitions of the user's disks, and of the volumes assembled from them (an md array's, an LV's).
  const volumes = new Set(devices.filter((d) => d.dm || d.mdLevel !== undefined).map((d) => d.name));
  return devices.filter(
    (d) => disks.has(d.name) || (d.partition && (disks.has(d.partition.parent) || volumes.has(d.partition.parent))) || d.dm || d.mdLevel !== undefined,
  );
}
