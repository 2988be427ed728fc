import { accessSync, constants, lstatSync, readlinkSync, type Stats } from 'node:fs';
import { posix } from 'node:path';
import { ApplianceError } from '../errors.js';
import type { Entry } from '../formats/entry.js';
import { entryFromStat } from '../host/stat.js';

/** ld.so gives up after 40 symlinks too; a loop on the host must not hang the build. */
const MAX_SYMLINK_HOPS = 40;

/** `/usr/bin` → `usr/bin`: entry paths are relative, '' is the root. */
export function guestKey(absPath: string): string {
  return posix.normalize(absPath).replace(/^\/+/, '').replace(/\/+$/, '');
}

export type AddResult = 'added' | 'missing' | 'unreadable';

/**
 * The root image's file list as it is assembled: host paths keep their place and
 * metadata, and every symlink met on the way (Debian 12's /bin -> usr/bin, a
 * library's soname link) is kept *and* followed, so that the path resolves in the
 * guest as it does on the host. Also records the lstat of every host path used,
 * which is what the cache key is computed from.
 */
export class FileList {
  /** Guest path (relative, '' = root) → entry. */
  readonly entries = new Map<string, Entry>();
  /** Host path → its lstat, for every host path an entry came from. */
  readonly sources = new Map<string, Stats>();
  /** Guest path → the host path it mirrors; entries not in it were made up (mount points, the agent). */
  readonly hostOf = new Map<string, string>();
  /** One line per host file left out because it could not be read. */
  readonly skipped: string[] = [];
  private readonly lstatCache = new Map<string, Stats | 'missing' | 'unreadable'>();

  constructor(private readonly warn: (msg: string) => void = () => {}) {}

  /** lstat, remembered: package lists and library closures name the same folders thousands of times. */
  lstat(path: string): Stats | 'missing' | 'unreadable' {
    let st = this.lstatCache.get(path);
    if (st === undefined) {
      try {
        st = lstatSync(path);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') st = 'missing';
        else {
          this.skip(path, code ?? String(err));
          st = 'unreadable';
        }
      }
      this.lstatCache.set(path, st);
    }
    return st;
  }

  /** Records a host file left out, with one warning for it. */
  skip(path: string, why: string): void {
    const line = `${path}: ${why}`;
    if (this.skipped.includes(line)) return;
    this.skipped.push(line);
    this.warn(`skipping unreadable host file ${path} (${why})`);
  }

  /** Adds an entry taken from a host path (already lstat'ed) at `guestPath`. */
  private put(guestPath: string, hostPath: string, st: Stats): void {
    if (this.entries.has(guestPath)) return;
    this.entries.set(guestPath, entryFromStat(guestPath, hostPath, st));
    this.sources.set(hostPath, st);
    this.hostOf.set(guestPath, hostPath);
  }

  /**
   * Adds the host path `absPath` at the same place in the image, with its parent
   * folders, and every symlink along the way together with what it points to.
   */
  addHostPath(absPath: string): AddResult {
    this.addRoot();
    return this.walk(posix.normalize(absPath), 0);
  }

  private addRoot(): void {
    if (this.entries.has('')) return;
    const st = this.lstat('/');
    if (typeof st !== 'string') this.put('', '/', st);
  }

  private walk(path: string, hops: number): AddResult {
    if (hops > MAX_SYMLINK_HOPS) {
      this.skip(path, 'too many levels of symbolic links');
      return 'unreadable';
    }
    const parts = path.split('/').filter(Boolean);
    let cur = '';
    for (let i = 0; i < parts.length; i++) {
      const next = `${cur}/${parts[i]}`;
      const st = this.lstat(next);
      if (typeof st === 'string') return st;
      if (st.isFile() && !this.readable(next)) return 'unreadable';
      // `next` is built from a normalized path: its guest key is itself without the '/'.
      this.put(next.slice(1), next, st);
      if (st.isSymbolicLink()) {
        const target = readlinkSync(next);
        const resolved = posix.resolve(cur || '/', target);
        const rest = parts.slice(i + 1).join('/');
        return this.walk(rest ? `${resolved}/${rest}` : resolved, hops + 1);
      }
      cur = next;
    }
    return 'added';
  }

  /** Regular files must be readable now, or the image writer would fail halfway. */
  private readable(path: string): boolean {
    try {
      accessSync(path, constants.R_OK);
      return true;
    } catch (err) {
      this.skip(path, (err as NodeJS.ErrnoException).code ?? String(err));
      return false;
    }
  }

  /**
   * Adds an entry that does not mirror a host path (a mount point, the agent, an
   * --include with another guest path). Its parent folders must already resolve in
   * the image, through the image's own symlinks; missing ones are created 0755.
   * Replaces an existing entry at that path: what the caller asks for wins.
   */
  addEntry(entry: Entry, hostPath?: string, hostStat?: Stats): void {
    this.addRoot();
    const guestPath = this.resolveGuestParent(String(entry.path), entry.mtime);
    this.entries.set(guestPath, { ...entry, path: guestPath });
    if (hostPath && hostStat) {
      this.sources.set(hostPath, hostStat);
      this.hostOf.set(guestPath, hostPath);
    } else {
      this.hostOf.delete(guestPath);
    }
  }

  /** Where `guestPath` lands once the symlinks already in the image are followed for its parents. */
  resolveGuestParent(guestPath: string, mtime: number, hops = 0): string {
    const parts = guestKey(guestPath).split('/').filter(Boolean);
    let cur = '';
    for (let i = 0; i < parts.length - 1; i++) {
      const next = cur ? `${cur}/${parts[i]}` : parts[i]!;
      const existing = this.entries.get(next);
      if (existing?.type === 'symlink' && hops < MAX_SYMLINK_HOPS) {
        const resolved = guestKey(posix.resolve(`/${cur}`, String(existing.target)));
        return this.resolveGuestParent([resolved, ...parts.slice(i + 1)].join('/'), mtime, hops + 1);
      }
      if (!existing) this.entries.set(next, { path: next, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime });
      else if (existing.type !== 'dir') {
        throw new ApplianceError('EGUESTPATH', `/${next} is a ${existing.type} in the image, so /${guestPath} cannot go under it: choose another guest path`);
      }
      cur = next;
    }
    return parts.join('/');
  }

  /**
   * Adds one host file or folder (not its contents) at another place in the image,
   * for --include; unreadable files are skipped like everywhere else.
   */
  addHostAt(hostPath: string, guestPath: string, st: Stats): void {
    if (st.isFile() && !this.readable(hostPath)) return;
    this.addEntry(entryFromStat(guestPath, hostPath, st), hostPath, st);
  }

  /** The latest mtime of anything but a folder: the time the image gives its folders. */
  latestFileTime(): number {
    let latest = 0;
    for (const e of this.entries.values()) if (e.type !== 'dir' && e.mtime > latest) latest = e.mtime;
    return latest;
  }

  /**
   * Gives every folder the time `epoch`. A host folder's mtime changes whenever any
   * package adds a file next to ours; keeping it would make every installation change
   * the image (and miss the cache) for nothing the appliance uses.
   */
  setFolderTimes(epoch: number): void {
    for (const e of this.entries.values()) if (e.type === 'dir') e.mtime = epoch;
  }

  /** Entries sorted by path, so the same inputs give the same list whatever the discovery order. */
  sorted(): Entry[] {
    return [...this.entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }
}
