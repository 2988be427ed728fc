import type { Command } from 'commander';
import { formatSize, parseSize } from '../units.js';
import { action, usageError } from './common.js';
import { progressLine } from './progress.js';

interface Mkext2Options {
  size?: string;
  extra?: string;
  blockSize?: string;
  uuid?: string;
  label?: string;
  squashOwner?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('mkext2')
    .description('Write a folder as an ext2 image (reproducible: the same folder gives the same bytes)')
    .argument('<source-dir>', 'the folder to put in the image (its own metadata goes to the root directory)')
    .argument('<output>', 'the image file to write (written to a temporary file, renamed when complete)')
    .option('--size <bytes>', 'image size, e.g. 512M (default: the smallest that fits plus --extra)')
    .option('--extra <bytes>', 'free space added to an automatically sized image (default: 4M)')
    .option('--block-size <bytes>', 'block size: 1024, 2048 or 4096', '4096')
    .option('--uuid <uuid>', 'filesystem UUID (default: derived from the tree)')
    .option('--label <label>', 'volume label, up to 16 bytes')
    .option('--squash-owner', 'own every file by root (uid 0, gid 0), as a non-root user building an appliance needs')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nTimes later than $SOURCE_DATE_EPOCH, when it is set, are clamped to it.')
    .action(
      action(async (sourceDir: string, output: string, opts: Mkext2Options) => {
        const blockSize = Number(opts.blockSize);
        if (blockSize !== 1024 && blockSize !== 2048 && blockSize !== 4096) {
          throw usageError(`--block-size ${opts.blockSize}: use 1024, 2048 or 4096`);
        }
        const size = opts.size !== undefined ? parseSize(opts.size) : undefined;
        if (size !== undefined && opts.extra !== undefined)
          throw usageError('--extra applies only to an automatically sized image: give --size or --extra, not both');
        const { mkext2 } = await import('../appliance/mkext2.js');
        const progress = progressLine();
        const result = await mkext2(sourceDir, output, {
          size,
          extraBytes: opts.extra !== undefined ? parseSize(opts.extra) : undefined,
          blockSize,
          uuid: opts.uuid,
          label: opts.label,
          squashOwner: opts.squashOwner,
          onProgress: progress ? ({ files, bytes }) => progress.update(() => `${files} files, ${formatSize(bytes)}`) : undefined,
        });
        progress?.done();
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        } else {
          const size = (blocks: number) => formatSize(blocks * result.blockSize);
          process.stdout.write(
            `${result.path}: ext2, ${result.sizeBytes} bytes, ${result.blockSize}-byte blocks, ` +
              `${size(result.blocksFree)} of ${size(result.blocksTotal)} free, ` +
              `${result.inodesFree} of ${result.inodesTotal} inodes free, UUID ${result.uuid}\n`,
          );
        }
      }),
    );
}
