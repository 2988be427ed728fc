/**
 * The image being written: a sparse file of the final size, filled with positional
 * writes. Small writes at the allocation frontier are gathered in a window and written
 * together, so thousands of small files cost a few hundred syscalls.
 */
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { ApplianceError } from '../../errors.js';
import { alignedBuffer } from './aligned.js';

const WINDOW_BYTES = 1024 * 1024;
/** Writes this large go straight to the file. */
const DIRECT_BYTES = 256 * 1024;

export class ImageFile {
  private readonly window = alignedBuffer(WINDOW_BYTES);
  /** Image offset of window[0], or -1 when the window is empty. */
  private windowAt = -1;
  private windowUsed = 0;
  /** End of the furthest write so far: a window opens only past it, so its gaps hold nothing written before. */
  private frontier = 0;

  private constructor(
    readonly path: string,
    private readonly fd: number,
  ) {}

  static create(path: string, size: number): ImageFile {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o644);
    } catch (err) {
      throw writeError(path, err);
    }
    try {
      ftruncateSync(fd, size);
    } catch (err) {
      closeSync(fd);
      throw writeError(path, err);
    }
    return new ImageFile(path, fd);
  }

  /** Writes buf[off, off + len) at byte `pos` of the image (now, or when the window is flushed). */
  write(buf: Buffer, off: number, len: number, pos: number): void {
    const w = this.windowAt;
    if (w >= 0 && pos >= w && pos + len <= w + WINDOW_BYTES) {
      buf.copy(this.window, pos - w, off, off + len);
      this.windowUsed = Math.max(this.windowUsed, pos - w + len);
    } else if (pos < this.frontier || len >= DIRECT_BYTES) {
      if (w >= 0 && pos + len > w) this.flush();
      this.writeNow(buf, off, len, pos);
    } else {
      this.flush();
      this.windowAt = pos;
      buf.copy(this.window, 0, off, off + len);
      this.windowUsed = len;
    }
    this.frontier = Math.max(this.frontier, pos + len);
  }

  /** Writes what the window holds. */
  flush(): void {
    if (this.windowAt < 0) return;
    this.writeNow(this.window, 0, this.windowUsed, this.windowAt);
    this.window.fill(0, 0, this.windowUsed);
    this.windowAt = -1;
    this.windowUsed = 0;
  }

  close(): void {
    closeSync(this.fd);
  }

  private writeNow(buf: Buffer, off: number, len: number, pos: number): void {
    try {
      while (len > 0) {
        const n = writeSync(this.fd, buf, off, len, pos);
        off += n;
        pos += n;
        len -= n;
      }
    } catch (err) {
      throw writeError(this.path, err);
    }
  }
}

function writeError(path: string, err: unknown): ApplianceError {
  return new ApplianceError('EIMAGEWRITE', `cannot write the image ${path}: ${(err as Error).message}: check the free space and permissions there`, {
    cause: err,
  });
}
