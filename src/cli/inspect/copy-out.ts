/** `appliance copy-out`: files and folders of a disk image into a host folder. */
import type { Command } from 'commander';
import { action, bounded, eachPath, usageError } from '../common.js';
import type { CopyOutResult } from '../../inspect/copy-out.js';
import type { MountedFilesystem } from '../../inspect/filesystem.js';
import type { FileTree, OsTree } from '../../inspect/os-tree.js';
import type { Name } from '../../inspect/probe/types.js';
import { bar, progressLine } from '../progress.js';
import { json } from './format.js';
import { asGiven, common, onImage, open, pathArg, splitDiskFs, type CommonOptions } from './options.js';

/** A copy that ends sooner shows no progress. */
const PROGRESS_AFTER_MS = 300;

/** The data below `path` (each file once, however many links it has; a sparse file's holes are not written): the bar's 100%. */
async function bytesBelow(fs: Pick<FileTree, 'walk'>, path: Name): Promise<number> {
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
        const results: CopyOutResult[] = [];
        // Without :FS, the OS's tree: the filesystems mounted below a path copied into their
        // mount points' folders, a mount point (/boot) as HOSTDIR/boot, as virt-copy-out does.
        const tree = fs ? undefined : ((await onImage(disk, () => img.tree())) as OsTree | MountedFilesystem);
        let status = 0;
        // Each path in turn: one that cannot be copied is said, and the others still copied.
        for (const path of args.slice(0, -1)) {
          const failed = await eachPath(o.verbose === true, async () => {
            const at = await onImage(disk, () => img.locate(pathArg(path), fs));
            const [source, from] = tree ? [tree, pathArg(path)] : [at.fs, at.path];
            const progress = progressLine(PROGRESS_AFTER_MS);
            const total = progress ? await bytesBelow(source, from) : 0;
            const copied = source.copyOut(from, hostDir, {
              onProgress: progress && ((p) => progress.update(() => `${bar(p.bytes, total)}, ${p.files} files  ${show(p.path)}`)),
            });
            results.push(await copied.catch((err: unknown) => Promise.reject(asGiven(err, path, at, disk))).finally(() => progress?.done()));
          });
          status = Math.max(status, failed);
        }
        if (o.json) json(results);
        const skipped = results.flatMap((r) => r.skipped);
        for (const s of skipped) process.stderr.write(`${bounded(`appliance: ${disk}: ${s}`)}\n`);
        // Anything not copied whole is exit 1, as for ls: a partial copy must not pass for a whole one.
        return Math.max(status, skipped.length ? 1 : 0);
      }),
    );
}
