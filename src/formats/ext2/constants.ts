/**
 * On-disk constants of ext2 revision 1, as the kernel's ext4 driver and e2fsprogs read them:
 * what this writer emits, and the feature bits inspection's probe (src/inspect/probe/ext.ts)
 * tells ext2, ext3 and ext4 apart by.
 */
import type { EntryType } from '../entry.js';

export const EXT2_MAGIC = 0xef53;
export const SUPERBLOCK_OFFSET = 1024;
export const SUPERBLOCK_SIZE = 1024;
export const GROUP_DESC_SIZE = 32;
export const INODE_SIZE = 256;
/** Bytes of the inode past the 128-byte base that we fill (ctime/mtime/atime/crtime extras). */
export const INODE_EXTRA_ISIZE = 32;

export const ROOT_INO = 2;
export const LOST_FOUND_INO = 11;
/** First inode number not reserved by the filesystem. */
export const FIRST_INO = 11;
export const LOST_FOUND_NAME = 'lost+found';

/** mke2fs -t ext2 with resize_inode, dir_index and ext_attr left out: nothing the writer does not produce. */
export const FEATURE_COMPAT = 0;
export const FEATURE_INCOMPAT_FILETYPE = 0x0002;
export const FEATURE_RO_COMPAT_SPARSE_SUPER = 0x0001;
export const FEATURE_RO_COMPAT_LARGE_FILE = 0x0002;
/** The feature bits of the generations after ext2, which the writer never sets. */
export const FEATURE_COMPAT_HAS_JOURNAL = 0x0004;
export const FEATURE_INCOMPAT_RECOVER = 0x0004;
export const FEATURE_INCOMPAT_JOURNAL_DEV = 0x0008;
export const FEATURE_INCOMPAT_META_BG = 0x0010;
export const FEATURE_INCOMPAT_64BIT = 0x0080;
export const FEATURE_RO_COMPAT_BTREE_DIR = 0x0004;
/** s_flags: the filesystem is for in-development code (ext4dev). */
export const FLAGS_TEST_FILESYS = 0x0004;
/** s_flags: directory hashes use signed chars, as on x86 (what mke2fs records there). */
export const FLAGS_SIGNED_HASH = 0x0001;
export const HASH_HALF_MD4 = 1;

/** One inode per 16 KiB of image, the mke2fs default ratio. */
export const BYTES_PER_INODE = 16384;

/** Direct pointers in i_block, then single, double and triple indirect. */
export const DIRECT_BLOCKS = 12;
/** Symlink targets shorter than this live in i_block itself (a "fast" symlink). */
export const FAST_SYMLINK_MAX = 59;
export const NAME_MAX = 255;
/** ext2 without dir_nlink caps link counts here (e2fsck and the kernel agree). */
export const LINK_MAX = 65000;

export const BLOCK_SIZES = [1024, 2048, 4096] as const;
export type BlockSize = (typeof BLOCK_SIZES)[number];

/** The file_type byte of a directory entry (the `filetype` feature). */
export const DIRENT_TYPE: Record<EntryType, number> = {
  file: 1,
  dir: 2,
  chardev: 3,
  blockdev: 4,
  fifo: 5,
  socket: 6,
  symlink: 7,
};
