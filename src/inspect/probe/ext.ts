/**
 * The ext2/3/4 superblock, 1024 bytes at offset 1024. Which of ext2, ext3, ext4 (or jbd,
 * an external journal, or ext4dev) it is follows libblkid's superblocks/ext.c: by the
 * feature flags each generation understands, not by the mkfs that made it.
 */
import {
  EXT2_MAGIC,
  FEATURE_COMPAT_HAS_JOURNAL,
  FEATURE_INCOMPAT_64BIT,
  FEATURE_INCOMPAT_FILETYPE,
  FEATURE_INCOMPAT_JOURNAL_DEV,
  FEATURE_INCOMPAT_META_BG,
  FEATURE_INCOMPAT_RECOVER,
  FEATURE_RO_COMPAT_BTREE_DIR,
  FEATURE_RO_COMPAT_LARGE_FILE,
  FEATURE_RO_COMPAT_SPARSE_SUPER,
  FLAGS_TEST_FILESYS,
  SUPERBLOCK_OFFSET,
  SUPERBLOCK_SIZE,
} from '../../formats/ext2/constants.js';
import { SB } from '../../formats/ext2/superblock.js';
import { byteLabel, mul, u16le, u32le, uuid } from './bytes.js';
import type { DeviceBytes, Filesystem } from './types.js';

/** What ext2 and ext3 understand; a feature beyond them makes an ext4. */
const RO_COMPAT_EXT2_EXT3 = FEATURE_RO_COMPAT_SPARSE_SUPER | FEATURE_RO_COMPAT_LARGE_FILE | FEATURE_RO_COMPAT_BTREE_DIR;
const INCOMPAT_EXT2 = FEATURE_INCOMPAT_FILETYPE | FEATURE_INCOMPAT_META_BG;
const INCOMPAT_EXT3 = FEATURE_INCOMPAT_FILETYPE | FEATURE_INCOMPAT_RECOVER | FEATURE_INCOMPAT_META_BG;

export function probeExt(dev: DeviceBytes): Filesystem | undefined {
  const sb = dev.at(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE);
  if (!sb || u16le(sb, SB.magic) !== EXT2_MAGIC) return undefined;
  const type = extType(sb);
  if (!type) return undefined;

  const incompat = u32le(sb, SB.featureIncompat);
  const log = u32le(sb, SB.logBlockSize);
  const blockSize = log <= 16 ? 1024 * 2 ** log : undefined;
  const blocks = u32le(sb, SB.blocksCountLo) + (incompat & FEATURE_INCOMPAT_64BIT ? u32le(sb, SB.blocksCountHi) * 0x1_0000_0000 : 0);
  const size = blockSize !== undefined ? mul(blocks, blockSize) : undefined;
  const label = byteLabel(sb.subarray(SB.volumeName, SB.volumeName + 16));
  const id = uuid(sb.subarray(SB.uuid, SB.uuid + 16));
  return {
    kind: 'filesystem',
    type,
    ...(label !== undefined ? { label } : {}),
    ...(id ? { uuid: id } : {}),
    ...(size !== undefined ? { size } : {}),
    ...(blockSize !== undefined ? { blockSize } : {}),
    writtenAt: u32le(sb, SB.wtime),
    // needs_recovery: the journal holds transactions not yet written home
    ...(type === 'jbd' ? {} : { dirty: (incompat & FEATURE_INCOMPAT_RECOVER) !== 0 }),
  };
}

/** libblkid's order: ext4dev, ext4, ext3, ext2, jbd; the first whose rules hold. */
function extType(sb: Buffer): string | undefined {
  const compat = u32le(sb, SB.featureCompat);
  const incompat = u32le(sb, SB.featureIncompat);
  const roCompat = u32le(sb, SB.featureRoCompat);
  const test = (u32le(sb, SB.flags) & FLAGS_TEST_FILESYS) !== 0;
  const journalDev = (incompat & FEATURE_INCOMPAT_JOURNAL_DEV) !== 0;
  const beyondExt3 = (roCompat & ~RO_COMPAT_EXT2_EXT3) !== 0 || (incompat & ~INCOMPAT_EXT3) !== 0;
  const beyondExt2 = (roCompat & ~RO_COMPAT_EXT2_EXT3) !== 0 || (incompat & ~INCOMPAT_EXT2) !== 0;
  const journal = (compat & FEATURE_COMPAT_HAS_JOURNAL) !== 0;
  if (!journalDev && test) return 'ext4dev';
  if (!journalDev && beyondExt3) return 'ext4';
  if (journal && !beyondExt3) return 'ext3';
  if (!journal && !beyondExt2) return 'ext2';
  if (journalDev) return 'jbd';
  return undefined;
}
