/**
 * A mounted filesystem of an inspection: its files, read through the guest's helper with
 * paths resolved inside the filesystem (its symlinks never lead out of it). Paths are
 * absolute within the filesystem ("/etc/passwd"), as text or, for names that are not
 * UTF-8, as bytes; names come back the same way.
 */
import { constants as osConstants } from 'node:os';
import { PassThrough, type Readable } from 'node:stream';
import { ApplianceError } from '../errors.js';
import { copyOut, type CopyOutOptions, type CopyOutResult } from './copy-out.js';
import { fileError, type Helper } from './helper.js';
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

/** Joins a directory path and a name, as bytes when either is. */
export function joinName(dir: Name, name: Name): Name {
  const sep = (typeof dir === 'string' ? dir : dir.toString('latin1')).endsWith('/') ? '' : '/';
  if (typeof dir === 'string' && typeof name === 'string') return `${dir}${sep}${name}`;
  return Buffer.concat([Buffer.from(dir), Buffer.from(sep), Buffer.from(name)]);
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
  stat(path: Name): Promise<FileStat> {
    return this.use((dir) => this.helper.stat(dir, path, { follow: true }));
  }

  /** Metadata of `path` itself. */
  lstat(path: Name): Promise<FileStat> {
    return this.use((dir) => this.helper.stat(dir, path));
  }

  async readlink(path: Name): Promise<Name> {
    const st = await this.lstat(path);
    if (st.type !== 'symlink') throw new ApplianceError('EINVAL', `${String(path)} is not a symbolic link`);
    return st.target!;
  }

  /**
   * The names in a directory (not . and ..), in byte order, as Node's fs.readdir gives them
   * (a Buffer where a name is not UTF-8); with `{ withFileTypes: true }`, each entry's
   * FileStat instead (its type, mode, owner…, and its whole path).
   */
  readdir(path: Name): Promise<Name[]>;
  readdir(path: Name, opts: { withFileTypes: true }): Promise<FileStat[]>;
  async readdir(path: Name, opts: { withFileTypes?: boolean } = {}): Promise<Name[] | FileStat[]> {
    const entries = await this.use(async (dir) => {
      // Read to the end (see Helper.stat), then judged.
      const found: FileStat[] = [];
      let error: WalkError | undefined;
      for await (const e of this.helper.walk(dir, path, { depth: 1, follow: true })) {
        if (e.kind === 'error') error ??= e.error;
        else if (e.kind === 'entry') found.push(e.stat);
      }
      if (error) throw fileError(error.errno, error.path);
      const [self, ...out] = found;
      if (self && self.type !== 'dir') throw new ApplianceError('ENOTDIR', `${String(path)} is not a directory`);
      return out;
    });
    return opts.withFileTypes ? entries : entries.map((e) => baseName(e.path));
  }

  /** `path` and everything below it, depth first, names in byte order, never leaving the filesystem. */
  async *walk(path: Name = '/', opts: WalkOptions = {}): AsyncGenerator<FileStat> {
    const depth = opts.depth ?? Infinity;
    const lease = await this.access();
    const count = walkCounter(opts.onProgress);
    try {
      for await (const e of this.helper.walk(lease.dir, path, { depth, hash: opts.checksum, signal: opts.signal })) {
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

  /** Whether its inode numbers are on disk, the same in every mount (mounts.ts stableInodes). */
  stableInodes(): boolean {
    return stableInodes(this.info.type);
  }

  /** The sha256 of a regular file's content (hex). */
  checksum(path: Name): Promise<string> {
    return this.use(async (dir) => {
      const st = await this.helper.stat(dir, path, { follow: true, hash: true });
      if (st.type !== 'file') throw new ApplianceError(st.type === 'dir' ? 'EISDIR' : 'EINVAL', `${String(path)} is not a regular file`);
      if (!st.sha256) throw fileError(osConstants.errno.EIO, path);
      return st.sha256;
    });
  }

  /** A regular file's content as a stream (errors: ENOENT, EISDIR… as the stream's error). */
  createReadStream(path: Name, opts: { signal?: AbortSignal } = {}): Readable {
    const out = new PassThrough();
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
  readFile(path: Name, opts: ReadFileOptions = {}): Promise<Buffer> {
    return this.use(async (dir) => {
      const max = opts.maxBytes ?? DEFAULT_MAX_BYTES;
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
  copyOut(path: Name, hostDir: string, opts: CopyOutOptions = {}): Promise<CopyOutResult> {
    return this.use((dir) => {
      const events = this.helper.walk(dir, path, { depth: Infinity, content: true, deferBig: true, signal: opts.signal });
      return copyOut(events, path, hostDir, opts, (file) => this.helper.readWhole(dir, file, opts.signal));
    });
  }
}
