/** `appliance diff`: what differs between two disk images or filesystems. */
import type { Command } from 'commander';
import type { DiffError, Inspection } from '../../inspect/index.js';
import { describeErrno } from '../../errno.js';
import { action, bounded } from '../common.js';
import { json, printable, TYPE_CHAR } from './format.js';
import { common, onImage, open, splitDiskFs, type CommonOptions } from './options.js';

export function register(program: Command): void {
  common(program.command('diff'))
    .description('What differs between two disk images (or filesystems): files added, removed, changed and how')
    .argument('<disk1>', 'DISK[:FS]')
    .argument('<disk2>', 'DISK[:FS]')
    .option('--times', 'compare modification times too')
    .option('--checksum-all', "hash every file's content (default: only files whose size agrees and whose inode is not the same untouched one)")
    .option('--json', 'print the differences as JSON')
    .action(
      action(async (a: string, b: string, o: CommonOptions & { times?: boolean; checksumAll?: boolean }) => {
        const [sa, sb] = [splitDiskFs(a), splitDiskFs(b)];
        // An appliance for each image, as virt-diff has a handle for each: a clone shares its
        // original's UUIDs, labels and LVM, md and LUKS identities, which one kernel cannot
        // hold twice (its volumes would not be assembled beside its twin's).
        const opened = await Promise.allSettled([open([sa.disk], o), open([sb.disk], o)]);
        await using ia = await settled(opened[0], opened[1]);
        await using ib = await settled(opened[1]); // ia is closed by its `using`
        const { diff } = await import('../../inspect/index.js');
        // A named filesystem on each side, or each image's whole tree as its OS mounts it.
        const side = (img: Inspection, s: { disk: string; fs: string }) => onImage(s.disk, async () => (s.fs ? (await img.locate('/', s.fs)).fs : img.tree()));
        const [ta, tb] = await Promise.all([side(ia, sa), side(ib, sb)]);
        // What could not be read on either side: compared as far as it was read, each said after, exit 1.
        const unread: string[] = [];
        const onError = (e: DiffError) =>
          unread.push(bounded(`appliance: ${e.side === 'a' ? sa.disk : sb.disk}: ${String(e.path)}: ${e.reason ?? describeErrno(e.errno)}`));
        const changes = await diff(ta, tb, { times: o.times, checksum: o.checksumAll ? 'all' : 'changed', onError });
        const said = () => {
          for (const line of unread) process.stderr.write(`${line}\n`);
          return unread.length ? 1 : 0;
        };
        if (o.json) {
          json(changes);
          return said();
        }
        for (const c of changes) {
          const s = (c.b ?? c.a)!;
          const sign = c.change === 'added' ? '+' : c.change === 'removed' ? '-' : '=';
          // A symlink's target, as virt-diff shows it; a changed one says what it was too.
          const to = (x: typeof s | undefined) => (x?.type === 'symlink' ? [Buffer.from(' -> '), printable(x.target ?? '')] : []);
          const was = c.attributes?.includes('target') && c.a?.type === 'symlink' ? [Buffer.from('; was'), ...to(c.a)] : [];
          process.stdout.write(
            Buffer.concat([
              Buffer.from(`${sign} ${TYPE_CHAR[s.type]} ${(s.mode & 0o7777).toString(8).padStart(4, '0')} ${String(s.size).padStart(10)} `),
              printable(s.path),
              ...to(s),
              ...(c.attributes ? [Buffer.from(` (${c.attributes.join(', ')}`), ...was, Buffer.from(')')] : []),
              Buffer.from('\n'),
            ]),
          );
        }
        return said();
      }),
    );
}

/** One of two opens: its inspection, or its error once the `other` inspection (if it opened) is closed. */
async function settled(mine: PromiseSettledResult<Inspection>, other?: PromiseSettledResult<Inspection>): Promise<Inspection> {
  if (mine.status === 'fulfilled') return mine.value;
  if (other?.status === 'fulfilled') await other.value.close();
  throw mine.reason;
}
