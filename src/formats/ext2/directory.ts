/**
 * Linear ext2 directories: "." and ".." then the children in name order, each record
 * 4-byte aligned, never crossing a block, the last record of a block stretched to its end.
 */
import { DIRENT_TYPE } from './constants.js';
import type { Ext2Node } from './nodes.js';

const HEADER = 8;

function recordLength(nameLength: number): number {
  return (HEADER + nameLength + 3) & ~3;
}

/**
 * Data blocks a directory takes. `minBytes` pads it with empty blocks (lost+found is
 * pre-sized so e2fsck can reconnect files without allocating).
 */
export function directoryBlocks(dir: Ext2Node, blockSize: number, minBytes = 0): number {
  let blocks = 1;
  let used = recordLength(1) + recordLength(2);
  for (const { name } of dir.children!) {
    const rec = recordLength(name.length);
    if (used + rec > blockSize) {
      blocks++;
      used = 0;
    }
    used += rec;
  }
  return Math.max(blocks, Math.ceil(minBytes / blockSize));
}

/** The directory's blocks, `blocks` of them (as counted by directoryBlocks). */
export function renderDirectory(dir: Ext2Node, blockSize: number, blocks: number): Buffer {
  const buf = Buffer.alloc(blocks * blockSize);
  let block = 0;
  let used = 0;
  let last = -1;
  const put = (ino: number, type: number, name: string) => {
    const nameLength = name.length;
    const rec = recordLength(nameLength);
    if (used + rec > blockSize) {
      buf.writeUInt16LE(blockSize - (last - block * blockSize), last + 4);
      block++;
      used = 0;
    }
    const at = block * blockSize + used;
    buf.writeUInt32LE(ino, at);
    buf.writeUInt16LE(rec, at + 4);
    buf[at + 6] = nameLength;
    buf[at + 7] = type;
    buf.write(name, at + HEADER, 'latin1');
    last = at;
    used += rec;
  };
  put(dir.ino, DIRENT_TYPE.dir, '.');
  put(dir.parent!.ino, DIRENT_TYPE.dir, '..');
  for (const { name, node } of dir.children!) put(node.ino, DIRENT_TYPE[node.type], name);
  buf.writeUInt16LE(blockSize - (last - block * blockSize), last + 4);
  // Padding blocks hold one empty record spanning the block.
  for (let b = block + 1; b < blocks; b++) buf.writeUInt16LE(blockSize, b * blockSize + 4);
  return buf;
}
