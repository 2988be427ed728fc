/**
 * `appliance inspect | ls | cat | copy-out | diff`: disk images looked into, read-only,
 * over the library's inspect(). DISK[:FS] names an image and, after its last colon, a
 * filesystem (a partition number, an LV, btrfsvol:PATH, a label, a UUID); without FS, an
 * OS's paths are taken as it sees them (its fstab applied), else the only filesystem.
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import type { DiskFormat, DiskSpec } from '../vm/index.js';
import type { FileStat, Inspection, InspectOptions, Name } from '../inspect/index.js';
import { packageVersion } from '../inspect/packages.js';
import { ApplianceError } from '../errors.js';
import { action, usageError } from './common.js';

interface CommonOptions {
  format?: string;
  key: string[];
  cacheDir?: string;
  json?: boolean;
  verbose?: boolean;
}

const FORMATS = ['raw', 'qcow2', 'qcow', 'qed', 'vmdk', 'vdi', 'vhdx', 'vpc', 'auto'];

/** DISK[:FS]: the longest prefix before a colon that is an existing file is the image. */
export function splitDiskFs(spec: string): { disk: string; fs: string } {
  if (existsSync(spec)) return { disk: spec, fs: '' };
  for (let i = spec.lastIndexOf(':'); i > 0; i = spec.lastIndexOf(':', i - 1)) {
    if (existsSync(spec.slice(0, i))) return { disk: spec.slice(0, i), fs: spec.slice(i + 1) };
  }
  return { disk: spec, fs: '' }; // the open says what is wrong with it
}

function diskSpec(path: string, o: CommonOptions): DiskSpec | string {
  if (o.format === undefined) return path;
  if (!FORMATS.includes(o.format)) throw usageError(`--format "${o.format}": use one of ${FORMATS.join(', ')}`);
  return { path, format: o.format as DiskFormat | 'auto' };
}

function inspectOptions(o: CommonOptions): InspectOptions {
  const keys: Record<string, string> = {};
  for (const k of o.key) {
    const eq = k.indexOf('=');
    if (eq < 0) keys['*'] = k;
    else keys[k.slice(0, eq)] = k.slice(eq + 1);
  }
  return { cacheDir: o.cacheDir, keys, log: o.verbose ? (m) => process.stderr.write(`appliance: ${m}\n`) : undefined };
}

async function open(disks: string[], o: CommonOptions): Promise<Inspection> {
  const { inspect } = await import('../inspect/index.js');
  return inspect(
    disks.map((d) => diskSpec(d, o)),
    inspectOptions(o),
  );
}

function common(cmd: Command): Command {
  return cmd
    .option('--format <format>', `the images' format (default: qcow2 or raw, from the header; others must be named: ${FORMATS.join('|')})`)
    .option('--key <[UUID=]key>', 'the key of a LUKS container (of the one with this UUID; repeatable)', (v: string, prev: string[]) => [...prev, v], [])
    .option('--cache-dir <dir>', 'cache folder (default: $APPLIANCE_CACHE_DIR, $XDG_CACHE_HOME/appliance or ~/.cache/appliance)')
    .option('--verbose', 'explain each step on stderr');
}

/**
 * An error about a path found through the OS's mount points ("/srv/x" is "/x" on disk0:3)
 * names the path as the user gave it, and where it was looked for.
 */
function asGiven(err: unknown, given: string, at: { fs: { info: { id: string } }; path: Name }): unknown {
  const inner = String(at.path);
  if (!(err instanceof ApplianceError) || inner === given || !err.message.startsWith(`${inner}: `)) return err;
  return new ApplianceError(err.code, `${given}: ${err.message.slice(inner.length + 2)} (${inner} on ${at.fs.info.id})`, { cause: err });
}

/** A name for a terminal line: control characters and backslashes escaped (\xNN), other bytes as they are. */
function printable(name: Name): Buffer {
  const b = Buffer.from(name);
  const out: number[] = [];
  for (const c of b) {
    if (c < 0x20 || c === 0x7f || c === 0x5c) out.push(...Buffer.from(`\\x${c.toString(16).padStart(2, '0')}`));
    else out.push(c);
  }
  return Buffer.from(out);
}

/** JSON has no bytes: a name that is not UTF-8 is written as {"hex": "…"}. */
function jsonReplacer(_key: string, value: unknown): unknown {
  if (value && typeof value === 'object' && (value as { type?: string }).type === 'Buffer' && Array.isArray((value as { data?: unknown }).data)) {
    return { hex: Buffer.from((value as { data: number[] }).data).toString('hex') };
  }
  return value;
}
const json = (v: unknown) => process.stdout.write(`${JSON.stringify(v, jsonReplacer, 2)}\n`);

const TYPE_CHAR: Record<string, string> = { file: '-', dir: 'd', symlink: 'l', chardev: 'c', blockdev: 'b', fifo: 'p', socket: 's' };
function modeString(s: FileStat): string {
  const bits = 'rwxrwxrwx'.split('').map((c, i) => (s.mode & (0o400 >> i) ? c : '-'));
  if (s.mode & 0o4000) bits[2] = bits[2] === 'x' ? 's' : 'S';
  if (s.mode & 0o2000) bits[5] = bits[5] === 'x' ? 's' : 'S';
  if (s.mode & 0o1000) bits[8] = bits[8] === 'x' ? 't' : 'T';
  return TYPE_CHAR[s.type]! + bits.join('');
}

function longLine(s: FileStat, name: Buffer, checksum: boolean): Buffer {
  const when = new Date(s.mtime * 1000).toISOString().replace('T', ' ').slice(0, 19);
  const size = s.rdev ? `${s.rdev.major}, ${s.rdev.minor}` : String(s.size);
  const parts = [modeString(s), String(s.nlink), String(s.uid), String(s.gid), size.padStart(10), when];
  if (checksum) parts.push(s.sha256 ?? '-'.repeat(64));
  const target = s.target !== undefined ? Buffer.concat([Buffer.from(' -> '), printable(s.target)]) : Buffer.alloc(0);
  return Buffer.concat([Buffer.from(`${parts.join(' ')} `), name, target, Buffer.from('\n')]);
}

export function register(program: Command): void {
  common(program.command('inspect'))
    .description('Tell what disk images hold: partitions, volumes, filesystems (type, label, UUID, size, use) and operating systems')
    .argument('<disk...>', 'disk images, attached read-only')
    .option('--packages', "list each OS's installed packages")
    .option('--json', 'print the result as JSON')
    .option('--xml', "print the operating systems as virt-inspector's XML (with their packages)")
    .action(
      action(async (disks: string[], o: CommonOptions & { packages?: boolean; xml?: boolean }) => {
        await using img = await open(disks, o);
        const [filesystems, os] = [await img.filesystems(), await img.os({ packages: o.packages || o.xml })];
        if (o.xml) {
          const { toInspectorXml } = await import('../inspect/os/xml.js');
          return void process.stdout.write(toInspectorXml(os, filesystems));
        }
        const result = { disks: img.disks(), volumes: img.volumes(), filesystems, os };
        if (o.json) return void json(result);
        process.stdout.write(inspectText(result));
      }),
    );

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
        const at = await img.locate(path, fs);
        const entries: FileStat[] = [];
        const errors: string[] = [];
        let first = true;
        try {
          for await (const s of at.fs.walk(at.path, {
            depth: o.recursive ? Infinity : 1,
            checksum: o.checksum !== undefined,
            onError: (e) => errors.push(`${String(e.path)}: errno ${e.errno}`),
          })) {
            // Without -R the folder itself is not listed, its entries are (a file lists itself).
            if (first && !o.recursive && s.type === 'dir') {
              first = false;
              continue;
            }
            first = false;
            if (o.json) entries.push(s);
            else {
              const name = o.recursive ? printable(s.path) : printable(Buffer.from(s.path).subarray(Buffer.from(s.path).lastIndexOf(0x2f) + 1));
              process.stdout.write(o.long || o.checksum ? longLine(s, name, o.checksum !== undefined) : Buffer.concat([name, Buffer.from('\n')]));
            }
          }
        } catch (err) {
          throw asGiven(err, path, at);
        }
        if (o.json) json(entries);
        for (const e of errors) process.stderr.write(`appliance: cannot read ${e}\n`);
        return errors.length ? 1 : 0;
      }),
    );

  common(program.command('cat'))
    .description('Print files of a disk image (DISK[:FS] PATH…)')
    .argument('<disk>', 'DISK[:FS]')
    .argument('<path...>', 'files, as the filesystem or its OS sees them')
    .action(
      action(async (spec: string, paths: string[], o: CommonOptions) => {
        const { disk, fs } = splitDiskFs(spec);
        await using img = await open([disk], o);
        const { pipeline } = await import('node:stream/promises');
        for (const path of paths) {
          const at = await img.locate(path, fs);
          await pipeline(at.fs.createReadStream(at.path), process.stdout, { end: false }).catch((err: unknown) => {
            throw asGiven(err, path, at);
          });
        }
      }),
    );

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
          results.push(await at.fs.copyOut(at.path, hostDir).catch((err: unknown) => Promise.reject(asGiven(err, path, at))));
        }
        if (o.json) json(results);
        for (const s of results.flatMap((r) => r.skipped)) process.stderr.write(`appliance: not copied: ${s}\n`);
      }),
    );

  common(program.command('diff'))
    .description('What differs between two disk images (or filesystems): files added, removed, changed and how')
    .argument('<disk1>', 'DISK[:FS]')
    .argument('<disk2>', 'DISK[:FS]')
    .option('--times', 'compare modification times too')
    .option('--json', 'print the differences as JSON')
    .action(
      action(async (a: string, b: string, o: CommonOptions & { times?: boolean }) => {
        const [sa, sb] = [splitDiskFs(a), splitDiskFs(b)];
        await using img = await open([sa.disk, sb.disk], o);
        const { diff } = await import('../inspect/index.js');
        const [fa, fb] = [await img.locate('/', sa.fs, 0), await img.locate('/', sb.fs, 1)];
        const changes = await diff(fa.fs, fb.fs, { times: o.times, path: String(fa.path) });
        if (o.json) return void json(changes);
        for (const c of changes) {
          const s = (c.b ?? c.a)!;
          const sign = c.change === 'added' ? '+' : c.change === 'removed' ? '-' : '=';
          const why = c.attributes ? ` (${c.attributes.join(', ')})` : '';
          process.stdout.write(
            Buffer.concat([
              Buffer.from(`${sign} ${TYPE_CHAR[s.type]} ${(s.mode & 0o7777).toString(8).padStart(4, '0')} ${String(s.size).padStart(10)} `),
              printable(s.path),
              Buffer.from(`${why}\n`),
            ]),
          );
        }
      }),
    );
}

function inspectText(r: {
  disks: ReturnType<Inspection['disks']>;
  volumes: ReturnType<Inspection['volumes']>;
  filesystems: Awaited<ReturnType<Inspection['filesystems']>>;
  os: Awaited<ReturnType<Inspection['os']>>;
}): string {
  const size = (n?: number) =>
    n === undefined ? '-' : n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)}G` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)}M` : `${(n / 1024).toFixed(1)}K`;
  const lines: string[] = [];
  for (const d of r.disks) {
    lines.push(
      `disk${d.index} ${d.path}: ${d.format}, ${size(d.size)}${d.partitionTable ? `, ${d.partitionTable.type} partition table${d.partitionTable.id ? ` ${d.partitionTable.id}` : ''}` : ''}`,
    );
    for (const p of d.partitions)
      lines.push(
        `  ${p.number}: start ${p.start}, ${size(p.size)}, type ${p.type ?? '-'}${p.name ? `, name "${String(p.name)}"` : ''}${p.uuid ? `, uuid ${p.uuid}` : ''}`,
      );
  }
  for (const g of r.volumes.lvm) lines.push(`lvm ${g.vg}: ${g.lvs.join(', ') || 'no logical volumes'}`);
  for (const m of r.volumes.md) lines.push(`md ${m.device}: ${m.level ?? ''} ${m.uuid}`);
  for (const e of r.volumes.errors) lines.push(`volumes: ${e}`);
  lines.push('filesystems:');
  for (const f of r.filesystems) {
    const label = f.label !== undefined ? ` label "${String(f.label)}"` : '';
    const use = f.used !== undefined ? `, used ${size(f.used)}` : '';
    lines.push(
      `  ${f.id} ${f.type}${label}${f.uuid ? ` uuid ${f.uuid}` : ''}, size ${size(f.size)}${use}${f.dirty ? ', dirty journal (not replayed)' : ''}${f.error ? ` (${f.error})` : ''}`,
    );
  }
  for (const os of r.os) {
    lines.push(
      `os on ${os.root}: ${os.productName ?? os.distro ?? 'linux'}, ${os.distro ?? '?'} ${os.version.major}.${os.version.minor}, ${os.arch ?? '?'}, hostname ${os.hostname ?? '-'}, packages ${os.packageFormat ?? '-'}/${os.packageManagement ?? '-'}`,
    );
    lines.push(
      `  mountpoints: ${Object.entries(os.mountpoints)
        .map(([m, id]) => `${m} ${id}`)
        .join(', ')}`,
    );
    if (os.packages) for (const p of os.packages) lines.push(`  ${p.name} ${packageVersion(p, os.packageFormat)} ${p.arch}`);
  }
  return `${lines.join('\n')}\n`;
}
