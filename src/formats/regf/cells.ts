/**
 * Reading cells by the offsets the structures hold. An offset is relative to the first
 * bin; 0xFFFFFFFF means none. Only the start of a used cell (found by the bin scan) is
 * accepted, and every cell read is charged to the operation's step budget, so no chain of
 * offsets in a hostile hive can make one lookup run long, whatever the visited sets miss.
 */
import { BINS_START } from './base-block.js';
import { hiveError } from './errors.js';
import type { UsedCells } from './hbin.js';

/** The offset that points nowhere. */
export const NO_CELL = 0xffffffff;

/** A used cell: its contents (after the 4-byte size), as a view of the file. */
export interface Cell {
  /** Relative offset, as structures hold it. */
  offset: number;
  /** File offset of the contents, for error messages. */
  at: number;
  data: Buffer;
}

export class Cells {
  private steps = 0;
  private limit = 0;
  private depth = 0;

  constructor(
    private readonly buf: Buffer,
    private readonly used: UsedCells,
    /** Cell reads one operation may make: enough to read every cell of the hive a few times. */
    private readonly budget: number,
  ) {}

  /** File offset of a relative cell offset. */
  static fileOffset(offset: number): number {
    return offset + BINS_START;
  }

  /** Whether a used cell starts at this relative offset. */
  isCell(offset: number): boolean {
    return offset !== NO_CELL && this.used.has(offset + BINS_START);
  }

  /** The two signature bytes of the cell at `offset` ('' when there is no used cell there). */
  signature(offset: number): string {
    if (!this.isCell(offset)) return '';
    const at = offset + BINS_START + 4;
    return at + 2 <= this.buf.length ? this.buf.toString('latin1', at, at + 2) : '';
  }

  /** The used cell at `offset`, which `what` (for the message) points to; an error when there is none. */
  cell(offset: number, what: string): Cell {
    this.charge();
    const fileAt = offset + BINS_START;
    if (!this.isCell(offset)) throw hiveError(fileAt, `${what} points to 0x${offset.toString(16)}, where no cell in use starts`);
    const size = Math.abs(this.buf.readInt32LE(fileAt));
    return { offset, at: fileAt + 4, data: this.buf.subarray(fileAt + 4, fileAt + size) };
  }

  /**
   * Runs one operation with a fresh step budget. Operations may call each other: only the
   * outermost one starts a budget, so a path lookup is one operation, not one per step.
   */
  operation<T>(run: () => T): T {
    if (this.depth === 0) {
      this.steps = 0;
      this.limit = this.budget;
    }
    this.depth++;
    try {
      return run();
    } finally {
      this.depth--;
    }
  }

  private charge(): void {
    if (++this.steps > this.limit) throw hiveError(0, `gave up after reading ${this.limit} cells in one operation (a loop, or a hive far larger than it says)`);
  }
}
