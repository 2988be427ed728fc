/**
 * A mounted filesystem of an inspection: its files, read through the guest's helper with
 * paths resolved inside the filesystem (its symlinks never lead out of it). Paths are
 * absolute within the filesystem ("/etc/passwd"), as text or, for names that are not
 * UTF-8, as bytes; names come back the same way.
 */
import { constants as osConstants } from 'node:os';
import { PassThrough, type Readable } from 'node:stream';
import { ApplianceError, ImageFileError } from '../errors.js';
import { pathText } from '../printable.js';
import { copyOut, type CopyOutOptions, type CopyOutResult } from './copy-out.js';
import { fileError, NOT_REGULAR, type Helper } from './helper.js';
import type { FilesystemInfo } from './info.js';
import type { Lease } from './mounter.js';
import { stableInodes } from './mounts.js';
import type { Name } from './probe/types.js';
import type { FileStat, WalkError } from './records.js';

export interface ReadFileOptions {
  /** At most this many bytes (default 256 MiB): past it, ETOOBIG; use createReadStream for more. */
  maxBytes?: number;
  signal?: AbortSignal;
}

export interface WalkOptions {
  /** sha256 of each regular file's content, as `sha256` on its entry. */
  checksum?: boolean;
  /** How deep below the path (default: all the way). */
  depth?: number;
  /** Entries that cannot be read (a corrupt directory…): default, the walk goes on without them. */
  onError?: (error: WalkError) => void;
  /** After each entry and each error: how many so far, and the path just reached. */
  onProgress?: (progress: WalkProgress) => void;
  signal?: AbortSignal;
}

export interface WalkProgress {
  entries: number;
  errors: number;
  path: Name;
}

/** A count an option takes (a depth, a number of bytes): whole and not negative, or Infinity. */
function countOption(name: string, value: unknown): void {
  if (value !== Infinity && !(typeof value === 'number' && Number.isInteger(value) && value >= 0))
    throw new ApplianceError('EINVAL', `${name} ${typeof value === 'number' ? value : JSON.stringify(value)}: give a whole number from 0, or Infinity`);
}

/** Counts a walk's entries and errors for its onProgress. */
export function walkCounter(onProgress: WalkOptions['onProgress']): { entry(path: Name): void; error(path: Name): void } {
  const n = { entries: 0, errors: 0 };
  return {
    entry: (path) => onProgress?.({ ...n, entries: ++n.entries, path }),
    error: (path) => onProgress?.({ ...n, errors: ++n.errors, path }),
  };
}

const DEFAULT_MAX_BYTES = 256 << 20;

/** A path's last component, as text or bytes as the path is. */
function baseName(path: Name): Name {
  if (typeof path === 'string') return path.slice(path.lastIndexOf('/') + 1);
  return path.subarray(path.lastIndexOf(0x2f) + 1);
}

/**
 * A path from the filesystem's root, as every result names it: one slash between
 * components, a leading one added ("etc//x" is "/etc/x"), no "." components ("./etc/."
 * is "/etc/": a last "." asks for a folder, as a trailing slash does), and none at the end
 * unless `keep`: a file named with one is refused as the kernel refuses it (ENOTDIR), a
 * symlink followed. ".." stays: what it leads to depends on the symlinks on the way.
 * Text stays text.
 */
export function rootedPath(path: Name, trailing: 'keep' | 'drop' = 'drop'): Name {
  if (typeof path !== 'string' && !Buffer.isBuffer(path))
    throw new ApplianceError('EINVAL', `a path in an image is a string or a Buffer, not ${path === null ? 'null' : typeof path}`);
  const b = Buffer.from(path);
  const parts = b
    .toString('latin1')
    .split('/')
    .map((c, i, all) => (c === '.' ? (i === all.length - 1 ? '' : undefined) : c))
    .filter((c): c is string => c !== undefined);
  const text = `/${parts.filter(Boolean).join('/')}${parts.length > 1 && parts.at(-1) === '' && trailing === 'keep' && parts.some(Boolean) ? '/' : ''}`;
  const out = Buffer.from(text, 'latin1');
  if (out.equals(b)) return path;
  return typeof path === 'string' ? out.toString('utf8') : out;
}

/** Joins a directory path and a name, as bytes when either is. */
export function joinName(dir: Name, name: Name): Name {
  const sep = (typeof dir === 'string' ? dir : dir.toString('latin1')).endsWith('/') ? '' : '/';
  if (typeof dir === 'string' && typeof name === 'string') return `${dir}${sep}${name}`;
  return Buffer.concat([Buffer.from(dir), Buffer.from(sep), Buffer.from(name)]);
}

/** See MountedFilesystem.lineage. */
export interface Lineage {
  type: string;
  uuid?: string;
  writtenAt?: number;
  /** The image file (device and inode) and the filesystem's id in it: the same bytes wherever it is read. */
  source?: string;
}

/**
 * Whether a file of `a` and one of `b` with one inode number, size, mtime and ctime are the
 * same file untouched: only on clones of one filesystem (one UUID, inode numbers on disk)
 * that have gone apart since (one was written after: its superblock's write time differs).
 * Two images built apart from the same inputs (reproducible builds: one UUID, one time) are
 * not clones: their files' bytes may differ under the same metadata, so they are hashed.
 */
export function sameLineage(a: Lineage, b: Lineage): boolean {
  // One filesystem of one image file (read twice: `diff x.img x.img`): every file is its own twin.
  if (a.source !== undefined && a.source === b.source) return true;
  return (
    stableInodes(a.type) &&
    a.type === b.type &&
    a.uuid !== undefined &&
    a.uuid === b.uuid &&
    a.writtenAt !== undefined &&
    b.writtenAt !== undefined &&
    a.writtenAt !== b.writtenAt
  );
}

/** One filesystem of an inspected image, read-only: from Inspection.mount() or locate(). */
export class MountedFilesystem {
  /** @internal Made by an Inspection. */
  constructor(
    private readonly helper: Helper,
    /** What the filesystem is (id, type, label, UUID, size…). */
    readonly info: FilesystemInfo,
    /**
     * Where the guest has it mounted, held for the time of one operation: a btrfs clone is
     * unmounted while its twin is read (mounter.ts), never during a read of its own.
     */
    private readonly access: () => Promise<Lease>,
    /** Why nothing can be read any more (the inspection was closed), if so: a call it cut short fails with that. */
    private readonly ended: () => Error | undefined = () => undefined,
    /** Where its bytes come from, and when its superblock was last written (ext): see lineage(). */
    private readonly origin: Omit<Lineage, 'type' | 'uuid'> = {},
  ) {}

  /** Runs `fn` with the filesystem mounted (at the folder it gets) and held. */
  private async use<T>(fn: (dir: string) => Promise<T>): Promise<T> {
    const lease = await this.access();
    try {
      return await fn(lease.dir);
    } catch (err) {
      throw this.ended() ?? err;
    } finally {
      lease.release();
    }
  }

  /** Metadata of `path`, following it if it is a symlink (inside the filesystem). */
  async stat(path: Name): Promise<FileStat> {
    path = rootedPath(path, 'keep');
    return this.use((dir) => this.helper.stat(dir, path, { follow: true }));
  }

  /** Metadata of `path` itself. */
  async lstat(path: Name): Promise<FileStat> {
    path = rootedPath(path, 'keep');
    return this.use((dir) => this.helper.stat(dir, path));
  }

  async readlink(path: Name): Promise<Name> {
    path = rootedPath(path);
    const st = await this.lstat(path);
    if (st.type !== 'symlink') throw new ImageFileError('EINVAL', `${pathText(path)}: EINVAL: not a symbolic link`, osConstants.errno.EINVAL, path);
    return st.target!;
  }

  /**
   * The names in a directory (not . and ..), in byte order, as Node's fs.readdir gives them
   * (a Buffer where a name is not UTF-8), an entry whose inode cannot be read (corrupt)
   * included, as readdir(3) lists it; with `{ withFileTypes: true }`, each entry's FileStat
   * instead (its type, mode, owner…, and its whole path), which such an entry fails.
   */
  readdir(path: Name): Promise<Name[]>;
  readdir(path: Name, opts: { withFileTypes: true }): Promise<FileStat[]>;
  async readdir(path: Name, opts: { withFileTypes?: boolean } = {}): Promise<Name[] | FileStat[]> {
    path = rootedPath(path);
    const { entries, unreadable } = await this.use(async (dir) => {
      // Read to the end (see Helper.stat), then judged.
      const found: FileStat[] = [];
      const errors: WalkError[] = [];
      for await (const e of this.helper.walk(dir, path, { depth: 1, follow: true })) {
        if (e.kind === 'error') errors.push(e.error);
        else if (e.kind === 'entry') found.push(e.stat);
      }
      const [self, ...out] = found;
      // Nothing of the folder itself: its own error.
      if (!self) throw fileError(errors[0]?.errno ?? osConstants.errno.EIO, errors[0]?.path ?? path);
      if (self.type !== 'dir') throw fileError(osConstants.errno.ENOTDIR, path);
      return { entries: out, unreadable: errors };
    });
    if (opts.withFileTypes) {
      if (unreadable.length) throw fileError(unreadable[0]!.errno, unreadable[0]!.path);
      return entries;
    }
    const names = [...entries.map((e) => baseName(e.path)), ...unreadable.map((e) => baseName(e.path))];
    return names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  }

  /**
   * `path` and everything below it, depth first, names in byte order, never leaving the
   * filesystem. A trailing slash follows `path` if it is a symlink (inside the filesystem),
   * as ls does; a file so named is ENOTDIR.
   */
  async *walk(path: Name = '/', opts: WalkOptions = {}): AsyncGenerator<FileStat> {
    const kept = Buffer.from(rootedPath(path, 'keep'));
    const follow = kept.length > 1 && kept.at(-1) === 0x2f;
    if (follow) await this.stat(path);
    path = rootedPath(path);
    const depth = opts.depth ?? Infinity;
    countOption('depth', depth);
    const lease = await this.access();
    const count = walkCounter(opts.onProgress);
    try {
      for await (const e of this.helper.walk(lease.dir, path, { depth, hash: opts.checksum, follow, signal: opts.signal })) {
        if (e.kind === 'entry') {
          count.entry(e.stat.path);
          yield e.stat;
        } else if (e.kind === 'error') {
          // The path itself: nothing to walk.
          if (Buffer.from(e.error.path).equals(Buffer.from(path))) throw fileError(e.error.errno, path);
          count.error(e.error.path);
          opts.onError?.(e.error);
        }
      }
    } catch (err) {
      throw this.ended() ?? err;
    } finally {
      lease.release();
    }
  }

  /**
   * What tells whether a file here and one of another filesystem with the same inode number,
   * size and times are one file untouched (diff): the type (inode numbers on disk:
   * mounts.ts stableInodes), the UUID, when the superblock was last written.
   */
  lineage(): Lineage {
    return { type: this.info.type, ...(this.info.uuid ? { uuid: this.info.uuid } : {}), ...this.origin };
  }

  /** The sha256 of a regular file's content (hex). */
  async checksum(path: Name): Promise<string> {
    path = rootedPath(path, 'keep');
    return this.use(async (dir) => {
      const st = await this.helper.stat(dir, path, { follow: true, hash: true });
      if (st.type === 'dir') throw fileError(osConstants.errno.EISDIR, path);
      if (st.type !== 'file')
        throw new ImageFileError(
          'EINVAL',
          `${pathText(path)}: EINVAL: a ${NOT_REGULAR[st.type] ?? st.type}, not a regular file`,
          osConstants.errno.EINVAL,
          path,
        );
      if (!st.sha256) throw fileError(osConstants.errno.EIO, path);
      return st.sha256;
    });
  }

  /** A regular file's content as a stream (errors: ENOENT, EISDIR… as the stream's error). */
  createReadStream(path: Name, opts: { signal?: AbortSignal } = {}): Readable {
    const out = new PassThrough();
    try {
      path = rootedPath(path, 'keep');
    } catch (err) {
      return out.destroy(err as Error);
    }
    // A reader that stops early ends the cat in the guest (and so frees the filesystem).
    const controller = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, controller.signal]) : controller.signal;
    out.on('close', () => controller.abort());
    // The stream exists at once; its data comes once the filesystem is mounted (a clone's turn).
    this.use((dir) => this.helper.catInto(dir, path, out, signal)).then(
      () => out.end(),
      (err: unknown) => out.destroy(err as Error),
    );
    return out;
  }

  /** A regular file's content, at most `maxBytes` (default 256 MiB). */
  async readFile(path: Name, opts: ReadFileOptions = {}): Promise<Buffer> {
    path = rootedPath(path, 'keep');
    const max = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    countOption('maxBytes', max);
    return this.use(async (dir) => {
      const controller = new AbortController();
      const signal = opts.signal ? AbortSignal.any([opts.signal, controller.signal]) : controller.signal;
      const { stream, done } = this.helper.cat(dir, path, signal);
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of stream) {
        size += (chunk as Buffer).length;
        if (size > max) {
          // What the guest still sends is dropped, not left queued: a paused stream would hold
          // the channel (every other call of this inspection) until the kill's grace ran out.
          stream.destroy();
          controller.abort();
          await done.catch(() => {});
          throw new ApplianceError('ETOOBIG', `${String(path)} is larger than ${max} bytes (maxBytes): read it with createReadStream`);
        }
        chunks.push(chunk as Buffer);
      }
      await done;
      return Buffer.concat(chunks);
    });
  }

  /**
   * Copies `path` (a file or a folder, recursively) into the host folder `hostDir`, as
   * virt-copy-out does: modes, times, symlinks, hard links and holes kept; owners too when
   * we run as root.
   */
  async copyOut(path: Name, hostDir: string, opts: CopyOutOptions = {}): Promise<CopyOutResult> {
    path = rootedPath(path);
    return this.use((dir) => {
      const events = this.helper.walk(dir, path, { depth: Infinity, content: true, deferBig: true, signal: opts.signal });
      return copyOut(events, path, hostDir, opts, (file) => this.helper.readWhole(dir, file, opts.signal));
    });
  }
}
