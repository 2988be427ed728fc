/** `appliance cat`: files of a disk image, byte for byte. */
import type { Command } from 'commander';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { unmountedReason } from '../../inspect/os-tree.js';
import { parseSize } from '../../units.js';
import { action, bounded, eachPath, stdoutGone, usageError } from '../common.js';
import { asGiven, common, onImage, open, pathArg, splitDiskFs, type CommonOptions } from './options.js';

export function register(program: Command): void {
  common(program.command('cat'))
    .description('Print files of a disk image (DISK[:FS] PATH…)')
    .argument('<disk>', 'DISK[:FS]')
    .argument('<path...>', 'files, as the filesystem or its OS sees them')
    .option('--max-bytes <size>', 'print at most this much of each file (e.g. 64M), and exit 1 if a file was longer')
    .action(
      action(async (spec: string, paths: string[], o: CommonOptions & { maxBytes?: string }) => {
        const max = o.maxBytes === undefined ? undefined : maxBytesOf(o.maxBytes);
        const { disk, fs } = splitDiskFs(spec);
        await using img = await open([disk], o);
        let status = 0;
        // Each path in turn, as cat(1) and virt-cat: one that cannot be read is said, and the others still printed.
        for (const path of paths) {
          const failed = await eachPath(o.verbose === true, async () => {
            const at = await onImage(disk, () => img.locate(pathArg(path), fs, 0, { follow: true }));
            // In a filesystem the OS mounts that cannot be mounted: read beneath its mount point, as libguestfs reads it, and said.
            if (at.unmounted) {
              process.stderr.write(`${bounded(`appliance: ${disk}: ${path}: ${unmountedReason(at.unmounted)}`)}\n`);
              status = Math.max(status, 1);
            }
            // A file whose inode claims 1 TiB is 1 TiB of zeros to cat(1) too; --max-bytes is the bound.
            const cut = await copyToStdout(at.fs.createReadStream(at.path), max ?? Infinity).catch((err: unknown) => {
              throw asGiven(err, path, at, disk);
            });
            if (cut) {
              process.stderr.write(`${bounded(`appliance: ${disk}: ${path}: longer than --max-bytes ${o.maxBytes}: the rest was not printed`)}\n`);
              status = Math.max(status, 1);
            }
          });
          status = Math.max(status, failed);
        }
        return status;
      }),
    );
}

function maxBytesOf(text: string): number {
  try {
    return parseSize(text);
  } catch {
    throw usageError(`--max-bytes "${text}": give a size, e.g. 4096, 64K or 1G`);
  }
}

/**
 * The stream's bytes to our stdout, at most `max` of them (then the rest is not read: the
 * stream is destroyed); true when it was cut. By hand rather than by pipeline(), which
 * would destroy our stdout with the source when it stops early.
 */
async function copyToStdout(read: Readable, max: number): Promise<boolean> {
  let left = max;
  for await (const chunk of read as AsyncIterable<Buffer>) {
    const part = chunk.length > left ? chunk.subarray(0, left) : chunk;
    left -= part.length;
    // A reader that went away (| head) aborts the wait: the action exits 141.
    if (!process.stdout.write(part)) await once(process.stdout, 'drain', { signal: stdoutGone });
    if (part !== chunk) return true;
  }
  return false;
}
