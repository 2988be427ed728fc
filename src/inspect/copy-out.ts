/**
 * Copying files out of an inspected filesystem to the host, from the helper's walk with
 * content (entries, then each file's data extents). The stream comes from an untrusted
 * guest, so nothing in it is followed: every entry must lie below the copied path, in a
 * folder this copy created before, and is created anew (O_EXCL, O_NOFOLLOW; link and
 * symlink fail on anything already there): a crafted stream cannot write outside the
 * destination nor through a symlink it planted. The walk goes depth first, so an entry's
 * folder is one on the chain from the copied path down to the last folder made; what the
 * copy keeps of the tree is each folder's names, not paths, so a deep tree costs memory in
 * proportion to its entries, and paths past PATH_MAX are reached a piece at a time
 * (host-path.ts).
 */
import { isUtf8 } from 'node:buffer';
import { execFile } from 'node:child_process';
import { closeSync, constants, fchmodSync, fchownSync, ftruncateSync, futimesSync, openSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import { chmod, lchown, link, lutimes, mkdir, readdir, stat, symlink, unlink, utimes } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { ApplianceError, type ErrorCode } from '../errors.js';
import { describeErrno } from '../errno.js';
import { pathText } from '../printable.js';
import { fileError } from './helper.js';
import { reach } from './host-path.js';
import type { Name } from './probe/types.js';
import type { FileStat, WalkEvent } from './records.js';

export interface CopyOutOptions {
  signal?: AbortSignal;
  /**
   * Folders (paths in the filesystem) made but not filled: where an OS mounts another
   * filesystem, whose files are the mount's (OsTree.copyOut copies them there after).
   */
  hide?: readonly Name[];
  /** After each entry made and each piece of data written: the totals so far, and the image path being copied. */
  onProgress?: (progress: CopyOutProgress) => void;
}

export interface CopyOutProgress {
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  /** FIFOs and device nodes made. */
  specials: number;
  /** Bytes of data written so far. */
  bytes: number;
  /** The entry being copied, in the image. */
  path: Name;
}

export interface CopyOutResult {
  /** Where the copy is: HOSTDIR/NAME (or HOSTDIR itself for "/"); a Buffer when that is not UTF-8. */
  path: Name;
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  /** FIFOs and device nodes made (a device only as root; sockets never: see `skipped`). */
  specials: number;
  /** Bytes of data written (holes are not written). */
  bytes: number;
  /** What was not copied whole, one line each in the image's terms (its path, then why): a device without root, a socket, an unreadable entry. */
  skipped: string[];
}

const SLASH = 0x2f;
const asBytes = (n: Name) => (typeof n === 'string' ? Buffer.from(n, 'utf8') : n);
/** Where a copy is, as a path: text, or its bytes when they are not UTF-8 (never mangled). */
const named = (b: Buffer): Name => (isUtf8(b) ? b.toString('utf8') : b);
/** A byte-exact key for a name. */
const key = (name: Buffer) => name.toString('latin1');

/** `path`'s components below the folder `from`; undefined when it is not below it, or has . or .. parts. */
function below(path: Buffer, from: Buffer): Buffer[] | undefined {
  const prefix = from.length === 1 && from[0] === SLASH ? Buffer.alloc(0) : from;
  if (!path.subarray(0, prefix.length).equals(prefix) || (path.length > prefix.length && path[prefix.length] !== SLASH)) return undefined;
  const parts: Buffer[] = [];
  for (const part of splitBytes(path.subarray(prefix.length))) {
    // NUL: no name has one (the helper sends C strings), and Node refuses it in a path.
    if (part.equals(Buffer.from('.')) || part.equals(Buffer.from('..')) || part.includes(0)) return undefined;
    parts.push(part);
  }
  return parts;
}

function splitBytes(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= b.length; i++) {
    if (i < b.length && b[i] !== SLASH) continue;
    if (i > start) out.push(b.subarray(start, i));
    start = i + 1;
  }
  return out;
}

const under = (root: Buffer, parts: Buffer[]) => Buffer.concat([root, ...parts.flatMap((p) => [Buffer.from('/'), p])]);

/*
 * A file's own calls (open, write, truncate, chown, chmod, utimes, close) are synchronous:
 * each takes microseconds on the page cache, and as promises each went through libuv's
 * thread pool and back, which for a folder of small files cost as much as the guest's
 * reading them (200 files of ~10 KB: ~120 ms of the host's time, ~40 ms this way).
 */
interface OpenFile {
  stat: FileStat;
  path: Buffer;
  /** The open file; undefined for a hard link to a file copied already (its data came with that one). */
  fd?: number;
  /** Where the data written so far ends. */
  end?: number;
}

/**
 * `fetch` reads a file the walk deferred (a large one without holes, src/guest/c/inspect/content.c
 * flag b): those are copied after the walk, since the channel cannot carry a second
 * stream while the walk's waits to be read.
 */
export async function copyOut(
  events: AsyncIterable<WalkEvent>,
  source: Name,
  hostDir: string,
  opts: CopyOutOptions = {},
  fetch?: (path: Name) => Readable,
): Promise<CopyOutResult> {
  const run = await CopyRun.begin(asBytes(source), hostDir, fetch, opts.onProgress, new Set((opts.hide ?? []).map((h) => key(asBytes(h)))));
  return run.consume(events);
}

/** One copy: the stream's events in order, each entry checked against what came before. */
class CopyRun {
  /** The file whose data comes next. */
  private file: OpenFile | undefined;
  /** The entry being made: whether it goes in the caller's folder itself (there, EEXIST is the caller's file). */
  private at: { dest: Buffer; inHostDir: boolean } | undefined;
  private sawSource = false;
  private readonly deferred: OpenFile[] = [];
  /** The folders from the copied path down to the last one entered: chain[k] is at depth `base` + k. */
  private chain: Frame[] = [];
  /** The depth (components below `from`) of the copied path itself: 0 for "/", else 1. */
  private readonly base: number;

  private constructor(
    private readonly src: Buffer,
    /** The source's components, and the folder entries are placed relative to (its parent). */
    private readonly parts: Buffer[],
    private readonly from: Buffer,
    private readonly c: Copy,
    private readonly fetch: ((path: Name) => Readable) | undefined,
    private readonly onProgress: ((progress: CopyOutProgress) => void) | undefined,
    private readonly hide: ReadonlySet<string>,
  ) {
    this.base = parts.length ? 1 : 0;
  }

  /** Checks the destination; the copy is HOSTDIR/basename(source), or HOSTDIR itself for "/". */
  static async begin(
    src: Buffer,
    hostDir: string,
    fetch: ((path: Name) => Readable) | undefined,
    onProgress: ((progress: CopyOutProgress) => void) | undefined,
    hide: ReadonlySet<string>,
  ): Promise<CopyRun> {
    const parts = splitBytes(src);
    const from = parts.length
      ? Buffer.concat([Buffer.from('/'), ...parts.slice(0, -1).flatMap((p, i) => (i ? [Buffer.from('/'), p] : [p]))])
      : Buffer.from('/');
    const root = Buffer.from(hostDir);
    const into = await stat(hostDir).catch(() => undefined);
    if (!into?.isDirectory())
      throw new ApplianceError(
        into ? 'ENOTDIR' : 'ENOENT',
        `${hostDir} is not a folder${into ? '' : ' (there is nothing there)'}: copy-out copies into a folder that exists`,
      );
    if (!parts.length && (await readdir(hostDir)).length) throw new ApplianceError('EEXIST', `${hostDir} is not empty: copy "/" into an empty folder`);
    const result: CopyOutResult = {
      path: named(parts.length ? under(root, parts.slice(-1)) : root),
      files: 0,
      dirs: 0,
      symlinks: 0,
      hardlinks: 0,
      specials: 0,
      bytes: 0,
      skipped: [],
    };
    return new CopyRun(src, parts, from, { folders: [], byInode: new Map(), leftOut: new Set(), result, root }, fetch, onProgress, hide);
  }

  async consume(events: AsyncIterable<WalkEvent>): Promise<CopyOutResult> {
    try {
      for await (const e of events) await this.event(e);
      if (this.file) throw new ApplianceError('EPROTO', 'the copy stream ended inside a file');
      await this.fetchDeferred();
    } catch (err) {
      if (this.file?.fd !== undefined) {
        try {
          closeSync(this.file.fd);
        } catch {
          // The error being thrown is the one to tell.
        }
      }
      throw hostError(err, this.file?.path ?? this.at?.dest, this.at?.inHostDir ?? false);
    }
    // Folders last, deepest first: their modes and times, once nothing more is written in them.
    for (let i = this.c.folders.length - 1; i >= 0; i--) await settle(folderPath(this.c, i), this.c.folders[i]!.stat, false, this.c.result);
    return this.c.result;
  }

  private async event(e: WalkEvent): Promise<void> {
    if (e.kind === 'deferred') return this.defer();
    if (e.kind === 'data' || e.kind === 'end') {
      await this.data(e);
      if (e.kind === 'data' && this.file) this.progress(this.file.stat.path);
      return;
    }
    if (this.file) throw new ApplianceError('EPROTO', 'an entry inside a file in the copy stream');
    if (e.kind === 'error') return this.unreadable(e.error.path, e.error.errno);
    await this.entry(e.stat);
    this.progress(e.stat.path);
  }

  private progress(path: Name): void {
    if (!this.onProgress) return;
    const { files, dirs, symlinks, hardlinks, specials, bytes } = this.c.result;
    this.onProgress({ files, dirs, symlinks, hardlinks, specials, bytes, path });
  }

  private defer(): void {
    const file = this.file;
    // A file left out (a name listed twice, or in a folder left out): nothing to read apart.
    if (file && file.fd === undefined && this.fetch) return void (this.file = undefined);
    if (file?.fd === undefined || !this.fetch)
      throw new ApplianceError(
        'EPROTO',
        `the copy stream leaves a file${file ? ` (${pathText(file.path)})` : ''} to be read apart${this.fetch ? ' outside a file' : ', which was not asked'}`,
      );
    closeSync(file.fd);
    this.deferred.push({ ...file, fd: undefined });
    this.file = undefined;
  }

  private async data(e: Extract<WalkEvent, { kind: 'data' | 'end' }>): Promise<void> {
    const file = this.file;
    if (!file) throw new ApplianceError('EPROTO', 'file data outside a file in the copy stream');
    if (e.kind === 'end') {
      await finish(file, e.errno, this.c.result);
      this.file = undefined;
    } else if (file.fd !== undefined) {
      // The helper sends extents it found below st_size: data past it is a lie.
      if (e.offset + e.bytes.length > file.stat.size) throw new ApplianceError('EPROTO', `the copy stream sends data past the end of ${pathText(file.path)}`);
      writeSync(file.fd, e.bytes, 0, e.bytes.length, e.offset);
      file.end = Math.max(file.end ?? 0, e.offset + e.bytes.length);
      this.c.result.bytes += e.bytes.length;
    }
  }

  /** An entry the guest could not read: said and left out; the copied path itself is an error (nothing to copy). */
  private unreadable(path: Name, errno: number): void {
    if (asBytes(path).equals(this.src)) throw fileError(errno, path);
    this.c.result.skipped.push(`${pathText(asBytes(path))}: not copied: ${describeErrno(errno)}`);
  }

  private async entry(stat: FileStat): Promise<void> {
    const rel = below(asBytes(stat.path), this.from);
    const { parts, c, base } = this;
    // The copied path itself (once; its own name), or an entry in a folder of the chain.
    const isSource = rel !== undefined && rel.length === base;
    const parent = rel && !isSource ? this.parentOf(rel) : undefined;
    if (!rel || (base > 0 && !rel[0]?.equals(parts.at(-1)!)) || (isSource ? this.sawSource : !parent)) {
      throw new ApplianceError(
        'EPROTO',
        `the copy stream names ${pathText(asBytes(stat.path))}, which is not below ${pathText(this.src)} in a folder it sent before`,
      );
    }
    if (!rel.length && stat.type !== 'dir') throw new ApplianceError('EPROTO', `the copy stream sends "/" as a ${stat.type}: a filesystem's root is a folder`);
    this.sawSource ||= isSource;
    const dest = under(c.root, rel);
    this.at = { dest, inHostDir: isSource && base > 0 };
    const name = rel.at(-1) ?? Buffer.alloc(0);
    const placed = parent?.names.get(key(name));
    if (parent && (parent.folder < 0 || placed !== undefined)) {
      // In a folder left out, nothing is made. A corrupt folder may list one name twice (fsck
      // calls it a duplicate entry): the first is kept (a folder's entries go in it), the rest said.
      if (parent.folder >= 0)
        c.result.skipped.push(`${pathText(asBytes(stat.path))}: not copied: listed twice in its folder (the filesystem is corrupt): the first was copied`);
      if (stat.type === 'file') this.file = { stat, path: dest };
      // The guest sends a hard-linked file's data with its first name only: with this one.
      if (stat.type === 'file' && stat.nlink > 1 && !c.byInode.has(stat.ino)) c.leftOut.add(stat.ino);
      if (stat.type === 'dir') this.chain.push(placed ?? { name, folder: -1, names: new Map() });
      return;
    }
    const made = await place(stat, dest, parent?.folder ?? -1, name, c);
    parent?.names.set(key(name), made.frame ?? null);
    // A folder to leave empty: what the walk sends below it is passed over, as in a folder left out.
    if (made.frame) this.chain.push(stat.type === 'dir' && this.hide.has(key(asBytes(stat.path))) ? { name, folder: -1, names: new Map() } : made.frame);
    this.file = made.file;
  }

  /** The folder of the chain an entry at `rel` goes in (the chain is cut to it: the walk has left the deeper ones), or undefined. */
  private parentOf(rel: Buffer[]): Frame | undefined {
    const k = rel.length - 1 - this.base;
    if (k < 0 || k >= this.chain.length) return undefined;
    for (let i = 1; i <= k; i++) if (!this.chain[i]!.name.equals(rel[this.base + i - 1]!)) return undefined;
    this.chain.length = k + 1;
    return this.chain[k];
  }

  private async fetchDeferred(): Promise<void> {
    for (const d of this.deferred) {
      this.file = { ...d, fd: await reach(d.path, (p) => openSync(p, constants.O_WRONLY | constants.O_NOFOLLOW)) };
      this.at = { dest: d.path, inHostDir: false };
      await fetchInto(this.file, this.fetch!(d.stat.path), this.c.result, () => this.progress(d.stat.path));
      this.file = undefined;
    }
  }
}

/**
 * A host error as an ApplianceError with its errno as the code (a raw one would be a bug
 * to the CLI). EEXIST is the caller's file only for the entry made in the caller's folder
 * itself; anywhere else the folder is one this copy made: the stream named a path twice.
 */
function hostError(err: unknown, dest: Buffer | undefined, inHostDir: boolean): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (err instanceof ApplianceError || typeof code !== 'string' || !(code in osConstants.errno)) return err;
  const where = dest ? pathText(dest) : 'the destination';
  if (code === 'EEXIST' && !inHostDir) return new ApplianceError('EPROTO', `the copy stream names ${where} twice`, { cause: err });
  if (code === 'EEXIST') return new ApplianceError('EEXIST', `${where} exists already: copy-out makes every entry anew`, { cause: err });
  return new ApplianceError(code as ErrorCode, `cannot copy to ${where}: ${(err as Error).message}`, { cause: err });
}

/** A folder this copy made: its parent's index in `Copy.folders` (-1: in the caller's folder), its name, what it settles to. */
interface Folder {
  parent: number;
  name: Buffer;
  stat: FileStat;
}

/** A folder of the chain: its index in `Copy.folders` (-1: left out, so are its entries) and the names placed in it (a folder's own frame). */
interface Frame {
  name: Buffer;
  folder: number;
  names: Map<string, Frame | null>;
}

interface Copy {
  root: Buffer;
  /** Every folder made, each after its parent. */
  folders: Folder[];
  /** The first name of each inode with hard links: its folder and name. */
  byInode: Map<number, { folder: number; name: Buffer }>;
  /** Inodes with hard links whose data came with a name that was left out: their other names have none. */
  leftOut: Set<number>;
  result: CopyOutResult;
}

/** Where an entry of a folder this copy made is on the host (the folder itself without `name`). */
function folderPath(c: Copy, folder: number, name?: Buffer): Buffer {
  const parts = name ? [name] : [];
  for (let i = folder; i >= 0; i = c.folders[i]!.parent) parts.push(c.folders[i]!.name);
  return under(
    c.root,
    parts.reverse().filter((p) => p.length),
  );
}

/** Creates one entry in `folder`; a regular file is returned open for its data, a folder as a frame. */
async function place(stat: FileStat, dest: Buffer, folder: number, name: Buffer, c: Copy): Promise<{ file?: OpenFile; frame?: Frame }> {
  switch (stat.type) {
    case 'dir':
      // The destination folder itself ("/") exists already; anything else is made here.
      if (name.length) await reach(dest, (p) => mkdir(p, { mode: 0o700 }));
      c.folders.push({ parent: folder, name, stat });
      c.result.dirs++;
      return { frame: { name, folder: c.folders.length - 1, names: new Map() } };
    case 'symlink':
      if (asBytes(stat.target ?? '').includes(0))
        throw new ApplianceError('EPROTO', `the copy stream gives ${pathText(dest)} a symlink target with a NUL byte`);
      await reach(dest, (p) => symlink(asBytes(stat.target ?? ''), p));
      c.result.symlinks++;
      await settle(dest, stat, true, c.result);
      return {};
    case 'file': {
      // Beyond a safe integer no offset or size can be given to the host (nor held by it).
      if (!Number.isSafeInteger(stat.size)) throw new ApplianceError('EFBIG', `${pathText(dest)}: a file of ${stat.size} bytes is too large to copy`);
      const first = stat.nlink > 1 ? c.byInode.get(stat.ino) : undefined;
      if (!first && stat.nlink > 1 && c.leftOut.has(stat.ino)) {
        c.result.skipped.push(`${pathText(asBytes(stat.path))}: not copied: a hard link whose data came with a name that was left out`);
        return { file: { stat, path: dest } };
      }
      if (first) {
        await reach(folderPath(c, first.folder, first.name), (from) => reach(dest, (p) => link(from, p)));
        c.result.hardlinks++;
        return { file: { stat, path: dest } };
      }
      const fd = await reach(dest, (p) => openSync(p, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600));
      if (stat.nlink > 1) c.byInode.set(stat.ino, { folder, name });
      c.result.files++;
      return { file: { stat, path: dest, fd } };
    }
    default:
      await special(stat, dest, c.root, c.result);
      return {};
  }
}

/** A deferred file's data, read apart, written in order; one that cannot be read is said, as in the walk. */
async function fetchInto(file: OpenFile, data: Readable, result: CopyOutResult, progressed: () => void): Promise<void> {
  let at = 0;
  let errno = 0;
  try {
    for await (const chunk of data as AsyncIterable<Buffer>) {
      if (at + chunk.length > file.stat.size)
        throw new ApplianceError('EPROTO', `the guest sends more of ${pathText(file.path)} than its ${file.stat.size} bytes`);
      writeSync(file.fd!, chunk, 0, chunk.length, at);
      at += chunk.length;
      file.end = at;
      result.bytes += chunk.length;
      progressed();
    }
  } catch (err) {
    // The guest could not read the file (its errno): said, as the walk says it. Anything
    // else (a lie, a dead guest, an abort) ends the copy.
    const guestErrno = err instanceof ApplianceError ? (err as ApplianceError & { errno?: number }).errno : undefined;
    if (typeof guestErrno !== 'number' || (err instanceof ApplianceError && err.code === 'EPROTO')) throw err;
    errno = guestErrno;
  }
  await finish(file, errno || (at < file.stat.size ? osConstants.errno.EIO : 0), result);
}

async function finish(file: OpenFile, errno: number, result: CopyOutResult): Promise<void> {
  const fd = file.fd;
  if (fd === undefined) return;
  file.fd = undefined;
  try {
    // A hole at the end: the size covers what was not written.
    if ((file.end ?? 0) !== file.stat.size) ftruncateSync(fd, file.stat.size);
    if (errno) result.skipped.push(`${pathText(asBytes(file.stat.path))}: copied in part only: ${describeErrno(errno)}`);
    // Through the open file: no path walked again, two calls fewer a file than by path.
    await owned(file.stat, result, async (isRoot) => {
      if (isRoot) fchownSync(fd, file.stat.uid, file.stat.gid);
      fchmodSync(fd, isRoot ? file.stat.mode : file.stat.mode & ~0o6000);
      futimesSync(fd, hostTime(file.stat.atime), hostTime(file.stat.mtime));
    });
  } finally {
    closeSync(fd);
  }
}

/**
 * Devices and FIFOs: made with mknod and mkfifo where we may (devices need root); sockets
 * never. Node has no mknod, and a program's arguments are text: the node is made under a
 * temporary ASCII name in the destination folder (the caller's, given as text: a folder of
 * the image may have a name that is not), then linked to its byte-exact name (link, unlike
 * rename, refuses to replace anything there) and the temporary name removed.
 */
async function special(stat: FileStat, dest: Buffer, root: Buffer, result: CopyOutResult): Promise<void> {
  const isRoot = process.getuid?.() === 0;
  if (stat.type === 'socket' || ((stat.type === 'chardev' || stat.type === 'blockdev') && !isRoot)) {
    result.skipped.push(
      `${pathText(asBytes(stat.path))}: not copied: a ${stat.type}${stat.type === 'socket' ? ' (made by the program that listens on it)' : ', which only root can make'}`,
    );
    return;
  }
  const temp = Buffer.concat([root, Buffer.from(`/.appliance-node-${randomBytes(8).toString('hex')}`)]);
  const [cmd, ...args] =
    stat.type === 'fifo'
      ? ['mkfifo', pathText(temp)]
      : ['mknod', pathText(temp), stat.type === 'chardev' ? 'c' : 'b', String(stat.rdev!.major), String(stat.rdev!.minor)];
  await promisify(execFile)(cmd!, args);
  try {
    await reach(dest, (p) => link(temp, p));
  } finally {
    await unlink(temp);
  }
  result.specials++;
  await settle(dest, stat, false, result);
}

/**
 * A time (seconds) as Node's utimes keeps it: it takes a negative number for "now", so a
 * time before 1970 goes as a Date (to the millisecond, which is what a Date holds).
 */
function hostTime(seconds: number): number | Date {
  return seconds < 0 ? new Date(seconds * 1000) : seconds;
}

/**
 * Mode, owner (as root) and times, as the image has them. Not root, the copy is the
 * caller's: set-id bits are dropped (as tar does for a user), else a setuid file of the
 * image would run as the caller for anyone who can reach it.
 */
async function settle(path: Buffer, stat: FileStat, isLink: boolean, result: CopyOutResult): Promise<void> {
  await owned(stat, result, (isRoot) =>
    reach(path, async (p) => {
      if (isRoot) await lchown(p, stat.uid, stat.gid);
      if (!isLink) await chmod(p, isRoot ? stat.mode : stat.mode & ~0o6000);
      await (isLink ? lutimes : utimes)(p, hostTime(stat.atime), hostTime(stat.mtime));
    }),
  );
}

/** Runs `set` (settle's work, by path or by handle); what fails is said in `skipped`, not thrown. */
async function owned(stat: FileStat, result: CopyOutResult, set: (isRoot: boolean) => Promise<void>): Promise<void> {
  try {
    await set(process.getuid?.() === 0);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'an error';
    result.skipped.push(`${pathText(asBytes(stat.path))}: copied, but its owner, mode or times could not be set (${code})`);
  }
}
