/**
 * The write step: takes the plan's inodes in number order, allocates their blocks in
 * that order as their content arrives (all-zero file blocks become holes), streams the
 * content with positional writes, then writes inode tables, bitmaps, descriptors and
 * superblocks. I/O is synchronous (page-cache reads and writes cost less than a
 * thread-pool round trip each); the loop yields to the event loop every few milliseconds.
 */
import { createHash, type Hash } from 'node:crypto';
import { BlockAllocator } from './allocator.js';
import { BlockMapper } from './block-map.js';
import { INODE_SIZE, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE } from './constants.js';
import { chunkBuffer, CHUNK_BYTES, readContent, type Chunk } from './content.js';
import { renderDirectory } from './directory.js';
import { encodeGroupDescriptors, type GroupCounts } from './group-descriptors.js';
import { formatUuid, hashSeedFor, uuidFromDigest } from './identity.js';
import type { ImageFile } from './image-file.js';
import { encodeInode } from './inode.js';
import { prefixBitmap } from './bitmap.js';
import { isFastSymlink, symlinkTarget, type Ext2Node, type InodeMeta } from './nodes.js';
import type { Plan } from './plan.js';
import { encodeSuperblock } from './superblock.js';

/** How long the write loop may hold the event loop before yielding (and reporting progress). */
const YIELD_MS = 50;

export interface WriteOptions {
  uuid?: Buffer;
  label: Buffer;
  /** Creation, write and check time in the superblock. */
  time: number;
  onProgress?: (p: { files: number; bytes: number }) => void;
}

export interface WriteSummary {
  uuid: string;
  blocksFree: number;
  inodesFree: number;
}

const ZEROS = Buffer.alloc(CHUNK_BYTES);

export async function writeImage(plan: Plan, image: ImageFile, opts: WriteOptions): Promise<WriteSummary> {
  const { geometry, graph } = plan;
  const allocator = new BlockAllocator(geometry);
  // Per inode: i_block (15 words) and the block count, in one flat table.
  const placed = new Uint32Array((graph.lastIno + 1) * 16);
  // The tree digest names the image when no UUID is given.
  const digest = createHash('sha256');
  digest.update(`appliance-ext2 ${geometry.blockSize} ${geometry.blocksCount} ${geometry.inodesCount}\0`).update(opts.label);
  const readBuffer = chunkBuffer();
  const done = { files: 0, bytes: 0 };
  let lastYield = performance.now();
  for (let ino = 1; ino <= graph.lastIno; ino++) {
    const node = graph.byIno[ino];
    if (!node) continue;
    digestNode(digest, node, graph.meta(node));
    const mapper = placeNode(node, { geometry, image, allocator, digest, readBuffer, done });
    if (!mapper) continue;
    placed.set(mapper.iblock, ino * 16);
    placed[ino * 16 + 15] = mapper.blocks;
    if (performance.now() - lastYield >= YIELD_MS) {
      opts.onProgress?.({ ...done });
      await new Promise((resolve) => setImmediate(resolve));
      lastYield = performance.now();
    }
  }
  opts.onProgress?.({ ...done });
  return writeMetadata(plan, image, allocator, placed, digest, opts);
}

interface PlaceContext {
  geometry: Plan['geometry'];
  image: ImageFile;
  allocator: BlockAllocator;
  digest: Hash;
  readBuffer: ReturnType<typeof chunkBuffer>;
  done: { files: number; bytes: number };
}

/** A node's blocks written (a folder's entries, a slow symlink's target, a file's content); undefined for a node that has none. */
function placeNode(node: Ext2Node, c: PlaceContext): BlockMapper | undefined {
  const B = c.geometry.blockSize;
  const mapper = new BlockMapper(
    B,
    () => c.allocator.allocate(),
    (phys, block) => c.image.write(block, 0, B, phys * B),
  );
  if (node.type === 'dir') {
    const blocks = renderDirectory(node, B, node.size / B);
    c.digest.update(blocks);
    placeChunk(c.image, mapper, { offset: 0, buf: blocks, length: blocks.length }, B, false);
  } else if (node.type === 'symlink' && !isFastSymlink(node)) {
    const block = Buffer.alloc(B);
    symlinkTarget(node).copy(block);
    placeChunk(c.image, mapper, { offset: 0, buf: block, length: node.size }, B, false);
  } else if (node.type === 'file' && node.size > 0) {
    const source = node.entry.source;
    if (source?.kind === 'bytes') c.digest.update(source.data);
    readContent(node, c.readBuffer, (chunk) => placeChunk(c.image, mapper, chunk, B, true));
    c.done.files++;
    c.done.bytes += node.size;
  } else {
    return undefined;
  }
  mapper.finish();
  return mapper;
}

/** The groups' bitmaps and inode tables, then the superblock and the descriptors in group 0 and every backup group. */
function writeMetadata(plan: Plan, image: ImageFile, allocator: BlockAllocator, placed: Uint32Array, digest: Hash, opts: WriteOptions): WriteSummary {
  const { geometry } = plan;
  const counts = writeGroupMetadata(plan, image, allocator, placed);
  const uuid = opts.uuid ?? uuidFromDigest(digest.digest());
  const blocksFree = counts.reduce((n, c) => n + c.freeBlocks, 0);
  const inodesFree = counts.reduce((n, c) => n + c.freeInodes, 0);
  const descriptors = encodeGroupDescriptors(geometry, counts);
  const fields = { geometry, freeBlocks: blocksFree, freeInodes: inodesFree, uuid, hashSeed: hashSeedFor(uuid), label: opts.label, time: opts.time };
  for (const group of geometry.groups) {
    if (!group.hasSuper) continue;
    // The primary superblock sits at byte 1024 whatever the block size; backups open their group.
    const sbAt = group.index === 0 ? SUPERBLOCK_OFFSET : group.start * geometry.blockSize;
    image.write(encodeSuperblock(fields, group.index), 0, SUPERBLOCK_SIZE, sbAt);
    image.write(descriptors, 0, descriptors.length, (group.start + 1) * geometry.blockSize);
  }
  image.flush();
  return { uuid: formatUuid(uuid), blocksFree, inodesFree };
}

/** Metadata that identifies a node, so the digest changes when the tree does. */
function digestNode(digest: Hash, node: Ext2Node, meta: InodeMeta): void {
  const e = node.entry;
  const fields = [node.ino, meta.mode, meta.uid, meta.gid, meta.atime, meta.mtime, meta.ctime, node.size, node.links, e.rdevMajor ?? 0, e.rdevMinor ?? 0];
  digest.update(`${node.type} ${fields.join(' ')}\0`);
  if (node.type === 'symlink') digest.update(symlinkTarget(node));
}

/**
 * Maps the chunk's blocks and writes them, merging runs that land on consecutive blocks.
 * With `holes`, all-zero blocks are skipped and stay unallocated.
 */
function placeChunk(image: ImageFile, mapper: BlockMapper, chunk: Chunk, B: number, holes: boolean): void {
  const { buf, length } = chunk;
  if (holes && length <= ZEROS.length && buf.compare(ZEROS, 0, length, 0, length) === 0) return;
  const firstLogical = chunk.offset / B;
  let runStart = 0; // offset in buf
  let runPhys = -1;
  let runBlocks = 0;
  for (let off = 0; off < length; off += B) {
    const len = Math.min(B, length - off);
    if (holes && isZero(buf, off, len)) continue;
    const phys = mapper.map(firstLogical + off / B);
    if (runBlocks > 0 && phys === runPhys + runBlocks && off === runStart + runBlocks * B) {
      runBlocks++;
      continue;
    }
    if (runBlocks > 0) image.write(buf, runStart, runBlocks * B, runPhys * B);
    runStart = off;
    runPhys = phys;
    runBlocks = 1;
  }
  if (runBlocks > 0) image.write(buf, runStart, Math.min(runBlocks * B, length - runStart), runPhys * B);
}

function isZero(buf: Buffer, off: number, len: number): boolean {
  if (buf[off] !== 0 || buf[off + len - 1] !== 0) return false;
  return buf.compare(ZEROS, 0, len, off, off + len) === 0;
}

/** Writes each group's bitmaps and the used part of its inode table (adjacent, so one write) and returns its counts. */
function writeGroupMetadata(plan: Plan, image: ImageFile, allocator: BlockAllocator, placed: Uint32Array): GroupCounts[] {
  const { geometry, graph } = plan;
  const B = geometry.blockSize;
  const ipg = geometry.inodesPerGroup;
  const counts: GroupCounts[] = [];
  for (const group of geometry.groups) {
    const usedBlocks = group.dataStart - group.start + allocator.usedIn(group.index);
    const firstIno = group.index * ipg + 1;
    const usedInodes = Math.max(0, Math.min(ipg, graph.lastIno - firstIno + 1));
    const tableBytes = Math.ceil((usedInodes * INODE_SIZE) / B) * B;
    const buf = Buffer.alloc(2 * B + tableBytes);
    prefixBitmap(B, usedBlocks, group.blocks).copy(buf, 0);
    prefixBitmap(B, usedInodes, ipg).copy(buf, B);
    let directories = 0;
    for (let i = 0; i < usedInodes; i++) {
      const node = graph.byIno[firstIno + i];
      if (!node) continue;
      if (node.type === 'dir') directories++;
      const at = (firstIno + i) * 16;
      encodeInode(buf, 2 * B + i * INODE_SIZE, node, graph.meta(node), placed.subarray(at, at + 15), placed[at + 15]!, B);
    }
    image.write(buf, 0, buf.length, group.blockBitmap * B);
    counts.push({ freeBlocks: group.blocks - usedBlocks, freeInodes: ipg - usedInodes, directories });
  }
  return counts;
}
