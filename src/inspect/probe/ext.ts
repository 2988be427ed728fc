/**
 * The ext2/3/4 superblock, 1024 bytes at offset 1024. Which of ext2, ext3, ext4 (or jbd,
 * an external journal, or ext4dev) it is follows libblkid's superblocks/ext.c: by the
 * feature flags each generation understands, not by the mkfs that made it.
 */
import { byteLabel, mul, u16le, u32le, uuid } from './bytes.js';
import type { DeviceBytes, Filesystem } from './types.js';

const OFFSET = 1024;
const MAGIC = 0xef53;

const COMPAT_HAS_JOURNAL = 0x0004;
const INCOMPAT_FILETYPE = 0x0002;
const INCOMPAT_RECOVER = 0x0004;
const INCOMPAT_JOURNAL_DEV = 0x0008;
const INCOMPAT_META_BG = 0x0010;
const INCOMPAT_64BIT = 0x0080;
const RO_COMPAT_SPARSE_SUPER = 0x0001;
const RO_COMPAT_LARGE_FILE = 0x0002;
const RO_COMPAT_BTREE_DIR = 0x0004;
/** s_flags: the filesystem is for in-development code (ext4dev). */
const FLAGS_TEST_FILESYS = 0x0004;

/** What ext2 and ext3 understand; a feature beyond them makes an ext4. */
const RO_COMPAT_EXT2_EXT3 = RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | RO_COMPAT_BTREE_DIR;
const INCOMPAT_EXT2 = INCOMPAT_FILETYPE | INCOMPAT_META_BG;
const INCOMPAT_EXT3 = INCOMPAT_FILETYPE | INCOMPAT_RECOVER | INCOMPAT_META_BG;

/** Field offsets in the superblock. */
const F = {
  blocksLo: 4,
  logBlockSize: 24,
  magic: 56,
  compat: 92,
  incompat: 96,
  roCompat: 100,
  uuid: 104,
  volumeName: 120,
  blocksHi: 0x150,
  flags: 0x160,
} as const;

export function probeExt(dev: DeviceBytes): Filesystem | undefined {
  const sb = dev.at(OFFSET, 1024);
  if (!sb || u16le(sb, F.magic) !== MAGIC) return undefined;
  const type = extType(sb);
  if (!type) return undefined;

  const incompat = u32le(sb, F.incompat);
  const log = u32le(sb, F.logBlockSize);
  const blockSize = log <= 16 ? 1024 * 2 ** log : undefined;
  const blocks = u32le(sb, F.blocksLo) + (incompat & INCOMPAT_64BIT ? u32le(sb, F.blocksHi) * 0x1_0000_0000 : 0);
  const size = blockSize !== undefined ? mul(blocks, blockSize) : undefined;
  const label = byteLabel(sb.subarray(F.volumeName, F.volumeName + 16));
  const id = uuid(sb.subarray(F.uuid, F.uuid + 16));
  return {
    kind: 'filesystem',
    type,
    ...(label !== undefined ? { label } : {}),
    ...(id ? { uuid: id } : {}),
    ...(size !== undefined ? { size } : {}),
    ...(blockSize !== undefined ? { blockSize } : {}),
    // needs_recovery: the journal holds transactions not yet written home
    ...(type === 'jbd' ? {} : { dirty: (incompat & INCOMPAT_RECOVER) !== 0 }),
  };
}

/** libblkid's order: ext4dev, ext4, ext3, ext2, jbd; the first whose rules hold. */
function extType(sb: Buffer): string | undefined {
  const compat = u32le(sb, F.compat);
  const incompat = u32le(sb, F.incompat);
  const roCompat = u32le(sb, F.roCompat);
  const test = (u32le(sb, F.flags) & FLAGS_TEST_FILESYS) !== 0;
  const journalDev = (incompat & INCOMPAT_JOURNAL_DEV) !== 0;
  const beyondExt3 = (roCompat & ~RO_COMPAT_EXT2_EXT3) !== 0 || (incompat & ~INCOMPAT_EXT3) !== 0;
  const beyondExt2 = (roCompat & ~RO_COMPAT_EXT2_EXT3) !== 0 || (incompat & ~INCOMPAT_EXT2) !== 0;
  const journal = (compat & COMPAT_HAS_JOURNAL) !== 0;
  if (!journalDev && test) return 'ext4dev';
  if (!journalDev && beyondExt3) return 'ext4';
  if (journal && !beyondExt3) return 'ext3';
  if (!journal && !beyondExt2) return 'ext2';
  if (journalDev) return 'jbd';
  return undefined;
}
