import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { replaceAtomically } from '../files.js';
import { acquireLock, pidAlive } from './lock.js';

/**
 * Layout of a cache folder:
 *   entries/KEY/   complete appliances, renamed into place whole (never written in place)
 *   tmp/           builds and snapshots in progress, entries and snapshots being deleted: LABEL.PID.RANDOM
 *   locks/KEY.lock one builder per key
 *   resolve/ID.json what a set of build options resolved to last time (see build/resolve.ts)
 *   snapshots/KEY/ booted kernels saved by the launcher (see qemu/snapshot.ts)
 */
export const layout = {
  entries: (root: string) => join(root, 'entries'),
  entry: (root: string, key: string) => join(root, 'entries', key),
  tmp: (root: string) => join(root, 'tmp'),
  lock: (root: string, key: string) => join(root, 'locks', `${key}.lock`),
  records: (root: string) => join(root, 'resolve'),
  record: (root: string, id: string) => join(root, 'resolve', `${id}.json`),
  snapshots: (root: string) => join(root, 'snapshots'),
};

/** The file whose presence marks an entry as complete (written last, before the rename). */
export const MANIFEST = 'manifest.json';

/** True when the entry exists: entries only ever appear whole, by rename. */
export function entryExists(root: string, key: string): boolean {
  return existsSync(join(layout.entry(root, key), MANIFEST));
}

/** Marks an entry as just used, for LRU eviction (its folder's mtime is its last use). */
export async function touchEntry(root: string, key: string): Promise<void> {
  const now = new Date();
  await utimes(layout.entry(root, key), now, now).catch(() => {});
}

export interface CacheEntryResult {
  dir: string;
  /** False when this call built the entry. */
  hit: boolean;
}

export interface WithCacheEntryOptions {
  /** Said once when another process is building the same entry and we wait for it. */
  onWait?: (holderPid: number) => void;
  pollMs?: number;
}

/**
 * The cache entry for `key`, built by `build(tmpDir)` if it does not exist. Concurrent
 * callers with the same key build it once: one takes the lock and builds, the others
 * wait and use its result. The build writes into a private temporary folder that is
 * renamed to entries/KEY only when `build` has returned, so a build killed at any
 * moment leaves nothing that looks like an entry, only a temporary folder the next
 * build of the cache removes.
 */
export async function withCacheEntry(
  root: string,
  key: string,
  build: (tmpDir: string) => Promise<void>,
  opts: WithCacheEntryOptions = {},
): Promise<CacheEntryResult> {
  const dir = layout.entry(root, key);
  if (entryExists(root, key)) return { dir, hit: true };
  await Promise.all([layout.entries(root), layout.tmp(root), join(root, 'locks')].map((d) => mkdir(d, { recursive: true, mode: 0o700 })));

  const lock = await acquireLock(layout.lock(root, key), {
    done: async () => entryExists(root, key),
    onWait: opts.onWait,
    pollMs: opts.pollMs,
  });
  if (!lock) return { dir, hit: true };
  try {
    if (entryExists(root, key)) return { dir, hit: true };
    await removeAbandonedTemps(root);
    const tmp = await mkdtemp(join(layout.tmp(root), `${key}.${process.pid}.`));
    try {
      await build(tmp);
      await rename(tmp, dir);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      // Someone broke our lock as stale (we paused that long) and finished first: theirs is as good.
      const code = (err as NodeJS.ErrnoException).code;
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && entryExists(root, key)) return { dir, hit: true };
      throw err;
    }
    return { dir, hit: false };
  } finally {
    await lock.release();
  }
}

/**
 * Deletes a folder of the cache so that no reader ever sees half of it: it is first
 * renamed into tmp/ as LABEL.PID.RANDOM (atomic; a process still using a file in it keeps
 * it), then deleted at leisure. A folder already gone is not an error.
 */
export async function removeWhole(root: string, path: string, label: string): Promise<void> {
  const doomed = await tempPath(root, label);
  try {
    await rename(path, doomed);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  await rm(doomed, { recursive: true, force: true });
}

/** A fresh name in tmp/, LABEL.PID.RANDOM, which removeAbandonedTemps deletes once this process is gone. */
export async function tempPath(root: string, label: string): Promise<string> {
  await mkdir(layout.tmp(root), { recursive: true, mode: 0o700 });
  return join(layout.tmp(root), `${label}.${process.pid}.${Math.random().toString(36).slice(2)}`);
}

/**
 * Deletes temporary folders whose creator is dead: builds killed midway. Names are
 * KEY.PID.RANDOM; the pid's process start time is not recorded in the name, so a
 * folder is also deleted once it is a day old (a reused pid keeping it alive).
 */
export async function removeAbandonedTemps(root: string, maxAgeMs = 24 * 3600_000): Promise<number> {
  let names: string[];
  try {
    names = await readdir(layout.tmp(root));
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    const pid = Number(name.split('.')[1]);
    const path = join(layout.tmp(root), name);
    const old = await stat(path).then(
      (st) => Date.now() - st.mtimeMs > maxAgeMs,
      () => false,
    );
    if (!old && Number.isInteger(pid) && pid > 0 && pidAlive(pid)) continue;
    await rm(path, { recursive: true, force: true });
    removed++;
  }
  return removed;
}

/** Reads a small JSON record, undefined if absent or unreadable (a record is only a shortcut). */
export async function readRecord<T>(root: string, id: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(layout.record(root, id), 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Writes a record atomically, so a reader sees the old one or the new one, never half of one. */
export async function writeRecord(root: string, id: string, value: unknown): Promise<void> {
  await mkdir(layout.records(root), { recursive: true, mode: 0o700 });
  const path = layout.record(root, id);
  await replaceAtomically(path, (tmp) => writeFile(tmp, JSON.stringify(value)));
}
