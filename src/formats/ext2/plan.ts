/**
 * The plan step: from the entries' metadata alone, the inode graph, every directory's
 * size, an upper bound on the blocks each inode can take (all its blocks, as if it had
 * no holes), and from those the image's geometry. Block positions follow in the write
 * step, taken in inode order, so they depend only on the tree's content.
 */
import { ApplianceError } from '../../errors.js';
import type { Entry } from '../entry.js';
import { indirectBlocks } from './block-map.js';
import { BLOCK_SIZES, BYTES_PER_INODE, DIRECT_BLOCKS, type BlockSize } from './constants.js';
import { directoryBlocks } from './directory.js';
import { fixedGeometry, MAX_BLOCKS, smallestGeometry, type Geometry } from './geometry.js';
import { buildNodes, isFastSymlink, showPath, type Ext2Node, type NodeGraph } from './nodes.js';

export interface PlanOptions {
  blockSize: BlockSize;
  /** Image size in bytes; the smallest that fits plus `extraBytes` when absent. */
  size?: number;
  extraBytes: number;
  squashOwner: boolean;
  clampTime?: number;
}

export interface Plan {
  graph: NodeGraph;
  geometry: Geometry;
  /** Bytes of the image file. */
  imageBytes: number;
}

/** lost+found is pre-sized as mke2fs does: 16 KiB, within the direct blocks. */
function lostFoundBytes(blockSize: number): number {
  return Math.min(16384, DIRECT_BLOCKS * blockSize);
}

export function planImage(entries: readonly Entry[], opts: PlanOptions): Plan {
  const B = opts.blockSize;
  if (!BLOCK_SIZES.includes(B)) {
    throw new ApplianceError('EBADOPTION', `block size ${B} is not supported: use 1024, 2048 or 4096`);
  }
  const graph = buildNodes(entries, { squashOwner: opts.squashOwner, clampTime: opts.clampTime });
  let blocksNeeded = 0;
  for (const node of graph.byIno) {
    if (node) blocksNeeded += blocksBound(node, graph, B);
  }

  // Free space comes with inodes to use it (one per 16 KiB, as the mke2fs ratio).
  const smallest = (extra: number) => smallestGeometry(blocksNeeded + Math.ceil(extra / B), B, graph.lastIno + Math.ceil(extra / BYTES_PER_INODE));
  let geometry: Geometry;
  let imageBytes: number;
  if (opts.size === undefined) {
    geometry = smallest(opts.extraBytes);
    imageBytes = geometry.blocksCount * B;
  } else {
    const fixed = fixedGeometry(Math.min(Math.floor(opts.size / B), MAX_BLOCKS + 1), B, graph.lastIno);
    if (!fixed || fixed.dataBlocks < blocksNeeded) {
      const needed = smallest(0).blocksCount * B;
      throw new ApplianceError(
        'EIMAGETOOSMALL',
        `an ext2 image of ${opts.size} bytes is too small for this tree (${graph.lastIno} inodes, ` +
          `up to ${blocksNeeded} blocks of ${B} bytes): it needs at least ${needed} bytes; give a larger size or none`,
      );
    }
    geometry = fixed;
    imageBytes = opts.size;
  }
  if (geometry.blocksCount > MAX_BLOCKS) {
    throw new ApplianceError(
      'EIMAGETOOLARGE',
      `the image would need ${geometry.blocksCount} blocks of ${B} bytes, over ext2's 32-bit block numbers: use a larger block size`,
    );
  }
  return { graph, geometry, imageBytes };
}

/** The most blocks (data and indirect) a node can take; directories get their size here. */
function blocksBound(node: Ext2Node, graph: NodeGraph, B: number): number {
  switch (node.type) {
    case 'dir': {
      const blocks = directoryBlocks(node, B, node === graph.lostFound ? lostFoundBytes(B) : 0);
      node.size = blocks * B;
      return blocks + indirectBlocks(blocks, B)!;
    }
    case 'symlink':
      if (node.size >= B) {
        throw new ApplianceError(
          'ESYMLINKTOOLONG',
          `${showPath(node.path)}: the symlink target is ${node.size} bytes, over what a ${B}-byte block holds: use a larger block size`,
        );
      }
      return isFastSymlink(node) ? 0 : 1;
    case 'file': {
      const data = Math.ceil(node.size / B);
      const indirect = indirectBlocks(data, B);
      // i_blocks counts 512-byte sectors in 32 bits.
      if (indirect === undefined || (data + indirect) * (B / 512) > 0xffffffff) {
        throw new ApplianceError(
          'EFILETOOLARGE',
          `${showPath(node.path)}: ${node.size} bytes is more than an ext2 file with ${B}-byte blocks can hold: use a larger block size`,
        );
      }
      return data + indirect;
    }
    default:
      return 0;
  }
}
