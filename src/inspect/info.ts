import type { Name } from './probe/types.js';
/** What an inspection tells of each filesystem (its own module: the mounted-filesystem and selector modules name it too). */
export interface FilesystemInfo {
  /** How to name it: disk0 (a whole disk), disk0:2 (a partition), vg/lv, md:NAME, luks:UUID, btrfsvol:ID/PATH. */
  id: string;
  /** ext4, xfs, btrfs, vfat, exfat, iso9660, squashfs, swap, ntfs… */
  type: string;
  label?: Name;
  uuid?: string;
  /** Bytes it spans: its superblock's size, else its device's. */
  size: number;
  /** After mounting: bytes in use and free for an ordinary user (statfs). */
  used?: number;
  available?: number;
  /** A journal or log that needs replaying, an NTFS marked dirty (we never replay or repair one). */
  dirty?: boolean;
  /** Where it is: a disk and partition, a logical volume, an md array, a btrfs subvolume. */
  disk?: number;
  partition?: number;
  lv?: string;
  md?: string;
  subvolume?: string;
  /** Why it cannot be read (no driver, a corrupt superblock…): one line. */
  error?: string;
  /** Where mounting failed: the driver's whole log (the kernel's lines, ntfs-3g's words), one line an entry. */
  mountLog?: string[];
}
