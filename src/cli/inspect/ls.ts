/** `appliance ls`: a folder of a disk image, as ls -l and ls -R would list it. */
import type { Command } from 'commander';
import type { FileStat } from '../../inspect/index.js';
import { describeErrno } from '../../errno.js';
import { action, bounded, usageError } from '../common.js';
import { json, longLine, printable } from './format.js';
import { asGiven, common, onImage, open, pathArg, splitDiskFs, type CommonOptions } from './options.js';

export function register(program: Command): void {
  common(program.command('ls'))
    .description('List a folder of a disk image (DISK[:FS] PATH)')
    .argument('<disk>', 'DISK[:FS]')
    .argument('[path]', 'the folder (or file), as the filesystem or its OS sees it', '/')
    .option('-l, --long', 'type, mode, links, owner, size, time, as ls -l')
    .option('-R, --recursive', 'everything below, with full paths')
    .option('--checksum <sha256>', 'the sha256 of each regular file')
    .option('--json', 'print the entries as JSON')
    .action(
      action(async (spec: string, path: string, o: CommonOptions & { long?: boolean; recursive?: boolean; checksum?: string }) => {
        if (o.checksum !== undefined && o.checksum !== 'sha256') throw usageError(`--checksum "${o.checksum}": only sha256`);
        const { disk, fs } = splitDiskFs(spec);
        await using img = await open([disk], o);
        let named = pathArg(path);
        let at = await onImage(disk, () => img.locate(named, fs));
        // A symlink to a folder, named without -l, lists the folder it names, as GNU ls and
        // virt-ls list it (with -l, the link itself): as if named with a trailing slash.
        if (!o.long && (await at.fs.lstat(at.path).catch(() => undefined))?.type === 'symlink') {
          const target = await onImage(disk, () => img.locate(named, fs, 0, { follow: true }));
          if ((await target.fs.stat(target.path).catch(() => undefined))?.type === 'dir') {
            named = typeof named === 'string' ? `${named}/` : Buffer.concat([named, Buffer.from('/')]);
            at = await onImage(disk, () => img.locate(named, fs));
          }
        }
        // Without :FS, the OS's tree: the filesystems its fstab mounts below the path are
        // listed in their places, a mount point as its filesystem's root, as virt-ls lists them.
        const tree = fs ? at.fs : await onImage(disk, () => img.tree());
        const from = fs ? at.path : named;
        const entries: FileStat[] = [];
        const errors: string[] = [];
        let first = true;
        try {
          for await (const s of tree.walk(from, {
            depth: o.recursive ? Infinity : 1,
            checksum: o.checksum !== undefined,
            onError: (e) => errors.push(`${String(e.path)}: ${e.reason ?? describeErrno(e.errno)}`),
          })) {
            // Without -R the folder itself is not listed, its entries are (a file lists itself).
            if (first && !o.recursive && s.type === 'dir') {
              first = false;
              continue;
            }
            first = false;
            if (o.json) entries.push(s);
            else {
              // -R: the whole path as the OS has it (/boot/efi/EFI/…, not the ESP's /EFI/…).
              const name = o.recursive ? printable(s.path) : printable(Buffer.from(s.path).subarray(Buffer.from(s.path).lastIndexOf(0x2f) + 1));
              process.stdout.write(o.long || o.checksum ? longLine(s, name, o.checksum !== undefined) : Buffer.concat([name, Buffer.from('\n')]));
            }
          }
        } catch (err) {
          throw asGiven(err, path, at, disk);
        }
        if (o.json) json(entries);
        for (const e of errors) process.stderr.write(`${bounded(`appliance: ${disk}: ${e}`)}\n`);
        return errors.length ? 1 : 0;
      }),
    );
}
