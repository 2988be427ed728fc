/**
 * What differs between two filesystems, or two OSes' trees of them (virt-diff): files
 * added, removed, and changed, with which attributes. Content is compared by sha256,
 * computed in the guest.
 */
import type { FileTree } from './os-tree.js';
import type { FileStat } from './records.js';

export type Attribute = 'type' | 'mode' | 'uid' | 'gid' | 'size' | 'content' | 'target' | 'rdev' | 'mtime';

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
   * equal: a clone's untouched file); 'all': every file, on both sides.
   */
  checksum?: 'changed' | 'all';
  signal?: AbortSignal;
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
  // Files of different sizes differ in content too (neither was hashed).
  if (a.type === 'file' && a.size !== b.size) out.push('size', 'content');
  else if (a.type === 'file' && a.sha256 !== b.sha256) out.push('content');
  if (a.type === 'symlink' && !Buffer.from(a.target ?? '').equals(Buffer.from(b.target ?? ''))) out.push('target');
  if ((a.rdev || b.rdev) && (a.rdev?.major !== b.rdev?.major || a.rdev?.minor !== b.rdev?.minor)) out.push('rdev');
  if (times && Math.trunc(a.mtime) !== Math.trunc(b.mtime)) out.push('mtime');
  return out;
}

/** Everything added, removed or changed from `a` to `b`, sorted by path (byte order), as virt-diff prints it. */
export async function diff(a: FileTree, b: FileTree, opts: DiffOptions = {}): Promise<DiffEntry[]> {
  const path = opts.path ?? '/';
  const all = opts.checksum === 'all';
  let before = await tree(a, path, all, opts.signal);
  let after = await tree(b, path, all, opts.signal);
  if (!all) {
    const unsure = [...after.values()].filter((s) => mayDiffer(before.get(keyOf(s)), s));
    if (unsure.length > ONE_BY_ONE) {
      before = await tree(a, path, true, opts.signal);
      after = await tree(b, path, true, opts.signal);
    } else {
      for (const s of unsure) {
        s.sha256 = await b.checksum(s.path);
        before.get(keyOf(s))!.sha256 = await a.checksum(s.path);
      }
    }
  }
  const out: DiffEntry[] = [];
  for (const [k, s] of after) {
    const old = before.get(k);
    if (!old) out.push({ change: 'added', path: s.path, b: s });
    else {
      const attributes = differences(old, s, opts.times ?? false);
      if (attributes.length) out.push({ change: 'changed', path: s.path, attributes, a: old, b: s });
    }
  }
  for (const [k, s] of before) if (!after.has(k)) out.push({ change: 'removed', path: s.path, a: s });
  return out.sort((x, y) => Buffer.compare(Buffer.from(x.path), Buffer.from(y.path)));
}

async function tree(fs: FileTree, path: string, checksum: boolean, signal?: AbortSignal): Promise<Map<string, FileStat>> {
  const out = new Map<string, FileStat>();
  for await (const s of fs.walk(path, { checksum, signal })) out.set(keyOf(s), s);
  return out;
}

/** Whether two regular files of one path may differ in content though their sizes agree: not the same inode untouched. */
function mayDiffer(a: FileStat | undefined, b: FileStat): boolean {
  return a?.type === 'file' && b.type === 'file' && a.size === b.size && (a.ino !== b.ino || a.mtime !== b.mtime || a.ctime !== b.ctime);
}
