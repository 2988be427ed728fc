/** `appliance copy-out`: files and folders of a disk image into a host folder. */
import type { Command } from 'commander';
import { action, bounded, usageError } from '../common.js';
import { json } from './format.js';
import { asGiven, common, open, splitDiskFs, type CommonOptions } from './options.js';

export function register(program: Command): void {
  common(program.command('copy-out'))
    .description('Copy files or folders out of a disk image into a host folder, with modes, owners (as root), times, links and holes')
    .argument('<disk>', 'DISK[:FS]')
    .argument('<paths...>', 'what to copy, then the host folder')
    .option('--json', 'print what was copied as JSON')
    .action(
      action(async (spec: string, args: string[], o: CommonOptions) => {
        if (args.length < 2) throw usageError('copy-out needs what to copy and the host folder: DISK[:FS] PATH… HOSTDIR');
        const hostDir = args.at(-1)!;
        const { disk, fs } = splitDiskFs(spec);
        await using img = await open([disk], o);
        const results = [];
        for (const path of args.slice(0, -1)) {
          const at = await img.locate(path, fs);
          results.push(await at.fs.copyOut(at.path, hostDir).catch((err: unknown) => Promise.reject(asGiven(err, path, at, disk))));
        }
        if (o.json) json(results);
        const skipped = results.flatMap((r) => r.skipped);
        for (const s of skipped) process.stderr.write(`${bounded(`appliance: ${disk}: ${s}`)}\n`);
        // Anything not copied whole is exit 1, as for ls: a partial copy must not pass for a whole one.
        return skipped.length ? 1 : 0;
      }),
    );
}
