/** `appliance cat`: files of a disk image, byte for byte. */
import type { Command } from 'commander';
import { pipeline } from 'node:stream/promises';
import { action } from '../common.js';
import { asGiven, common, open, splitDiskFs, type CommonOptions } from './options.js';

export function register(program: Command): void {
  common(program.command('cat'))
    .description('Print files of a disk image (DISK[:FS] PATH…)')
    .argument('<disk>', 'DISK[:FS]')
    .argument('<path...>', 'files, as the filesystem or its OS sees them')
    .action(
      action(async (spec: string, paths: string[], o: CommonOptions) => {
        const { disk, fs } = splitDiskFs(spec);
        await using img = await open([disk], o);
        for (const path of paths) {
          const at = await img.locate(path, fs);
          await pipeline(at.fs.createReadStream(at.path), process.stdout, { end: false }).catch((err: unknown) => {
            throw asGiven(err, path, at);
          });
        }
      }),
    );
}
