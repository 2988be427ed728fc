/**
 * What `inspect`, `ls`, `cat`, `copy-out` and `diff` share: the images and their options,
 * DISK[:FS] names, and errors about paths found through an OS's mount points.
 */
import type { Command } from 'commander';
import { isUtf8 } from 'node:buffer';
import { existsSync } from 'node:fs';
import type { DiskSpec } from '../../vm/index.js';
import type { Inspection, InspectOptions, Name } from '../../inspect/index.js';
import { ApplianceError, DiskRefusedError, FilesystemError, ImageFileError, type DiskWords } from '../../errors.js';
import { pathText } from '../../printable.js';
import { DISK_FORMAT_CHOICES, isDiskFormat } from '../../disk-formats.js';
import { CACHE_DIR_OPTION, usageError } from '../common.js';

export interface CommonOptions {
  format?: string;
  backing?: boolean;
  key: string[];
  cacheDir?: string;
  json?: boolean;
  verbose?: boolean;
}

/**
 * A path in an image as the command line gives it: \xNN is the byte NN, as `ls` prints a
 * name's control characters and backslashes; so a name that is not UTF-8, which the
 * command line cannot carry as it is (Node reads arguments as UTF-8), is written with \xNN.
 */
export function pathArg(text: string): Name {
  if (!text.includes('\\x')) return text;
  const parts: Buffer[] = [];
  let at = 0;
  for (const m of text.matchAll(/\\x([0-9a-fA-F]{2})/g)) {
    parts.push(Buffer.from(text.slice(at, m.index), 'utf8'), Buffer.from([parseInt(m[1]!, 16)]));
    at = m.index! + m[0].length;
  }
  parts.push(Buffer.from(text.slice(at), 'utf8'));
  const bytes = Buffer.concat(parts);
  return isUtf8(bytes) ? bytes.toString('utf8') : bytes;
}

/** DISK[:FS]: the longest prefix before a colon that is an existing file is the image. */
export function splitDiskFs(spec: string): { disk: string; fs: string } {
  if (existsSync(spec)) return { disk: spec, fs: '' };
  for (let i = spec.lastIndexOf(':'); i > 0; i = spec.lastIndexOf(':', i - 1)) {
    if (existsSync(spec.slice(0, i))) return { disk: spec.slice(0, i), fs: spec.slice(i + 1) };
  }
  return { disk: spec, fs: '' }; // the open says what is wrong with it
}

/** A FilesystemError of an inspection of the image `disk` alone (its disk0) in this command line's names (`disk.img:2`, not disk0:2). */
function inImageWords(err: unknown, disk: string): unknown {
  // A file of the image that cannot be reached (a symlink loop on the way: ELOOP) names the image too.
  if (err instanceof ImageFileError) return new ImageFileError(err.code, `${pathText(disk)}: ${err.message}`, err.errno, err.path);
  if (!(err instanceof FilesystemError)) return err;
  const name = (id: string) => fsName(id, disk);
  return new ApplianceError(err.code, err.inWords({ fs: name, selector: name }), { cause: err });
}

/** A filesystem of the image `disk` inspected alone (disk0, disk0:2, vg/lv) as this command line names it (disk.img, disk.img:2). */
function fsName(id: string, disk: string): string {
  return id === 'disk0' ? disk : `${disk}:${id.replace(/^disk0:/, '')}`;
}

/** `work` on the image `disk`: a filesystem it does not hold, or several, or one that cannot be mounted, said in this command line's names. */
export async function onImage<T>(disk: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw inImageWords(err, disk);
  }
}

function diskSpec(path: string, o: CommonOptions): DiskSpec | string {
  if (o.format !== undefined && !isDiskFormat(o.format)) throw usageError(`--format "${o.format}": use one of ${DISK_FORMAT_CHOICES.join(', ')}`);
  if (o.format === undefined && !o.backing) return path;
  return { path, format: o.format, allowBackingFile: o.backing };
}

/** A refused image's remedy in these commands' options. */
const WORDS: DiskWords = { format: (_disk, format) => `--format ${format}`, backing: () => '--backing' };

function inspectOptions(o: CommonOptions): InspectOptions {
  // UUID=KEY for one container; any other word (an "=" in it or not) is a key each container tries.
  const keys: Record<string, string | string[]> = {};
  const anyOf: string[] = [];
  for (const k of o.key) {
    const uuid = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})=/i.exec(k);
    if (uuid) keys[uuid[1]!.toLowerCase()] = k.slice(uuid[0].length);
    else anyOf.push(k);
  }
  if (anyOf.length) keys['*'] = anyOf;
  return { cacheDir: o.cacheDir, keys, log: o.verbose ? (m) => process.stderr.write(`appliance: ${m}\n`) : undefined };
}

export async function open(disks: string[], o: CommonOptions): Promise<Inspection> {
  const { inspect } = await import('../../inspect/index.js');
  try {
    return await inspect(
      disks.map((d) => diskSpec(d, o)),
      inspectOptions(o),
    );
  } catch (err) {
    throw err instanceof DiskRefusedError ? new ApplianceError(err.code, err.inWords(WORDS), { cause: err }) : err;
  }
}

export function common(cmd: Command): Command {
  return cmd
    .option('--format <format>', `the images' format (default: qcow2 or raw, from the header; others must be named: ${DISK_FORMAT_CHOICES.join('|')})`)
    .option(
      '--key <[UUID=]key>',
      'a key of the LUKS containers (each tries every one given), or of the one with this UUID; repeatable',
      (v: string, prev: string[]) => [...prev, v],
      [],
    )
    .option(
      '--backing',
      'allow images whose headers name other host files (a backing file, a data file, vmdk extents), which qemu then opens: only for images you trust',
    )
    .option(...CACHE_DIR_OPTION)
    .option('--verbose', 'explain each step on stderr');
}

/**
 * An error about a path found through the OS's mount points ("/srv/x" is "/x" on disk0:3)
 * names the path as the user gave it, and where it was looked for.
 */
export function asGiven(err: unknown, given: string, at: { fs: { info: { id: string } }; path: Name }, disk?: string): unknown {
  if (err instanceof FilesystemError) return disk ? inImageWords(err, disk) : err;
  const inner = pathText(at.path);
  const shown = pathText(given);
  // Named as given already (the OS's tree names its start so), or as found in its filesystem.
  const asShown = err instanceof ApplianceError && err.message.startsWith(`${shown}: `);
  if (!(err instanceof ApplianceError) || (!asShown && !err.message.startsWith(`${inner}: `))) return err;
  // A file of the image that cannot be read names the image too.
  const image = disk && err instanceof ImageFileError ? `${pathText(disk)}: ` : '';
  const message =
    asShown || inner === shown
      ? `${image}${err.message}`
      : `${image}${shown}: ${err.message.slice(inner.length + 2)} (${inner} on ${disk ? fsName(at.fs.info.id, disk) : at.fs.info.id})`;
  if (message === err.message) return err;
  return err instanceof ImageFileError ? new ImageFileError(err.code, message, err.errno, err.path) : new ApplianceError(err.code, message, { cause: err });
}
