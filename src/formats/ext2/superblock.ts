/** The ext2 revision 1 superblock, as written in group 0 and in each backup group. */
import {
  EXT2_MAGIC,
  FEATURE_COMPAT,
  FEATURE_INCOMPAT_FILETYPE,
  FEATURE_RO_COMPAT_LARGE_FILE,
  FEATURE_RO_COMPAT_SPARSE_SUPER,
  FIRST_INO,
  FLAGS_SIGNED_HASH,
  HASH_HALF_MD4,
  INODE_EXTRA_ISIZE,
  INODE_SIZE,
  SUPERBLOCK_SIZE,
} from './constants.js';
import type { Geometry } from './geometry.js';

export interface SuperblockFields {
  geometry: Geometry;
  freeBlocks: number;
  freeInodes: number;
  uuid: Buffer;
  hashSeed: Buffer;
  /** Up to 16 bytes. */
  label: Buffer;
  /** Creation, last write and last check time. */
  time: number;
}

export function encodeSuperblock(f: SuperblockFields, groupNumber: number): Buffer {
  const g = f.geometry;
  const buf = Buffer.alloc(SUPERBLOCK_SIZE);
  buf.writeUInt32LE(g.inodesCount, 0);
  buf.writeUInt32LE(g.blocksCount, 4);
  buf.writeUInt32LE(0, 8); // no blocks reserved for root: the appliance runs as root anyway
  buf.writeUInt32LE(f.freeBlocks, 12);
  buf.writeUInt32LE(f.freeInodes, 16);
  buf.writeUInt32LE(g.firstDataBlock, 20);
  const log = Math.log2(g.blockSize / 1024);
  buf.writeUInt32LE(log, 24);
  buf.writeUInt32LE(log, 28);
  buf.writeUInt32LE(g.blocksPerGroup, 32);
  buf.writeUInt32LE(g.blocksPerGroup, 36);
  buf.writeUInt32LE(g.inodesPerGroup, 40);
  buf.writeUInt32LE(f.time >>> 0, 48); // s_wtime; s_mtime (last mount) stays 0
  buf.writeInt16LE(-1, 54); // no mount-count-triggered checks
  buf.writeUInt16LE(EXT2_MAGIC, 56);
  buf.writeUInt16LE(1, 58); // clean
  buf.writeUInt16LE(1, 60); // on errors: continue
  buf.writeUInt32LE(f.time >>> 0, 64); // s_lastcheck
  buf.writeUInt32LE(1, 76); // revision 1 (dynamic)
  buf.writeUInt32LE(FIRST_INO, 84);
  buf.writeUInt16LE(INODE_SIZE, 88);
  buf.writeUInt16LE(groupNumber & 0xffff, 90);
  buf.writeUInt32LE(FEATURE_COMPAT, 92);
  buf.writeUInt32LE(FEATURE_INCOMPAT_FILETYPE, 96);
  buf.writeUInt32LE(FEATURE_RO_COMPAT_SPARSE_SUPER | FEATURE_RO_COMPAT_LARGE_FILE, 100);
  f.uuid.copy(buf, 104);
  f.label.copy(buf, 120, 0, 16);
  f.hashSeed.copy(buf, 236);
  buf[252] = HASH_HALF_MD4;
  buf.writeUInt32LE(f.time >>> 0, 264); // s_mkfs_time
  buf.writeUInt16LE(INODE_EXTRA_ISIZE, 348); // s_min_extra_isize
  buf.writeUInt16LE(INODE_EXTRA_ISIZE, 350); // s_want_extra_isize
  buf.writeUInt32LE(FLAGS_SIGNED_HASH, 352);
  return buf;
}
