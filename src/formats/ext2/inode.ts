/**
 * The 256-byte ext2 inode: the 128-byte base plus the extra fields that carry time
 * epochs (so times past 2038 survive), filled the way Linux reads them.
 */
import { MODE_TYPE } from '../entry.js';
import { INODE_EXTRA_ISIZE } from './constants.js';
import { isFastSymlink, symlinkTarget, type Ext2Node, type InodeMeta } from './nodes.js';

/** Writes the inode of `node` with `meta`; its data went to `iblock` and takes `blocks` blocks (data plus indirect). */
export function encodeInode(buf: Buffer, at: number, node: Ext2Node, meta: InodeMeta, iblock: Uint32Array, blocks: number, blockSize: number): void {
  buf.writeUInt16LE(MODE_TYPE[node.type] | meta.mode, at);
  buf.writeUInt16LE(meta.uid & 0xffff, at + 2);
  buf.writeUInt32LE(node.size % 2 ** 32, at + 4);
  writeTime(buf, at + 8, at + 140, meta.atime);
  writeTime(buf, at + 12, at + 132, meta.ctime);
  writeTime(buf, at + 16, at + 136, meta.mtime);
  buf.writeUInt16LE(meta.gid & 0xffff, at + 24);
  buf.writeUInt16LE(node.links, at + 26);
  buf.writeUInt32LE(blocks * (blockSize / 512), at + 28);
  const blockArray = at + 40;
  if (isFastSymlink(node)) {
    symlinkTarget(node).copy(buf, blockArray);
  } else if (node.type === 'chardev' || node.type === 'blockdev') {
    encodeDevice(buf, blockArray, node.entry.rdevMajor ?? 0, node.entry.rdevMinor ?? 0);
  } else {
    for (let i = 0; i < 15; i++) buf.writeUInt32LE(iblock[i]!, blockArray + 4 * i);
  }
  buf.writeUInt32LE(Math.floor(node.size / 2 ** 32), at + 108);
  buf.writeUInt16LE(meta.uid >>> 16, at + 120);
  buf.writeUInt16LE(meta.gid >>> 16, at + 122);
  buf.writeUInt16LE(INODE_EXTRA_ISIZE, at + 128);
  // Creation time: the inode's change time, so the image stays reproducible.
  writeTime(buf, at + 144, at + 148, meta.ctime);
}

/** Device numbers as Linux stores them: the old 8:8 form when both fit, else the new 12:20 form in the second word. */
function encodeDevice(buf: Buffer, at: number, major: number, minor: number): void {
  if (major < 256 && minor < 256) {
    buf.writeUInt32LE((major << 8) | minor, at);
  } else {
    buf.writeUInt32LE(((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0, at + 4);
  }
}

/** Seconds in the 32-bit field, the epoch bits (bits 0-1 of the extra field) for what lies outside it. */
function writeTime(buf: Buffer, at: number, extraAt: number, seconds: number): void {
  const low = seconds | 0;
  buf.writeInt32LE(low, at);
  buf.writeUInt32LE(((seconds - low) / 2 ** 32) & 3, extraAt);
}
