/**
 * Reads a regular file's content in chunks for the write step: host files with
 * positional reads into one reused buffer, in-memory bytes as they are. The size is
 * checked against the entry's: a file that grew or shrank since it was listed is an
 * error, since its inode was planned from the listed size.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { ApplianceError } from '../../errors.js';
import { alignedBuffer } from './aligned.js';
import { showPath, type Ext2Node } from './nodes.js';

/** Bytes read per call: large enough that syscalls stay few, small enough to keep memory flat. */
export const CHUNK_BYTES = 1024 * 1024;

export interface Chunk {
  /** File offset of buf[0]. */
  offset: number;
  buf: Buffer;
  length: number;
}

/** Direct I/O wants offsets and lengths in whole logical blocks of the device (at most 4 KiB). */
const DIRECT_ALIGN = 4096;
/** Files this large are checked for host holes. */
const SPARSE_CHECK_BYTES = CHUNK_BYTES;

/** A buffer for readContent: one chunk and the block that shows a file grew. */
export function chunkBuffer(): Buffer {
  return alignedBuffer(CHUNK_BYTES + DIRECT_ALIGN);
}

/**
 * Calls `onChunk` for each chunk of the file's content, in order. Reads are synchronous:
 * from the page cache they cost a fraction of a thread-pool round trip, and the caller
 * yields to the event loop between files.
 */
export function readContent(node: Ext2Node, buf: Buffer, onChunk: (chunk: Chunk) => void): void {
  const source = node.entry.source;
  if (!source || node.size === 0) return;
  if (source.kind === 'bytes') {
    onChunk({ offset: 0, buf: Buffer.from(source.data.buffer, source.data.byteOffset, source.data.byteLength), length: node.size });
    return;
  }
  let fd: number;
  let direct = false;
  try {
    fd = openSync(source.path, 'r');
    if (node.size >= SPARSE_CHECK_BYTES) ({ fd, direct } = reopenIfSparse(fd, source.path, node.size));
  } catch (err) {
    throw readError(node, source.path, err);
  }
  try {
    for (let offset = 0; offset < node.size;) {
      const want = Math.min(CHUNK_BYTES, node.size - offset);
      // The last read asks for more, so a file that grew shows it without another call.
      const last = offset + want === node.size;
      const request = !last ? want : direct ? Math.ceil((want + 1) / DIRECT_ALIGN) * DIRECT_ALIGN : want + 1;
      let got = 0;
      try {
        while (got < want) {
          const n = readSync(fd, buf, got, request - got, offset + got);
          got += n;
          // A direct read short of a whole block is the end of the file.
          if (n === 0 || (direct && n % DIRECT_ALIGN !== 0)) break;
        }
      } catch (err) {
        throw readError(node, source.path, err);
      }
      if (got !== want) {
        const now = got > want ? 'grew' : `shrank to ${offset + got} bytes`;
        throw new ApplianceError(
          'ESOURCECHANGED',
          `${String(source.path)} (${showPath(node.path)} in the image) ${now} while being copied; ` +
            `it was listed with ${node.size} bytes: build again once it is stable`,
        );
      }
      onChunk({ offset, buf, length: want });
      offset += want;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Reading a hole through the page cache fills the cache with zero pages, which costs
 * seconds for a sparse file of gigabytes; direct I/O returns holes as zeros at memory
 * speed. Used only for files the host stores sparsely, and where the filesystem allows it.
 */
function reopenIfSparse(fd: number, path: string | Buffer, size: number): { fd: number; direct: boolean } {
  if (fstatSync(fd).blocks * 512 >= size) return { fd, direct: false };
  let directFd: number;
  try {
    directFd = openSync(path, constants.O_RDONLY | constants.O_DIRECT);
  } catch {
    return { fd, direct: false };
  }
  closeSync(fd);
  return { fd: directFd, direct: true };
}

function readError(node: Ext2Node, path: string | Buffer, err: unknown): ApplianceError {
  return new ApplianceError(
    'ESOURCEREAD',
    `cannot read ${String(path)} (${showPath(node.path)} in the image): ${(err as Error).message}: make it readable or leave it out`,
    { cause: err },
  );
}
