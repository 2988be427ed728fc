/**
 * What probing a block device finds, from bytes the guest read at its start and end
 * (formats are recognised on the host, in TypeScript: the guest only reads). Each
 * format's on-disk structures live in a file of their own in this folder.
 */

/** Bytes of one device, read by the guest: some ranges of it, and its size. */
export interface DeviceBytes {
  /** The device's size in bytes. */
  size: number;
  /** Logical sector size in bytes (512 or 4096). */
  sectorSize: number;
  /** `length` bytes at `offset`, or undefined when that range was not read (or lies past the end). */
  at(offset: number, length: number): Buffer | undefined;
}

/** The ranges the guest reads of every device before probing: see probe/index.ts PROBE_RANGES. */
export interface Range {
  offset: number;
  length: number;
}

/**
 * A name as stored: a string when it is valid UTF-8 (or valid UTF-16, for the formats that
 * store UTF-16), else its bytes as stored (up to the terminator).
 */
export type Name = string | Buffer;

export interface PartitionEntry {
  /** As the kernel numbers it (1-based; MBR logical partitions from 5). */
  number: number;
  /** Bytes from the start of the disk. */
  start: number;
  size: number;
  /** GPT: the partition type GUID (lower case); MBR: the type byte as two hex digits, e.g. "83". */
  type: string;
  /** GPT: the partition's unique GUID; MBR: the disk signature and the number, as the kernel's PARTUUID ("1234abcd-01"). */
  uuid?: string;
  /** GPT: the partition name. */
  name?: Name;
  /** MBR: the boot flag. GPT: the legacy BIOS bootable attribute. */
  bootable?: boolean;
}

/**
 * What a result still lacks: bytes outside the ranges read so far that would complete it
 * (the next EBR of an MBR's extended partition, GPT entries far from the header, a FAT or
 * exFAT root directory holding the label, NTFS's $MFT records, LVM's metadata text). Read
 * them, add them to the DeviceBytes and probe again: `probeDevice` in index.ts does the
 * rounds. A result with `needs` is what the bytes so far show; each range is bounded (at
 * most NEED_MAX bytes) whatever the on-disk fields claim.
 */
export interface Incomplete {
  needs?: Range[];
}

export interface PartitionTable extends Incomplete {
  kind: 'partition-table';
  type: 'gpt' | 'dos';
  /** GPT: only the protective MBR is valid, both GPT headers are not (blkid's PTTYPE=PMBR): no partitions known. */
  protectiveOnly?: boolean;
  /** GPT: the disk GUID; MBR: the disk signature as 8 hex digits. */
  id?: string;
  partitions: PartitionEntry[];
  /** What was wrong with the table and what was read instead (a refused primary GPT header, an EBR chain cut at a loop). */
  note?: string;
}

export interface Filesystem extends Incomplete {
  kind: 'filesystem';
  /**
   * As the kernel's mount takes it (and blkid's TYPE): ext2, ext3, ext4, xfs, btrfs, vfat,
   * exfat, iso9660, squashfs, ntfs, f2fs, swap; and what is not mounted: jbd (an external
   * ext journal), ext4dev, swsuspend (a hibernation image in swap), squashfs3.
   */
  type: string;
  label?: Name;
  uuid?: string;
  /** The filesystem's own idea of its size in bytes, when the superblock says. */
  size?: number;
  /** The filesystem's allocation unit (ext/xfs block, btrfs sector, FAT/exFAT/NTFS cluster, squashfs block, swap page), when the superblock says. */
  blockSize?: number;
  /** When the superblock was last written (ext's s_wtime, Unix seconds), where it says. */
  writtenAt?: number;
  /** A journal or log to replay (ext3/4 needs_recovery, btrfs log tree, NTFS's dirty flag); undefined when the superblock cannot tell (xfs): we never replay it. */
  dirty?: boolean;
  /** btrfs: this device's UUID (blkid's UUID_SUB). */
  subUuid?: string;
  /** btrfs: the device's number in a multi-device filesystem, and how many devices it has. */
  devid?: number;
  devices?: number;
}

/** A member of something assembled from devices: an LVM physical volume, an md array, a LUKS container. */
export interface Member extends Incomplete {
  kind: 'lvm-pv' | 'md-member' | 'luks';
  /**
   * As blkid prints it: the PV UUID (6-4-4-4-4-4-6), the md array UUID (8-4-4-4-12: the
   * same 32 hex digits mdadm prints as xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx), the LUKS UUID.
   */
  uuid: string;
  /** md: raid level ("raid1"…), LUKS: version ("1", "2"). */
  detail?: string;
  /** md: the array's name (1.x superblocks); LVM: the volume group's name (from the metadata area); LUKS2: the label. */
  name?: Name;
  /** md: the metadata version ("0.90.0", "1.0", "1.1", "1.2"); LUKS: "1" or "2"; LVM: the label type ("LVM2 001"). */
  version?: string;
  /** md: this member's UUID (blkid's UUID_SUB, 1.x only). */
  subUuid?: string;
}

export type Probed = PartitionTable | Filesystem | Member;
