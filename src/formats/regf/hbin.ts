/**
 * Hive bins ("hbin"): 4 KiB-multiple blocks after the base block, each a 32-byte header and
 * then cells back to back. A cell is a signed 32-bit size (negative while the cell is in
 * use) and its contents. Scanning every bin once, as hivex does, gives the set of offsets
 * where a used cell starts: a pointer anywhere else is refused, so no structure can be
 * read from the middle of another or from free space.
 */
import { BINS_START } from './base-block.js';
import { hiveError } from './errors.js';

const BIN_HEADER_SIZE = 32;
const BIN_ALIGN = 4096;

/** Where used cells start: one bit per 4 bytes of the file (cells are 4-aligned at least). */
export class UsedCells {
  private readonly bits: Uint8Array;
  constructor(readonly fileSize: number) {
    this.bits = new Uint8Array(Math.ceil(fileSize / 32) + 1);
  }
  mark(fileOffset: number): void {
    this.bits[fileOffset >>> 5]! |= 1 << ((fileOffset >>> 2) & 7);
  }
  has(fileOffset: number): boolean {
    if (!Number.isSafeInteger(fileOffset) || fileOffset < BINS_START || fileOffset >= this.fileSize || fileOffset % 4 !== 0) return false;
    return (this.bits[fileOffset >>> 5]! & (1 << ((fileOffset >>> 2) & 7))) !== 0;
  }
}

/**
 * Every bin from BINS_START up to the end the base block gives (or the file's end, when
 * it is shorter: a truncated hive keeps what it still holds). Like hivex opening with
 * HIVEX_OPEN_UNSAFE (as libguestfs does): 4 KiB blocks that are not a bin are skipped,
 * and a bin's scan stops at a cell whose size is impossible. A bin that claims more than
 * the file, or to be somewhere else, or a cell that runs past its bin, is an error. Every
 * step moves forward by at least 8 bytes, so the scan is linear in the file's size.
 */
export function scanBins(buf: Buffer, binsSize: number): UsedCells {
  const used = new UsedCells(buf.length);
  const end = Math.min(buf.length, BINS_START + binsSize);
  let at = BINS_START;
  while (at + BIN_HEADER_SIZE <= end) {
    if (buf.toString('latin1', at, at + 4) !== 'hbin') {
      at += BIN_ALIGN;
      continue;
    }
    const size = buf.readUInt32LE(at + 8);
    if (size <= BIN_HEADER_SIZE || size % BIN_ALIGN !== 0) throw hiveError(at + 8, `hive bin of ${size} bytes (not a multiple of 4096)`);
    if (at + size > buf.length) throw hiveError(at + 8, `hive bin of ${size} bytes runs past the end of the file (${buf.length} bytes)`);
    const claimed = buf.readUInt32LE(at + 4);
    if (claimed + BINS_START !== at) throw hiveError(at + 4, `hive bin says it is at 0x${(claimed + BINS_START).toString(16)}`);
    scanCells(buf, at, size, used);
    at += size;
  }
  return used;
}

function scanCells(buf: Buffer, bin: number, binSize: number, used: UsedCells): void {
  const binEnd = bin + binSize;
  for (let at = bin + BIN_HEADER_SIZE; at + 4 <= binEnd;) {
    const raw = buf.readInt32LE(at);
    const size = Math.abs(raw);
    if (size < 8 || size % 4 !== 0) return;
    if (at + size > binEnd) throw hiveError(at, `cell of ${size} bytes runs past its hive bin (which ends at 0x${binEnd.toString(16)})`);
    if (raw < 0) used.mark(at);
    at += size;
  }
}
