/** `appliance copy-out`: files and folders of a disk image into a host folder. */
import type { Command } from 'commander';
import { mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ApplianceError } from '../../errors.js';
import { action, bounded, usageError } from '../common.js';
import type { MountedFilesystem } from '../../inspect/filesystem.js';
import type { Name } from '../../inspect/probe/types.js';
import { bar, progressLine } from '../progress.js';
import { json } from './format.js';
import { asGiven, common, open, pathArg, splitDiskFs, type CommonOptions } from './options.js';

/** A copy that ends sooner shows no progress. */
const PROGRESS_AFTER_MS = 300;

/** The data below `path` (each file once, however many links it has; a sparse file's holes are not written): the bar's 100%. */
async function bytesBelow(fs: MountedFilesystem, path: Name): Promise<number> {
  let total = 0;
  const seen = new Set<number>();
  for await (const s of fs.walk(path)) {
    if (s.type !== 'file' || (s.nlink > 1 && seen.has(s.ino))) continue;
    seen.add(s.ino);
    total += Math.min(s.size, s.allocated);
  }
  return total;
}

const show = (p: Name) => (typeof p === 'string' ? p : p.toString('utf8'));
const isRoot = (p: Name) => /^\/*$/.test(Buffer.from(p).toString('latin1'));

/** HOSTDIR/NAME made anew (NAME: the path's last component) for a mount point's contents. */
async function folderFor(hostDir: string, path: string): Promise<string> {
  const dir = join(hostDir, basename(path.replace(/\/+$/, '')));
  try {
    await mkdir(dir);
    return dir;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // No host folder there: copyOut says so in its words.
    if (code === 'ENOENT' || code === 'ENOTDIR') return hostDir;
    throw new ApplianceError(
      code === 'EEXIST' ? 'EEXIST' : 'EINVAL',
      `${dir} ${code === 'EEXIST' ? 'exists already' : `cannot be made (${code})`}: copy-out makes every entry anew`,
    );
  }
}

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
          const at = await img.locate(pathArg(path), fs);
          // A mount point (/boot) is its filesystem's "/": copied as the folder it is in the OS
          // (HOSTDIR/boot), as virt-copy-out does, not spread into HOSTDIR.
          const into = isRoot(at.path) && !isRoot(path) ? await folderFor(hostDir, path) : hostDir;
          const progress = progressLine(PROGRESS_AFTER_MS);
          const total = progress ? await bytesBelow(at.fs, at.path) : 0;
          const copied = at.fs.copyOut(at.path, into, {
            onProgress: progress && ((p) => progress.update(() => `${bar(p.bytes, total)}, ${p.files} files  ${show(p.path)}`)),
          });
          results.push(await copied.catch((err: unknown) => Promise.reject(asGiven(err, path, at, disk))).finally(() => progress?.done()));
        }
        if (o.json) json(results);
        const skipped = results.flatMap((r) => r.skipped);
        for (const s of skipped) process.stderr.write(`${bounded(`appliance: ${disk}: ${s}`)}\n`);
        // Anything not copied whole is exit 1, as for ls: a partial copy must not pass for a whole one.
        return skipped.length ? 1 : 0;
      }),
    );
}
