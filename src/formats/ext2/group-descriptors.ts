/** The group descriptor table (32-byte ext2 descriptors, no checksums). */
import { GROUP_DESC_SIZE } from './constants.js';
import type { Geometry } from './geometry.js';

export interface GroupCounts {
  freeBlocks: number;
  freeInodes: number;
  directories: number;
}

/** The table padded to whole blocks, as each copy is written. */
export function encodeGroupDescriptors(geometry: Geometry, counts: readonly GroupCounts[]): Buffer {
  const buf = Buffer.alloc(geometry.gdtBlocks * geometry.blockSize);
  geometry.groups.forEach((group, g) => {
    const at = g * GROUP_DESC_SIZE;
    const c = counts[g]!;
    buf.writeUInt32LE(group.blockBitmap, at);
    buf.writeUInt32LE(group.inodeBitmap, at + 4);
    buf.writeUInt32LE(group.inodeTable, at + 8);
    buf.writeUInt16LE(c.freeBlocks, at + 12);
    buf.writeUInt16LE(c.freeInodes, at + 14);
    buf.writeUInt16LE(c.directories, at + 16);
  });
  return buf;
}
