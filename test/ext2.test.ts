// The ext2 writer on edge-case trees, read back with e2fsck -fn and debugfs.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ApplianceError } from '../src/errors.js';
import { mkext2 } from '../src/appliance/mkext2.js';
import { writeExt2, type Ext2Result } from '../src/formats/ext2/index.js';
import type { Entry } from '../src/formats/entry.js';
import { scanTree } from '../src/host/scan.js';
import { blockMap, compareWithEntries, debugfs, expectClean, readImageTree } from './helpers/ext2-oracle.js';

const isRoot = process.getuid?.() === 0;
let work: string;
let tree: string;
let socketServer: Server | undefined;

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const fileSha = (path: string) => sha(readFileSync(path));
const bytes = (path: string, data: Buffer | string, extra: Partial<Entry> = {}): Entry => {
  const buf = Buffer.from(data);
  return { path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, size: buf.length, source: { kind: 'bytes', data: buf }, ...extra };
};

/** Patterned, never-zero content: every block differs from every other. */
function content(size: number, seed: number): Buffer {
  const buf = Buffer.alloc(size);
  for (let i = 0; i < size; i++) buf[i] = 1 + ((i * 7 + (i >> 10) * 13 + seed) % 251);
  return buf;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ext2-test-'));
  tree = join(work, 'tree');
  mkdirSync(tree);
  const t = (p: string) => join(tree, p);
  // Sizes around block boundaries and the indirect thresholds of 1 KiB blocks.
  for (const size of [0, 1, 1023, 1024, 1025, 4095, 4096, 4097, 12 * 1024, 12 * 1024 + 1, 268 * 1024, 268 * 1024 + 1, 1024 * 1024 + 3]) {
    writeFileSync(t(`size-${size}`), content(size, size));
  }
  // Zero blocks inside, and a file that is nothing but zeros.
  writeFileSync(t('holes'), Buffer.concat([content(5000, 1), Buffer.alloc(3 * 4096 + 100), content(4096, 2), Buffer.alloc(8192)]));
  writeFileSync(t('zeros'), Buffer.alloc(100 * 1024));
  mkdirSync(t('a/b/c'), { recursive: true });
  writeFileSync(t('a/b/c/deep'), 'deep\n');
  // Names: 255 bytes, spaces, newlines, not UTF-8.
  writeFileSync(t('n'.repeat(255)), 'long name\n');
  writeFileSync(t('with space'), 'space\n');
  writeFileSync(t('new\nline'), 'newline\n');
  writeFileSync(Buffer.concat([Buffer.from(tree + '/bad-'), Buffer.from([0xff, 0xfe, 0x80])]), 'latin\n');
  // Symlinks: fast (< 60 bytes) and slow, one with a target that is not UTF-8.
  symlinkSync('x'.repeat(59), t('fast59'));
  symlinkSync('y'.repeat(60), t('slow60'));
  symlinkSync('z/'.repeat(500), t('slow1000'));
  symlinkSync(Buffer.from([0x2e, 0x2f, 0xc3, 0x28]), Buffer.from(t('bad-target')));
  symlinkSync('size-1', t('a/b/rel'));
  // Hard links across directories.
  writeFileSync(t('linked'), 'three names\n');
  linkSync(t('linked'), t('a/linked2'));
  linkSync(t('linked'), t('a/b/linked3'));
  execFileSync('mkfifo', [t('fifo')]);
  socketServer = createServer();
  await new Promise<void>((resolve) => socketServer!.listen(t('socket'), resolve));
  if (isRoot) {
    execFileSync('mknod', [t('null'), 'c', '1', '3']);
    execFileSync('mknod', [t('bigdev'), 'c', '300', '70000']);
    execFileSync('mknod', [t('sda1'), 'b', '8', '1']);
    chownSync(t('size-1'), 4_000_000_000, 3_000_000_000);
    chownSync(t('a'), 1000, 1000);
  }
  chmodSync(t('size-0'), 0o4755);
  chmodSync(t('a/b'), 0o1777);
  utimesSync(t('size-1'), 2 ** 32 + 5, 2 ** 32 + 5); // past 2038 and 2106
  lutimesSync(t('fast59'), 1_000_000_000, 1_000_000_000);
}, 60_000);

afterAll(async () => {
  socketServer?.close();
  await rm(work, { recursive: true, force: true });
});

async function build(name: string, opts: Parameters<typeof mkext2>[2] = {}): Promise<{ image: string; result: Ext2Result; entries: Entry[] }> {
  const image = join(work, name);
  const entries = await scanTree(tree);
  const result = await writeExt2(entries, image, opts);
  return { image, result, entries };
}

describe.each([1024, 2048, 4096] as const)('a host tree with %i-byte blocks', (blockSize) => {
  test('passes e2fsck and reads back identical through debugfs', async () => {
    const { image, result, entries } = await build(`host-${blockSize}.img`, { blockSize });
    const fsck = await expectClean(image);
    expect(fsck.blocksUsed).toBe(result.blocksTotal - result.blocksFree);
    expect(fsck.inodesUsed).toBe(result.inodesTotal - result.inodesFree);
    expect(await compareWithEntries(image, entries)).toEqual([]);

    // Facts about the tree checked against what the test made, not what the scan saw.
    const { paths, inodes } = await readImageTree(image);
    const at = (p: string) => inodes.get(paths.get(p)!)!;
    expect(at('n'.repeat(255)).type).toBe('file');
    expect(paths.has(Buffer.from([0x62, 0x61, 0x64, 0x2d, 0xff, 0xfe, 0x80]).toString('latin1'))).toBe(true);
    expect(paths.has('new\nline')).toBe(true);
    expect(at('fast59').fastTarget?.toString()).toBe('x'.repeat(59));
    expect(at('slow60').fastTarget).toBeUndefined();
    expect(at('slow60').blockCount).toBe(blockSize / 512);
    expect(at('linked').links).toBe(3);
    expect(paths.get('a/b/linked3')).toBe(paths.get('linked'));
    expect(at('fifo').type).toBe('fifo');
    expect(at('socket').type).toBe('socket');
    expect(at('size-0').mode).toBe(0o4755);
    expect(at('a/b').mode).toBe(0o1777);
    expect(at('size-1').mtime).toBe(2 ** 32 + 5);
    expect(at('zeros').blockCount).toBe(0);
    expect(at('lost+found').type).toBe('dir');
    if (isRoot) {
      expect([at('bigdev').type, at('bigdev').rdevMajor, at('bigdev').rdevMinor]).toEqual(['chardev', 300, 70000]);
      expect([at('null').rdevMajor, at('null').rdevMinor]).toEqual([1, 3]);
      expect(at('sda1').type).toBe('blockdev');
      expect([at('size-1').uid, at('size-1').gid]).toEqual([4_000_000_000, 3_000_000_000]);
    }
    // The holes file keeps only its non-zero blocks.
    const holes = await blockMap(image, paths.get('holes')!);
    const holesData = readFileSync(join(tree, 'holes'));
    const nonZero = [];
    for (let l = 0; l * blockSize < holesData.length; l++) {
      if (holesData.subarray(l * blockSize, (l + 1) * blockSize).some((b) => b !== 0)) nonZero.push(l);
    }
    expect([...holes.keys()]).toEqual(nonZero);
  });
});

test('the same tree gives the same bytes, from a copy too, and the UUID follows the tree', async () => {
  const one = await build('same-1.img');
  const two = await build('same-2.img');
  expect(fileSha(one.image)).toBe(fileSha(two.image));
  // A copy has other inode numbers, another directory order and host layout: same image.
  const copy = join(work, 'tree-copy');
  execFileSync('cp', ['-a', tree, copy]);
  const fromCopy = await mkext2(copy, join(work, 'same-copy.img'));
  expect(fileSha(fromCopy.path)).toBe(fileSha(one.image));
  expect(one.result.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const other = await writeExt2([...one.entries, bytes('extra', 'x')], join(work, 'same-3.img'));
  expect(other.uuid).not.toBe(one.result.uuid);
});

test('--uuid, --label, squashed owners and SOURCE_DATE_EPOCH', async () => {
  const epoch = 1_500_000_000;
  const { image, entries } = await build('opts.img', {
    uuid: '01234567-89ab-cdef-0123-456789abcdef',
    label: 'appliance-root',
    squashOwner: true,
    sourceDateEpoch: epoch,
  });
  await expectClean(image);
  expect(await compareWithEntries(image, entries, { squashOwner: true, clampTime: epoch })).toEqual([]);
  const [stats] = await debugfs(image, ['stats']);
  expect(stats!.output).toMatch(/Filesystem volume name:\s+appliance-root\n/);
  expect(stats!.output).toMatch(/Filesystem UUID:\s+01234567-89ab-cdef-0123-456789abcdef\n/);
  expect(stats!.output).toMatch(/Filesystem features:\s+filetype sparse_super large_file\n/);
  // Superblock times (s_wtime, s_lastcheck, s_mkfs_time) are the epoch.
  const sb = Buffer.alloc(1024);
  const fd = openSync(image, 'r');
  readSync(fd, sb, 0, 1024, 1024);
  closeSync(fd);
  expect([sb.readUInt32LE(48), sb.readUInt32LE(64), sb.readUInt32LE(264)]).toEqual([epoch, epoch, epoch]);
  const { paths, inodes } = await readImageTree(image);
  for (const ino of new Set(paths.values())) {
    const inode = inodes.get(ino)!;
    expect([inode.uid, inode.gid]).toEqual([0, 0]);
    expect(inode.mtime).toBeLessThanOrEqual(epoch);
  }
});

test('entries in any order: parents are synthesized, the root entry sets inode 2', async () => {
  const entries: Entry[] = [
    bytes('x/y/z/file', 'hello\n', { uid: 5, gid: 6 }),
    { path: '.', type: 'dir', mode: 0o750, uid: 7, gid: 8, mtime: 1_600_000_000 },
    { path: 'x/y', type: 'dir', mode: 0o700, uid: 9, gid: 9, mtime: 1_600_000_001 },
    bytes('/top', 'top\n'),
  ];
  const image = join(work, 'synth.img');
  await writeExt2(entries, image);
  await expectClean(image);
  expect(await compareWithEntries(image, entries)).toEqual([]);
  const { paths, inodes } = await readImageTree(image);
  const x = inodes.get(paths.get('x')!)!;
  // Synthesized: 0755, root's, and the latest time in the tree.
  expect([x.mode, x.uid, x.gid, x.mtime]).toEqual([0o755, 0, 0, 1_700_000_000]);
  expect(inodes.get(2)!.mode).toBe(0o750);
});

test('a directory of 10,000 entries with long names (through double indirect blocks at 1 KiB)', async () => {
  const entries: Entry[] = [];
  for (let i = 0; i < 10_000; i++) entries.push(bytes(`big/${'entry-'.repeat(15)}${i}`, i % 100 === 0 ? `file ${i}\n` : ''));
  const image = join(work, 'bigdir.img');
  await writeExt2(entries, image, { blockSize: 1024 });
  await expectClean(image);
  const { paths, inodes } = await readImageTree(image);
  expect([...paths.keys()].filter((p) => p.startsWith('big/')).length).toBe(10_000);
  // About 100 bytes per record: over 268 blocks, past the single indirect tree.
  expect(inodes.get(paths.get('big')!)!.size).toBeGreaterThan(268 * 1024);
  expect(await compareWithEntries(image, entries)).toEqual([]);
});

test('a sparse 5 GiB file at 1 KiB blocks: triple indirect, past 4 GiB, costing no space', async () => {
  const dir = join(work, 'sparse');
  mkdirSync(dir);
  const file = join(dir, 'big');
  const size = 5 * 2 ** 30;
  writeFileSync(file, '');
  truncateSync(file, size);
  // Data in the direct, single, double and triple trees, past 4 GiB, and at the very end.
  const pieces = [0, 13 * 1024, 300 * 1024, 70 * 2 ** 20, 4.5 * 2 ** 30, size - 10].map((offset, i) => ({ offset, data: randomBytes(i === 5 ? 10 : 3000) }));
  const fd = openSync(file, 'r+');
  for (const p of pieces) writeSync(fd, p.data, 0, p.data.length, p.offset);
  closeSync(fd);
  const image = join(work, 'sparse.img');
  const result = await mkext2(dir, image, { blockSize: 1024 });
  await expectClean(image);
  // Mostly free, and the image file itself is sparse.
  expect(result.blocksTotal - result.blocksFree).toBeLessThan(result.blocksTotal / 50);
  expect(statSync(image).blocks * 512).toBeLessThan(64 * 2 ** 20);
  const { paths, inodes } = await readImageTree(image);
  const inode = inodes.get(paths.get('big')!)!;
  expect(inode.size).toBe(size);
  // Exactly the blocks holding data are mapped, and they hold it.
  const map = await blockMap(image, paths.get('big')!);
  const expected = new Set<number>();
  for (const p of pieces) for (let b = Math.floor(p.offset / 1024); b * 1024 < p.offset + p.data.length; b++) expected.add(b);
  expect([...map.keys()].sort((a, b) => a - b)).toEqual([...expected].sort((a, b) => a - b));
  const img = openSync(image, 'r');
  for (const p of pieces) {
    const got = Buffer.alloc(p.data.length);
    for (let done = 0; done < got.length;) {
      const pos = p.offset + done;
      const inBlock = Math.min(1024 - (pos % 1024), got.length - done);
      readSync(img, got, done, inBlock, map.get(Math.floor(pos / 1024))! * 1024 + (pos % 1024));
      done += inBlock;
    }
    expect(sha(got)).toBe(sha(p.data));
  }
  closeSync(img);
  // Data and indirect blocks, nothing else. With 256 pointers per block: IND for 13 KiB;
  // DIND+IND for 300 KiB; TIND+DIND+IND for 70 MiB; DIND+IND for 4.5 GiB and again at the end.
  expect(inode.blockCount / 2).toBe(expected.size + 1 + 2 + 3 + 2 + 2);
}, 60_000);

test('data across many groups, every backup superblock consistent', async () => {
  // 1 KiB blocks: 8 MiB groups, so 30 MiB of files cross the metadata of groups 1-3.
  const entries = Array.from({ length: 10 }, (_, i) => bytes(`f${i}`, content(3_000_000 + i * 777, i)));
  entries.push(bytes('tail', 'small\n'));
  const image = join(work, 'groups.img');
  const result = await writeExt2(entries, image, { blockSize: 1024, size: 64 * 2 ** 20 });
  expect(result.blocksTotal).toBe(64 * 1024);
  await expectClean(image);
  expect(await compareWithEntries(image, entries)).toEqual([]);
  // sparse_super: backups in groups 1, 3, 5 and 7 of 8.
  for (const group of [1, 3, 5, 7]) await expectClean(image, { superblock: group * 8192 + 1, blockSize: 1024 });
  const [stats] = await debugfs(image, ['stats']);
  expect(stats!.output).toMatch(/Block count:\s+65536\n/);
  expect(stats!.output).toMatch(/Free blocks:\s+(\d+)\n/);
  expect(Number(/Free blocks:\s+(\d+)/.exec(stats!.output)![1])).toBe(result.blocksFree);
});

describe('errors', () => {
  const expectError = async (promise: Promise<unknown>, code: string, message: RegExp) => {
    const err = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApplianceError);
    expect((err as ApplianceError).code).toBe(code);
    expect((err as ApplianceError).message).toMatch(message);
  };

  test('a name over 255 bytes is named', async () => {
    await expectError(writeExt2([bytes(`d/${'n'.repeat(256)}`, 'x')], join(work, 'long.img')), 'ENAMETOOLONG', /\/d\/n{256}: the name is 256 bytes/);
  });

  test('an unreadable file is named, and no image is left behind', async () => {
    const out = join(work, 'unreadable.img');
    const entry: Entry = {
      path: 'gone',
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtime: 0,
      size: 10,
      source: { kind: 'host', path: join(work, 'no-such-file') },
    };
    await expectError(writeExt2([entry], out), 'ESOURCEREAD', /cannot read .*no-such-file \(\/gone in the image\): ENOENT/);
    expect((await readdir(work)).filter((n) => n.includes('unreadable'))).toEqual([]);
  });

  test('a file that changed size while being copied is named', async () => {
    const path = join(work, 'changing');
    writeFileSync(path, 'twenty bytes........');
    const entry = (size: number): Entry => ({ path: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size, source: { kind: 'host', path } });
    await expectError(
      writeExt2([entry(10)], join(work, 'grew.img')),
      'ESOURCECHANGED',
      /changing \(\/f in the image\) grew while being copied; it was listed with 10 bytes/,
    );
    await expectError(writeExt2([entry(30)], join(work, 'shrank.img')), 'ESOURCECHANGED', /shrank to 20 bytes/);
    // The same through direct I/O, used for files the host keeps sparse.
    const sparse = join(work, 'changing-sparse');
    writeFileSync(sparse, '');
    truncateSync(sparse, 3 * 2 ** 20 + 100);
    const sparseEntry = (size: number): Entry => ({ ...entry(size), source: { kind: 'host', path: sparse } });
    await expectError(writeExt2([sparseEntry(3 * 2 ** 20)], join(work, 'grew2.img')), 'ESOURCECHANGED', /grew while being copied/);
    await expectError(writeExt2([sparseEntry(3 * 2 ** 20 + 5000)], join(work, 'shrank2.img')), 'ESOURCECHANGED', /shrank to 3145828 bytes/);
    const ok = await writeExt2([sparseEntry(3 * 2 ** 20 + 100)], join(work, 'sparse-ok.img'));
    expect(ok.blocksTotal - ok.blocksFree).toBeLessThan(200);
  });

  test('an image too small states the size it needs, and that size works', async () => {
    const entries = [bytes('data', content(3 * 2 ** 20, 9))];
    const err = await writeExt2(entries, join(work, 'small.img'), { size: 2 ** 20 }).then(
      () => undefined,
      (e: ApplianceError) => e,
    );
    expect(err?.code).toBe('EIMAGETOOSMALL');
    const needed = Number(/needs at least (\d+) bytes/.exec(err!.message)?.[1]);
    expect(needed).toBeGreaterThan(3 * 2 ** 20);
    const result = await writeExt2(entries, join(work, 'fits.img'), { size: needed });
    expect(result.sizeBytes).toBe(needed);
    await expectClean(join(work, 'fits.img'));
    await expectError(writeExt2(entries, join(work, 'small2.img'), { size: needed - 4096 }), 'EIMAGETOOSMALL', /needs at least/);
  });

  test('bad trees and options', async () => {
    await expectError(writeExt2([bytes('a', 'x'), bytes('a/b', 'y')], join(work, 'e1.img')), 'EBADTREE', /\/a is a file but \/a\/b is listed inside it/);
    await expectError(writeExt2([bytes('a', 'x'), bytes('./a', 'y')], join(work, 'e2.img')), 'EBADTREE', /listed twice/);
    await expectError(writeExt2([bytes('../a', 'x')], join(work, 'e3.img')), 'EBADTREE', /contains "\.\."/);
    await expectError(
      writeExt2([{ path: 's', type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 0, target: 'x'.repeat(1024) }], join(work, 'e4.img'), { blockSize: 1024 }),
      'ESYMLINKTOOLONG',
      /\/s: the symlink target is 1024 bytes/,
    );
    await expectError(writeExt2([], join(work, 'e5.img'), { uuid: 'nope' }), 'EBADUUID', /bad UUID "nope"/);
    await expectError(writeExt2([], join(work, 'e6.img'), { label: 'seventeen-bytes!!' }), 'EBADOPTION', /at most 16/);
  });
});
