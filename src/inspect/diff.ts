/**
 * What differs between two filesystems (virt-diff): files added, removed, and changed,
 * with which attributes. Content is compared by sha256, computed in the guest.
 */
import type { MountedFilesystem } from './filesystem.js';
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
  signal?: AbortSignal;
}

const keyOf = (s: FileStat) => Buffer.from(s.path).toString('latin1');

function differences(a: FileStat, b: FileStat, times: boolean): Attribute[] {
  const out: Attribute[] = [];
  if (a.type !== b.type) return ['type'];
  if (a.mode !== b.mode) out.push('mode');
  if (a.uid !== b.uid) out.push('uid');
  if (a.gid !== b.gid) out.push('gid');
  if (a.type === 'file' && a.size !== b.size) out.push('size');
  if (a.type === 'file' && a.sha256 !== b.sha256) out.push('content');
  if (a.type === 'symlink' && !Buffer.from(a.target ?? '').equals(Buffer.from(b.target ?? ''))) out.push('target');
  if ((a.rdev || b.rdev) && (a.rdev?.major !== b.rdev?.major || a.rdev?.minor !== b.rdev?.minor)) out.push('rdev');
  if (times && Math.trunc(a.mtime) !== Math.trunc(b.mtime)) out.push('mtime');
  return out;
}

/** Everything added, removed or changed from `a` to `b`, in `b`'s walk order (removals where they were in `a`'s). */
export async function diff(a: MountedFilesystem, b: MountedFilesystem, opts: DiffOptions = {}): Promise<DiffEntry[]> {
  const path = opts.path ?? '/';
  const before = new Map<string, FileStat>();
  for await (const s of a.walk(path, { checksum: true, signal: opts.signal })) before.set(keyOf(s), s);
  const out: DiffEntry[] = [];
  for await (const s of b.walk(path, { checksum: true, signal: opts.signal })) {
    const old = before.get(keyOf(s));
    before.delete(keyOf(s));
    if (!old) out.push({ change: 'added', path: s.path, b: s });
    else {
      const attributes = differences(old, s, opts.times ?? false);
      if (attributes.length) out.push({ change: 'changed', path: s.path, attributes, a: old, b: s });
    }
  }
  for (const s of before.values()) out.push({ change: 'removed', path: s.path, a: s });
  return out;
}
