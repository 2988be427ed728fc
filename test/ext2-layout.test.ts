// The block map and the geometry, checked against an independent reading of the structures.
import { describe, expect, test } from 'vitest';
import { BlockMapper, indirectBlocks } from '../src/formats/ext2/block-map.js';
import { hasSuperBackup, layoutGeometry, smallestGeometry } from '../src/formats/ext2/geometry.js';

const BLOCK_SIZES = [1024, 2048, 4096] as const;

/** Maps the given logical blocks; returns what the mapper said and the indirect blocks it wrote. */
function mapAll(blockSize: number, logicals: number[]) {
  let next = 1000;
  const written = new Map<number, Buffer>();
  const mapper = new BlockMapper(
    blockSize,
    () => next++,
    (phys, block) => {
      if (written.has(phys)) throw new Error(`indirect block ${phys} written twice`);
      written.set(phys, Buffer.from(block));
    },
  );
  const placed = new Map<number, number>();
  for (const l of logicals) placed.set(l, mapper.map(l));
  mapper.finish();
  return { mapper, placed, written, allocated: next - 1000 };
}

/** Resolves a logical block the way a reader does: i_block, then down the indirect tree. */
function resolve(iblock: Uint32Array, written: Map<number, Buffer>, blockSize: number, logical: number): number {
  const p = blockSize / 4;
  if (logical < 12) return iblock[logical]!;
  let rest = logical - 12;
  let depth = 1;
  let span = p;
  while (rest >= span) {
    rest -= span;
    depth++;
    span *= p;
  }
  let block = iblock[11 + depth]!;
  for (let level = depth - 1; level >= 0; level--) {
    if (block === 0) return 0;
    const index = Math.floor(rest / p ** level) % p;
    block = written.get(block)!.readUInt32LE(index * 4);
  }
  return block;
}

describe.each(BLOCK_SIZES)('block map with %i-byte blocks', (blockSize) => {
  const p = blockSize / 4;
  const edges = [0, 1, 11, 12, 13, 12 + p - 1, 12 + p, 12 + p + 1, 12 + p + p * p - 1, 12 + p + p * p, 12 + p + p * p + 1];

  test('a file without holes takes data plus indirectBlocks() blocks', () => {
    for (const n of edges.filter((e) => e <= 12 + p + p * p + 1 && (blockSize === 1024 || e < 12 + p + p * p))) {
      const { mapper, allocated } = mapAll(
        blockSize,
        Array.from({ length: n }, (_, i) => i),
      );
      expect(mapper.blocks, `n=${n}`).toBe(allocated);
      expect(allocated - n, `n=${n}`).toBe(indirectBlocks(n, blockSize));
    }
  });

  test('holes and every tree level resolve back to the blocks handed out', () => {
    const logicals = [...new Set([...edges, 12 + p + 5 * p + 3, 12 + p + p * p + p * p + 7, 12 + p + p * p + p * p * p - 1])].sort((a, b) => a - b);
    const { mapper, placed, written } = mapAll(blockSize, logicals);
    for (const [logical, phys] of placed) expect(resolve(mapper.iblock, written, blockSize, logical), `logical ${logical}`).toBe(phys);
    // A hole resolves to nothing.
    expect(resolve(mapper.iblock, written, blockSize, 5)).toBe(placed.get(5) ?? 0);
    expect(resolve(mapper.iblock, written, blockSize, 12 + p + 2 * p)).toBe(0);
    // Root, one chain per tree reached, and the chains' shared parents: exactly as many as written.
    expect(mapper.blocks).toBe(placed.size + written.size);
  });

  test('past the triple indirect tree is refused', () => {
    const { mapper } = mapAll(blockSize, []);
    expect(() => mapper.map(12 + p + p * p + p * p * p)).toThrow(RangeError);
    expect(indirectBlocks(12 + p + p * p + p * p * p + 1, blockSize)).toBeUndefined();
  });
});

test('sparse_super backup groups: 0, 1 and powers of 3, 5 and 7', () => {
  const backups = Array.from({ length: 400 }, (_, g) => g).filter(hasSuperBackup);
  expect(backups).toEqual([0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125, 243, 343]);
});

describe.each(BLOCK_SIZES)('geometry with %i-byte blocks', (blockSize) => {
  test('groups tile the image and hold their metadata', () => {
    for (const blocks of [300, 8 * blockSize + 500, 20 * 8 * blockSize + 12345]) {
      const attempt = layoutGeometry(blocks, blockSize, 11);
      if (!attempt.ok) continue;
      const g = attempt.geometry;
      let next = g.firstDataBlock;
      for (const group of g.groups) {
        expect(group.start).toBe(next);
        expect(group.inodeTable + g.inodeTableBlocks).toBe(group.dataStart);
        expect(group.dataStart + group.dataBlocks).toBe(group.start + group.blocks);
        next += group.blocks;
      }
      expect(next).toBe(blocks);
      expect(g.inodesPerGroup % 8).toBe(0);
      expect((g.inodesPerGroup * 256) % blockSize).toBe(0);
    }
  });

  test('the smallest geometry is the smallest', () => {
    for (const [data, inodes] of [
      [1, 11],
      [5000, 200],
      [40_000, 9000],
      [300_000, 100_000],
    ] as const) {
      const g = smallestGeometry(data, blockSize, inodes);
      expect(g.dataBlocks).toBeGreaterThanOrEqual(data);
      expect(g.inodesCount).toBeGreaterThanOrEqual(inodes);
      const smaller = layoutGeometry(g.blocksCount - 1, blockSize, inodes);
      expect(!smaller.ok || smaller.geometry.dataBlocks < data).toBe(true);
    }
  });
});
