/**
 * What differs between two filesystems, or two OSes' trees of them (virt-diff): files
 * added, removed, and changed, with which attributes. Content is compared by sha256,
 * computed in the guest.
 */
import { ApplianceError, ImageFileError } from '../errors.js';
import { sameLineage } from './filesystem.js';
import { treeOrder, type FileTree } from './os-tree.js';
import type { FileStat, WalkError } from './records.js';

export type Attribute = 'type' | 'mode' | 'uid' | 'gid' | 'nlink' | 'size' | 'content' | 'target' | 'rdev' | 'mtime';

export interface DiffEntry {
  change: 'added' | 'removed' | 'changed';
  path: FileStat['path'];
  /** For a change: the attributes that differ. */
  attributes?: Attribute[];
  /** The entry in the first filesystem (removed, changed) and in the second (added, changed). */
  a?: FileStat;
  b?: FileStat;
}

export interface DiffOptions {
  /** Compare modification times too (off by default, as in virt-diff: copies differ in them for nothing). */
  times?: boolean;
  /** Where to start in both (default "/"). */
  path?: string;
  /**
   * Which files' contents are hashed (sha256, in the guest). 'changed' (default): files of
   * equal size whose inode is not the same unchanged one (inode number, mtime and ctime all
   * equal: a clone's untouched file, told only between clones that went apart, as the
   * trees' `lineage` says: filesystem.ts sameLineage); 'all': every file, on both sides.
   */
  checksum?: 'changed' | 'all';
  /**
   * What could not be read on either side (a corrupt folder, a file whose content cannot be
   * hashed): compared as far as it was read, each told here. Without it, as a walk's, left out.
   */
  onError?: (error: DiffError) => void;
  signal?: AbortSignal;
}

/** An entry of side `a` or `b` that could not be read, and why (the guest's errno). */
export interface DiffError extends WalkError {
  side: 'a' | 'b';
}

/** Past this many files to hash one by one, both trees are walked again with every file's sha256. */
const ONE_BY_ONE = 64;

const keyOf = (s: FileStat) => Buffer.from(s.path).toString('latin1');

function differences(a: FileStat, b: FileStat, times: boolean): Attribute[] {
  const out: Attribute[] = [];
  if (a.type !== b.type) return ['type'];
  if (a.mode !== b.mode) out.push('mode');
  if (a.uid !== b.uid) out.push('uid');
  if (a.gid !== b.gid) out.push('gid');
  // Hard links made or undone (a folder's count, which its subfolders make, is left out, as virt-diff leaves it without --dir-links).
  if (a.type !== 'dir' && a.nlink !== b.nlink) out.push('nlink');
  // Files of different sizes differ in content too (neither was hashed).
  if (a.type === 'file' && a.size !== b.size) out.push('size', 'content');
  // A side not hashed (its content unreadable, said by onError) is not known to differ.
  else if (a.type === 'file' && a.sha256 && b.sha256 && a.sha256 !== b.sha256) out.push('content');
  if (a.type === 'symlink' && !Buffer.from(a.target ?? '').equals(Buffer.from(b.target ?? ''))) out.push('target');
  if ((a.rdev || b.rdev) && (a.rdev?.major !== b.rdev?.major || a.rdev?.minor !== b.rdev?.minor)) out.push('rdev');
  if (times && Math.trunc(a.mtime) !== Math.trunc(b.mtime)) out.push('mtime');
  return out;
}

/** Everything added, removed or changed from `a` to `b`, in tree order (a folder's entries right after it, names in byte order), as virt-diff prints it and ls -R lists. */
export async function diff(a: FileTree, b: FileTree, opts: DiffOptions = {}): Promise<DiffEntry[]> {
  for (const [name, t] of [
    ['a', a],
    ['b', b],
  ] as const)
    if (typeof (t as Partial<FileTree> | undefined)?.walk !== 'function')
      throw new ApplianceError('EINVAL', `diff's ${name} is not a tree of files: give a MountedFilesystem (mount(), locate()) or an Inspection's tree()`);
  if (opts.checksum !== undefined && opts.checksum !== 'changed' && opts.checksum !== 'all')
    throw new ApplianceError('EINVAL', `checksum ${JSON.stringify(opts.checksum)}: give 'changed' or 'all'`);
  const path = opts.path ?? '/';
  const all = opts.checksum === 'all';
  // Each walk's errors are kept with it: a tree walked again replaces them.
  let before = await tree(a, 'a', path, all, opts.signal);
  let after = await tree(b, 'b', path, all, opts.signal);
  const unread: DiffError[] = [];
  if (!all) {
    const unsure = [...after.entries.values()].filter((s) => {
      const old = before.entries.get(keyOf(s));
      const [x, y] = [old && a.lineage?.(old.path), b.lineage?.(s.path)];
      return mayDiffer(old, s, x !== undefined && y !== undefined && sameLineage(x, y));
    });
    if (unsure.length > ONE_BY_ONE) {
      before = await tree(a, 'a', path, true, opts.signal);
      after = await tree(b, 'b', path, true, opts.signal);
    } else {
      for (const s of unsure) {
        const old = before.entries.get(keyOf(s))!;
        [s.sha256, old.sha256] = [await hashOf(b, s, 'b', unread), await hashOf(a, old, 'a', unread)];
      }
    }
  }
  for (const e of [...before.errors, ...after.errors, ...unread]) opts.onError?.(e);
  return compare(before, after, opts.times ?? false);
}

type Side = Awaited<ReturnType<typeof tree>>;

/** Whether `s`, or a folder above it, is among what a side could not read (then it is not known to be missing there). */
function unreadIn(side: Side, s: FileStat): boolean {
  const k = keyOf(s);
  for (let i = k.length; i > 0; i = k.lastIndexOf('/', i - 1)) if (side.unread.has(k.slice(0, i))) return true;
  return side.unread.has('/');
}

function compare(a: Side, b: Side, times: boolean): DiffEntry[] {
  const [before, after] = [a.entries, b.entries];
  const out: DiffEntry[] = [];
  for (const [k, s] of after) {
    const old = before.get(k);
    if (!old) {
      if (!unreadIn(a, s)) out.push({ change: 'added', path: s.path, b: s });
    } else {
      const attributes = differences(old, s, times);
      if (attributes.length) out.push({ change: 'changed', path: s.path, attributes, a: old, b: s });
    }
  }
  for (const [k, s] of before) if (!after.has(k) && !unreadIn(b, s)) out.push({ change: 'removed', path: s.path, a: s });
  return out.sort((x, y) => treeOrder(Buffer.from(x.path), Buffer.from(y.path)));
}

async function tree(fs: FileTree, side: 'a' | 'b', path: string, checksum: boolean, signal?: AbortSignal) {
  const entries = new Map<string, FileStat>();
  const errors: DiffError[] = [];
  for await (const s of fs.walk(path, { checksum, signal, onError: (e) => errors.push({ ...e, side }) })) {
    entries.set(keyOf(s), s);
  }
  return { entries, errors, unread: new Set(errors.map((e) => Buffer.from(e.path).toString('latin1'))) };
}

/** A file's sha256, or undefined with the reason in `unread`. */
async function hashOf(fs: FileTree, s: FileStat, side: 'a' | 'b', unread: DiffError[]): Promise<string | undefined> {
  try {
    return await fs.checksum(s.path);
  } catch (err) {
    if (!(err instanceof ImageFileError)) throw err;
    unread.push({ side, path: s.path, errno: err.errno });
    return undefined;
  }
}

/**
 * Whether two regular files of one path may differ in content though their sizes agree:
 * not the same inode untouched, which only clones gone apart (`clones`: sameLineage) can tell.
 */
function mayDiffer(a: FileStat | undefined, b: FileStat, clones: boolean): boolean {
  return a?.type === 'file' && b.type === 'file' && a.size === b.size && (!clones || a.ino !== b.ino || a.mtime !== b.mtime || a.ctime !== b.ctime);
}
