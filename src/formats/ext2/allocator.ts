/**
 * Hands out data blocks in order, group after group, skipping each group's metadata.
 * Every block the image uses is taken through one allocator in inode order, so where a
 * block lands depends only on the tree's content, and the used data blocks of each group
 * are a prefix of its data area (which makes the bitmaps and free counts exact and simple).
 */
import { ApplianceError } from '../../errors.js';
import type { Geometry } from './geometry.js';

export class BlockAllocator {
  private group = 0;
  private next: number;
  private end: number;

  constructor(private readonly geometry: Geometry) {
    const first = geometry.groups[0]!;
    this.next = first.dataStart;
    this.end = first.dataStart + first.dataBlocks;
  }

  allocate(): number {
    while (this.next >= this.end) {
      this.group++;
      const group = this.geometry.groups[this.group];
      if (!group) {
        // The plan reserves every block the tree can need, so this is a bug, not a full image.
        throw new ApplianceError('EIMAGEFULL', `ext2 image ran out of data blocks (${this.geometry.dataBlocks}) while writing`);
      }
      this.next = group.dataStart;
      this.end = group.dataStart + group.dataBlocks;
    }
    return this.next++;
  }

  /** Data blocks taken from group `g`. */
  usedIn(g: number): number {
    if (g < this.group) return this.geometry.groups[g]!.dataBlocks;
    if (g > this.group) return 0;
    return this.next - this.geometry.groups[g]!.dataStart;
  }
}
