/**
 * Where every group's metadata lives for a given image size: the layout that the plan
 * fixes before any byte is written. Groups are laid out as mke2fs does without
 * resize_inode: [superblock + descriptors when the group holds a backup] block bitmap,
 * inode bitmap, inode table, data.
 */
import { BYTES_PER_INODE, GROUP_DESC_SIZE, INODE_SIZE, type BlockSize } from './constants.js';

export interface GroupLayout {
  index: number;
  /** First block of the group. */
  start: number;
  /** Blocks in the group (the last one may be short). */
  blocks: number;
  /** Whether the group holds a superblock and descriptor copy (sparse_super). */
  hasSuper: boolean;
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  /** First block free for data, and how many follow in the group. */
  dataStart: number;
  dataBlocks: number;
}

export interface Geometry {
  blockSize: BlockSize;
  firstDataBlock: number;
  blocksPerGroup: number;
  blocksCount: number;
  groupCount: number;
  gdtBlocks: number;
  inodesPerGroup: number;
  inodesCount: number;
  inodeTableBlocks: number;
  groups: GroupLayout[];
  /** Blocks available for file, directory and symlink data over the whole image. */
  dataBlocks: number;
}

/** Largest block count a 32-bit ext2 block number can address. */
export const MAX_BLOCKS = 2 ** 32 - 1;

/** sparse_super: backups in groups 0, 1 and powers of 3, 5 and 7. */
export function hasSuperBackup(group: number): boolean {
  if (group <= 1) return true;
  for (const base of [3, 5, 7]) {
    let n = base;
    while (n < group) n *= base;
    if (n === group) return true;
  }
  return false;
}

/** A geometry, or the smallest larger block count worth trying when this one cannot hold the inodes or its last group. */
export type GeometryAttempt = { ok: true; geometry: Geometry } | { ok: false; tryBlocks: number; dropTail?: number };

/**
 * Lays out `blocksCount` blocks holding at least `minInodes` inodes. Inodes follow the
 * mke2fs ratio (one per 16 KiB) or `minInodes`, whichever is larger, spread evenly.
 */
export function layoutGeometry(blocksCount: number, blockSize: BlockSize, minInodes: number): GeometryAttempt {
  const firstDataBlock = blockSize === 1024 ? 1 : 0;
  const blocksPerGroup = 8 * blockSize;
  const groupCount = Math.max(1, Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup));
  const gdtBlocks = Math.ceil((groupCount * GROUP_DESC_SIZE) / blockSize);
  const inodesPerBlock = blockSize / INODE_SIZE;
  // The inode bitmap must end on a byte and the table on a block.
  const align = Math.max(8, inodesPerBlock);
  const maxPerGroup = 8 * blockSize;
  const needed = roundUp(Math.ceil(minInodes / groupCount), align);
  if (needed > maxPerGroup) {
    // Too few groups to hold the inodes: grow to as many groups as they need.
    return { ok: false, tryBlocks: firstDataBlock + Math.ceil(minInodes / maxPerGroup) * blocksPerGroup };
  }
  const byRatio = roundUp(Math.ceil(Math.ceil((blocksCount * blockSize) / BYTES_PER_INODE) / groupCount), align);
  const inodesPerGroup = Math.min(maxPerGroup, Math.max(needed, byRatio));
  const inodeTableBlocks = (inodesPerGroup * INODE_SIZE) / blockSize;

  const groups: GroupLayout[] = [];
  let dataBlocks = 0;
  for (let g = 0; g < groupCount; g++) {
    const start = firstDataBlock + g * blocksPerGroup;
    const blocks = Math.min(blocksPerGroup, blocksCount - start);
    const hasSuper = hasSuperBackup(g);
    const blockBitmap = start + (hasSuper ? 1 + gdtBlocks : 0);
    const inodeBitmap = blockBitmap + 1;
    const inodeTable = inodeBitmap + 1;
    const dataStart = inodeTable + inodeTableBlocks;
    const overhead = dataStart - start;
    if (blocks <= overhead) {
      // A short last group that cannot hold its own metadata: grow into it, or drop it.
      return { ok: false, tryBlocks: start + overhead + 1, dropTail: start };
    }
    groups.push({ index: g, start, blocks, hasSuper, blockBitmap, inodeBitmap, inodeTable, dataStart, dataBlocks: blocks - overhead });
    dataBlocks += blocks - overhead;
  }
  return {
    ok: true,
    geometry: {
      blockSize,
      firstDataBlock,
      blocksPerGroup,
      blocksCount,
      groupCount,
      gdtBlocks,
      inodesPerGroup,
      inodesCount: inodesPerGroup * groupCount,
      inodeTableBlocks,
      groups,
      dataBlocks,
    },
  };
}

/** The smallest geometry with `dataNeeded` data blocks and `minInodes` inodes. */
export function smallestGeometry(dataNeeded: number, blockSize: BlockSize, minInodes: number): Geometry {
  const firstDataBlock = blockSize === 1024 ? 1 : 0;
  // Start from the data plus one group's worth of bitmaps and table for the minimum inodes.
  let blocks = firstDataBlock + dataNeeded + 4 + Math.ceil((minInodes * INODE_SIZE) / blockSize);
  for (;;) {
    const attempt = layoutGeometry(blocks, blockSize, minInodes);
    if (!attempt.ok) {
      blocks = Math.max(blocks + 1, attempt.tryBlocks);
      continue;
    }
    const deficit = dataNeeded - attempt.geometry.dataBlocks;
    if (deficit <= 0) return shrink(attempt.geometry, dataNeeded, minInodes);
    blocks += deficit;
  }
}

/** Growing by the deficit can overshoot (more blocks can mean fewer inode table blocks per group); step back while it still fits. */
function shrink(geometry: Geometry, dataNeeded: number, minInodes: number): Geometry {
  let best = geometry;
  for (;;) {
    const attempt = layoutGeometry(best.blocksCount - 1, best.blockSize, minInodes);
    if (!attempt.ok || attempt.geometry.dataBlocks < dataNeeded) return best;
    best = attempt.geometry;
  }
}

/**
 * The geometry for a fixed block count: a last group too short for its metadata is
 * left out, as mke2fs does. Undefined when the inodes cannot fit at all.
 */
export function fixedGeometry(blocksCount: number, blockSize: BlockSize, minInodes: number): Geometry | undefined {
  let blocks = blocksCount;
  for (;;) {
    const attempt = layoutGeometry(blocks, blockSize, minInodes);
    if (attempt.ok) return attempt.geometry;
    if (attempt.dropTail === undefined || attempt.dropTail <= (blockSize === 1024 ? 1 : 0)) return undefined;
    blocks = attempt.dropTail;
  }
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}
