/**
 * The one decompressor of kernel files: modules (.ko.xz/.zst/.gz, which kernels without
 * CONFIG_MODULE_DECOMPRESS cannot load, so the initrd holds them plain) and a bzImage's
 * payload (gzip, xz, zstd or LZ4, for PVH boot). Streamed: a payload is tens of MB.
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { ApplianceError } from '../errors.js';
import { LZ4_LEGACY_MAGIC, lz4LegacyDecode } from './lz4.js';

export type Compression = 'gz' | 'xz' | 'zst' | 'lz4';

/** xz and zstd run as filters: the tools are everywhere, their formats are large to reimplement. */
const TOOLS = {
  xz: { command: 'xz', package: 'xz-utils (Fedora: xz)' },
  zst: { command: 'zstd', package: 'zstd' },
} as const;

/** The compression whose magic number starts `head` (6 bytes suffice); undefined for none we know. */
export function compressionOf(head: Buffer): Compression | undefined {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gz';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from('fd377a585a00', 'hex'))) return 'xz';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zst';
  if (head.length >= 4 && head.readUInt32LE(0) === LZ4_LEGACY_MAGIC) return 'lz4';
  return undefined;
}

/** A file, or the bytes [start, end) of one. */
export interface Source {
  path: string;
  start?: number;
  end?: number;
}

/** Writes the decompressed `source` to the new file `dest`; errors say which file and why. */
export async function decompress(source: Source, compression: Compression, dest: string): Promise<void> {
  const range = () => createReadStream(source.path, { start: source.start, end: source.end === undefined ? undefined : source.end - 1 });
  try {
    if (compression === 'gz') await pipeline(range(), createGunzip(), createWriteStream(dest));
    else if (compression === 'lz4') await lz4File(source, dest);
    else await filter(compression, source.path, range(), dest);
  } catch (err) {
    if (err instanceof ApplianceError) throw err;
    throw new ApplianceError('EDECOMPRESS', `cannot decompress ${source.path}: ${(err as Error).message}`, { cause: err });
  }
}

async function lz4File(source: Source, dest: string): Promise<void> {
  const input = await open(source.path, 'r');
  try {
    const end = source.end ?? (await input.stat()).size;
    const out = await open(dest, 'w');
    await lz4LegacyDecode(input, source.start ?? 0, end, out).finally(() => out.close());
  } finally {
    await input.close();
  }
}

/** Runs `tool -dc` from `input` to `dest`. */
async function filter(compression: 'xz' | 'zst', path: string, input: NodeJS.ReadableStream, dest: string): Promise<void> {
  const tool = TOOLS[compression];
  const child = spawn(tool.command, ['-dcq'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? new ApplianceError('ENOTOOL', `${tool.command} is needed to decompress ${path} but is not installed: install the ${tool.package} package`, {
              cause: err,
            })
          : err,
      ),
    );
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${tool.command} -dc exited with ${code}`))));
  });
  // If the tool is missing, the pipes fail too: the exit's reason is the one to report.
  const streams = Promise.all([pipeline(input, child.stdin), pipeline(child.stdout, createWriteStream(dest))]);
  streams.catch(() => {});
  await exited;
  await streams;
}
