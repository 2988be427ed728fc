/**
 * Group bitmaps. Used blocks and inodes are always a prefix of a group (metadata, then
 * data taken in order; inodes numbered from 1), so each bitmap is a run of set bits,
 * plus the padding past the group's end that e2fsck expects set.
 */

/** A bitmap block with bits [0, used) and [count, 8 * blockSize) set. */
export function prefixBitmap(blockSize: number, used: number, count: number): Buffer {
  const buf = Buffer.alloc(blockSize);
  setBits(buf, 0, used);
  setBits(buf, count, blockSize * 8);
  return buf;
}

function setBits(buf: Buffer, from: number, to: number): void {
  let bit = from;
  while (bit < to && bit % 8 !== 0) {
    buf[bit >> 3]! |= 1 << (bit & 7);
    bit++;
  }
  const wholeBytesEnd = Math.floor(to / 8);
  if (bit / 8 < wholeBytesEnd) {
    buf.fill(0xff, bit / 8, wholeBytesEnd);
    bit = wholeBytesEnd * 8;
  }
  while (bit < to) {
    buf[bit >> 3]! |= 1 << (bit & 7);
    bit++;
  }
}
