/**
 * How each filesystem type is mounted for inspection: read-only, and replaying nothing
 * (no journal, no log, no recovery), so an image is read exactly as it is and never
 * written; and where (a folder per filesystem under /run in the guest).
 */
import { FUSE_TYPE_PREFIX } from '../guest/contract.js';

/**
 * Types whose inode numbers are on disk (an inode, a block, an MFT record is not among them:
 * vfat and exFAT are numbered as the kernel meets their files, a FUSE mount by its nodes), so
 * that a file of a clone with its original's number and times is the original's, untouched.
 */
const STABLE_INODES: ReadonlySet<string> = new Set(['ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'f2fs', 'iso9660', 'squashfs', 'udf']);
export const stableInodes = (type: string): boolean => STABLE_INODES.has(type);

/** The guest folder filesystem `n` is mounted on. */
export const mountDir = (n: number): string => `/run/appliance/fs/${n}`;

/**
 * mount(2) type and options for a probed type, or a FUSE driver of the appliance's and its
 * options (type `fuse:PROGRAM`); undefined when nothing can mount it here. `dirty`: what
 * the superblock says of a log to replay (false: none), where it says.
 */
export function mountOptions(type: string, dirty?: boolean): { type: string; options: string } | undefined {
  switch (type) {
    case 'ext2':
    case 'ext3':
    case 'ext4':
      // The ext4 driver reads all three; noload: a dirty journal is not replayed.
      return { type: 'ext4', options: 'noload' };
    case 'xfs':
      // norecovery: the log is not replayed; nouuid: a clone of another attached image mounts too.
      return { type: 'xfs', options: 'norecovery,nouuid' };
    case 'btrfs':
      // A read-only btrfs mount still replays its log tree: nologreplay unless the superblock
      // has no log (log_root 0). Only then: rescue options change what statfs counts (the
      // global reserve is left out of "used"), so a clean one is mounted as df would see it.
      return { type: 'btrfs', options: dirty === false ? '' : 'rescue=nologreplay' };
    case 'vfat':
      return { type: 'vfat', options: 'utf8,shortname=mixed' };
    case 'exfat':
      return { type: 'exfat', options: 'iocharset=utf8' };
    case 'iso9660':
      return { type: 'iso9660', options: '' };
    case 'squashfs':
      return { type: 'squashfs', options: '' };
    case 'udf':
      return { type: 'udf', options: '' };
    case 'f2fs':
      return { type: 'f2fs', options: 'norecovery' };
    case 'ntfs':
      // ntfs-3g, as libguestfs reads NTFS (Debian's cloud kernel has no ntfs3). Read-only
      // (the helper adds ro), it neither resets an unclean volume's $LogFile nor touches a
      // hibernated one: it does that on read-write mounts only.
      return { type: `${FUSE_TYPE_PREFIX}ntfs-3g`, options: '' };
    default:
      return undefined;
  }
}

/** Why a type cannot be mounted, for the filesystem's error. */
export function unmountableReason(type: string): string {
  if (type === 'swap') return 'swap space holds no files';
  return `no driver for ${type} filesystems in the appliance`;
}

/** Who mounts a mount type, for its errors: the FUSE driver program, or the kernel. */
export function mountDriver(mountType: string): string {
  return mountType.startsWith(FUSE_TYPE_PREFIX) ? mountType.slice(FUSE_TYPE_PREFIX.length) : 'the kernel';
}
