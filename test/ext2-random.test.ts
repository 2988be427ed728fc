// Seeded random trees through the ext2 writer, each read back with e2fsck and debugfs.
// More seeds run in scripts/stress-ext2.sh (EXT2_SEEDS=first-last).
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { writeExt2 } from '../src/formats/ext2/index.js';
import { compareWithEntries, expectClean } from './helpers/ext2-oracle.js';
import { randomTree, rng } from './helpers/random-tree.js';

const [FIRST, LAST] = (process.env.EXT2_SEEDS ?? '1-120').split('-').map(Number) as [number, number];
const PARALLEL = 3;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ext2-random-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const digest = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

async function checkSeed(seed: number): Promise<string[]> {
  const { entries, blockSize } = randomTree(seed);
  const image = join(dir, `${seed}.img`);
  const squashOwner = seed % 7 === 0;
  const clampTime = seed % 5 === 0 ? 1_600_000_000 : undefined;
  const result = await writeExt2(entries, image, { blockSize, squashOwner, sourceDateEpoch: clampTime });
  const fsck = await expectClean(image);
  const problems = await compareWithEntries(image, entries, { squashOwner, clampTime });
  // e2fsck's usage count and ours agree: the free counts are exact.
  if (fsck.blocksUsed !== result.blocksTotal - result.blocksFree)
    problems.push(`blocks used: e2fsck ${fsck.blocksUsed}, writer ${result.blocksTotal - result.blocksFree}`);
  if (fsck.inodesUsed !== result.inodesTotal - result.inodesFree)
    problems.push(`inodes used: e2fsck ${fsck.inodesUsed}, writer ${result.inodesTotal - result.inodesFree}`);
  if (seed % 4 === 0) {
    // The same tree in another order gives the same bytes.
    const shuffled = [...entries].reverse();
    const rand = rng(seed * 31);
    shuffled.sort(() => rand() - 0.5);
    const again = join(dir, `${seed}-again.img`);
    await writeExt2(shuffled, again, { blockSize, squashOwner, sourceDateEpoch: clampTime });
    if ((await digest(again)) !== (await digest(image))) problems.push('a second write of the same tree differs');
    await rm(again);
  }
  await rm(image);
  return problems.map((p) => `seed ${seed} (block size ${blockSize}): ${p}`);
}

describe('random trees', () => {
  test(`seeds ${FIRST}-${LAST} round-trip through e2fsck and debugfs`, async () => {
    const seeds = Array.from({ length: LAST - FIRST + 1 }, (_, i) => FIRST + i);
    const problems: string[] = [];
    const worker = async () => {
      for (let seed = seeds.shift(); seed !== undefined; seed = seeds.shift()) problems.push(...(await checkSeed(seed)));
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    expect(problems).toEqual([]);
  }, 600_000);
});
