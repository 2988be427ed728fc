import type { FileHandle } from 'node:fs/promises';

/**
 * The LZ4 "legacy" frame the kernel build uses for LZ4-compressed bzImages (Debian's cloud
 * kernels): a magic number, then blocks each preceded by its compressed size and each
 * decoding, independently, to at most 8 MiB. Decoded here because the lz4 tool is rarely
 * installed and a block at a time keeps memory bounded.
 */
export const LZ4_LEGACY_MAGIC = 0x184c2102;
const BLOCK_MAX = 8 << 20;
// LZ4_COMPRESSBOUND(8 MiB): what a block that did not compress can grow to.
const COMPRESSED_MAX = BLOCK_MAX + BLOCK_MAX / 255 + 16;

/** Decodes the legacy frame in `input[start, end)` and appends the result to `output`; returns the bytes written. */
export async function lz4LegacyDecode(input: FileHandle, start: number, end: number, output: FileHandle): Promise<number> {
  const head = Buffer.alloc(4);
  const readU32 = async (at: number) => {
    const { bytesRead } = await input.read(head, 0, 4, at);
    if (bytesRead !== 4) throw new Error(`lz4: truncated at byte ${at}`);
    return head.readUInt32LE(0);
  };
  if ((await readU32(start)) !== LZ4_LEGACY_MAGIC) throw new Error('lz4: not a legacy frame');
  const src = Buffer.alloc(COMPRESSED_MAX);
  const dst = Buffer.alloc(BLOCK_MAX);
  let pos = start + 4;
  let written = 0;
  while (pos + 4 <= end) {
    const size = await readU32(pos);
    pos += 4;
    if (size === LZ4_LEGACY_MAGIC) continue; // concatenated frames
    if (size > COMPRESSED_MAX || pos + size > end) throw new Error(`lz4: bad block size ${size} at byte ${pos - 4}`);
    const { bytesRead } = await input.read(src, 0, size, pos);
    if (bytesRead !== size) throw new Error(`lz4: truncated block at byte ${pos}`);
    pos += size;
    const n = lz4DecodeBlock(src.subarray(0, size), dst);
    await output.write(dst, 0, n, written);
    written += n;
  }
  return written;
}

/** Decodes one raw LZ4 block into `dst`; returns its length. Throws on corrupt input. */
export function lz4DecodeBlock(src: Uint8Array, dst: Uint8Array): number {
  let s = 0;
  let d = 0;
  const corrupt = () => new Error(`lz4: corrupt block at input byte ${s}`);
  const length = (base: number) => {
    let n = base;
    if (base === 15) {
      let b: number;
      do {
        if (s >= src.length) throw corrupt();
        b = src[s++]!;
        n += b;
      } while (b === 255);
    }
    return n;
  };
  while (s < src.length) {
    const token = src[s++]!;
    const literals = length(token >>> 4);
    if (s + literals > src.length || d + literals > dst.length) throw corrupt();
    dst.set(src.subarray(s, s + literals), d);
    s += literals;
    d += literals;
    if (s === src.length) break; // the last sequence has literals only
    if (s + 2 > src.length) throw corrupt();
    const offset = src[s]! | (src[s + 1]! << 8);
    s += 2;
    const match = length(token & 15) + 4;
    if (offset === 0 || offset > d || d + match > dst.length) throw corrupt();
    if (offset >= match) {
      dst.copyWithin(d, d - offset, d - offset + match);
      d += match;
    } else {
      // Overlapping copy: repeats the last `offset` bytes, byte by byte.
      for (let i = 0; i < match; i++, d++) dst[d] = dst[d - offset]!;
    }
  }
  return d;
}
