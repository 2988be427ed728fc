/** The ext superblock: its layout, and the ext2 revision 1 one this writer puts in group 0 and in each backup group. */
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

/** Where each field is (the kernel's struct ext4_super_block): the writer fills them, inspection's probe reads them. */
export const SB = {
  inodesCount: 0,
  blocksCountLo: 4,
  reservedBlocks: 8,
  freeBlocks: 12,
  freeInodes: 16,
  firstDataBlock: 20,
  logBlockSize: 24,
  logClusterSize: 28,
  blocksPerGroup: 32,
  clustersPerGroup: 36,
  inodesPerGroup: 40,
  wtime: 48,
  maxMountCount: 54,
  magic: 56,
  state: 58,
  errors: 60,
  lastCheck: 64,
  revision: 76,
  firstIno: 84,
  inodeSize: 88,
  groupNumber: 90,
  featureCompat: 92,
  featureIncompat: 96,
  featureRoCompat: 100,
  uuid: 104,
  volumeName: 120,
  hashSeed: 236,
  defaultHashVersion: 252,
  mkfsTime: 264,
  blocksCountHi: 336,
  minExtraIsize: 348,
  wantExtraIsize: 350,
  flags: 352,
} as const;

export function encodeSuperblock(f: SuperblockFields, groupNumber: number): Buffer {
  const g = f.geometry;
  const buf = Buffer.alloc(SUPERBLOCK_SIZE);
  buf.writeUInt32LE(g.inodesCount, SB.inodesCount);
  buf.writeUInt32LE(g.blocksCount, SB.blocksCountLo);
  buf.writeUInt32LE(0, SB.reservedBlocks); // no blocks reserved for root: the appliance runs as root anyway
  buf.writeUInt32LE(f.freeBlocks, SB.freeBlocks);
  buf.writeUInt32LE(f.freeInodes, SB.freeInodes);
  buf.writeUInt32LE(g.firstDataBlock, SB.firstDataBlock);
  const log = Math.log2(g.blockSize / 1024);
  buf.writeUInt32LE(log, SB.logBlockSize);
  buf.writeUInt32LE(log, SB.logClusterSize);
  buf.writeUInt32LE(g.blocksPerGroup, SB.blocksPerGroup);
  buf.writeUInt32LE(g.blocksPerGroup, SB.clustersPerGroup);
  buf.writeUInt32LE(g.inodesPerGroup, SB.inodesPerGroup);
  buf.writeUInt32LE(f.time >>> 0, SB.wtime); // s_mtime (last mount) stays 0
  buf.writeInt16LE(-1, SB.maxMountCount); // no mount-count-triggered checks
  buf.writeUInt16LE(EXT2_MAGIC, SB.magic);
  buf.writeUInt16LE(1, SB.state); // clean
  buf.writeUInt16LE(1, SB.errors); // on errors: continue
  buf.writeUInt32LE(f.time >>> 0, SB.lastCheck);
  buf.writeUInt32LE(1, SB.revision); // revision 1 (dynamic)
  buf.writeUInt32LE(FIRST_INO, SB.firstIno);
  buf.writeUInt16LE(INODE_SIZE, SB.inodeSize);
  buf.writeUInt16LE(groupNumber & 0xffff, SB.groupNumber);
  buf.writeUInt32LE(FEATURE_COMPAT, SB.featureCompat);
  buf.writeUInt32LE(FEATURE_INCOMPAT_FILETYPE, SB.featureIncompat);
  buf.writeUInt32LE(FEATURE_RO_COMPAT_SPARSE_SUPER | FEATURE_RO_COMPAT_LARGE_FILE, SB.featureRoCompat);
  f.uuid.copy(buf, SB.uuid);
  f.label.copy(buf, SB.volumeName, 0, 16);
  f.hashSeed.copy(buf, SB.hashSeed);
  buf[SB.defaultHashVersion] = HASH_HALF_MD4;
  buf.writeUInt32LE(f.time >>> 0, SB.mkfsTime);
  buf.writeUInt16LE(INODE_EXTRA_ISIZE, SB.minExtraIsize);
  buf.writeUInt16LE(INODE_EXTRA_ISIZE, SB.wantExtraIsize);
  buf.writeUInt32LE(FLAGS_SIGNED_HASH, SB.flags);
  return buf;
}
