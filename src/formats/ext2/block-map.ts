/**
 * An inode's block map (12 direct pointers, then single, double and triple indirect
 * trees), built while its data blocks arrive in increasing logical order. Indirect blocks
 * are allocated just before the first data block they map (as the kernel does) and handed
 * out for writing as soon as the mapping moves past them, so only one chain of indirect
 * blocks is held at a time, whatever the file's size.
 */
import { DIRECT_BLOCKS } from './constants.js';

interface OpenBlock {
  /** Which block of its level this is: the logical offset within the tree divided by what it spans. */
  id: number;
  phys: number;
  buf: Buffer;
}

export class BlockMapper {
  /** i_block: direct pointers, then the roots of the three trees. */
  readonly iblock = new Uint32Array(15);
  /** Blocks allocated so far, data and indirect. */
  blocks = 0;
  private readonly perBlock: number;
  private tree = 0;
  private readonly chain: OpenBlock[] = [];
  private lastLogical = -1;

  constructor(
    private readonly blockSize: number,
    private readonly allocate: () => number,
    private readonly emit: (phys: number, block: Buffer) => void,
  ) {
    this.perBlock = blockSize / 4;
  }

  /** Allocates the physical block for logical block `logical` (strictly increasing) and returns it. */
  map(logical: number): number {
    if (logical <= this.lastLogical) throw new Error(`BlockMapper: logical block ${logical} after ${this.lastLogical}`);
    this.lastLogical = logical;
    const p = this.perBlock;
    if (logical < DIRECT_BLOCKS) {
      const phys = this.take();
      this.iblock[logical] = phys;
      return phys;
    }
    let offset = logical - DIRECT_BLOCKS;
    let tree = 1;
    let span = p;
    while (offset >= span) {
      offset -= span;
      tree++;
      span *= p;
      if (tree > 3) throw new RangeError(`logical block ${logical} is beyond the triple indirect tree`);
    }
    if (tree !== this.tree) {
      this.closeFrom(0);
      this.tree = tree;
    }
    // Level 0 is the tree's root; the last level holds data pointers.
    let levelSpan = span;
    for (let level = 0; level < tree; level++) {
      const id = Math.floor(offset / levelSpan);
      const open = this.chain[level];
      if (!open || open.id !== id) {
        this.closeFrom(level);
        const phys = this.take();
        if (level === 0) this.iblock[DIRECT_BLOCKS + tree - 1] = phys;
        else {
          const parent = this.chain[level - 1]!;
          parent.buf.writeUInt32LE(phys, (id % p) * 4);
        }
        this.chain.push({ id, phys, buf: Buffer.alloc(this.blockSize) });
      }
      levelSpan /= p;
    }
    const phys = this.take();
    this.chain[tree - 1]!.buf.writeUInt32LE(phys, (offset % p) * 4);
    return phys;
  }

  /** Hands out the indirect blocks still open. */
  finish(): void {
    this.closeFrom(0);
  }

  private take(): number {
    this.blocks++;
    return this.allocate();
  }

  private closeFrom(level: number): void {
    while (this.chain.length > level) {
      const block = this.chain.pop()!;
      this.emit(block.phys, block.buf);
    }
  }
}

/** Indirect blocks a file of `dataBlocks` blocks without holes needs; undefined past the triple indirect tree. */
export function indirectBlocks(dataBlocks: number, blockSize: number): number | undefined {
  const p = blockSize / 4;
  let rest = dataBlocks - DIRECT_BLOCKS;
  if (rest <= 0) return 0;
  let count = 1;
  rest -= p;
  if (rest <= 0) return count;
  const inDouble = Math.min(rest, p * p);
  count += 1 + Math.ceil(inDouble / p);
  rest -= inDouble;
  if (rest <= 0) return count;
  if (rest > p * p * p) return undefined;
  return count + 1 + Math.ceil(rest / (p * p)) + Math.ceil(rest / p);
}
