/** Making a cache entry once whoever asks at the same time, and removing one, each whole. */
import { mkdir, rm } from 'node:fs/promises';
import { entryExists } from './entries.js';
import { layout } from './layout.js';
import { acquireLock } from './lock.js';
import { putInPlace, removeAbandonedTemps, removeWhole, tempPath } from './temp.js';

/** Deletes an entry so that no reader ever sees half of it (see removeWhole). */
export async function removeEntry(root: string, key: string): Promise<void> {
  await removeWhole(root, layout.entry(root, key), `evict-${key}`);
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
 * wait and use its result. The build writes into a private temporary folder that is put
 * in place only when `build` has returned (temp.ts), so a build killed at any moment
 * leaves nothing that looks like an entry.
 */
export async function withCacheEntry(
  root: string,
  key: string,
  build: (tmpDir: string) => Promise<void>,
  opts: WithCacheEntryOptions = {},
): Promise<CacheEntryResult> {
  const dir = layout.entry(root, key);
  if (entryExists(root, key)) return { dir, hit: true };
  await Promise.all([layout.entries(root), layout.locks(root)].map((d) => mkdir(d, { recursive: true, mode: 0o700 })));

  const lock = await acquireLock(layout.lock(root, key), {
    done: async () => entryExists(root, key),
    onWait: opts.onWait,
    pollMs: opts.pollMs,
  });
  if (!lock) return { dir, hit: true };
  try {
    if (entryExists(root, key)) return { dir, hit: true };
    await removeAbandonedTemps(root);
    const tmp = await tempPath(root, key);
    await mkdir(tmp, { mode: 0o700 });
    try {
      await build(tmp);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
    // Losing the race means someone broke our lock as stale (we paused that long) and finished first: theirs is as good.
    return { dir, hit: !(await putInPlace(tmp, dir)) };
  } finally {
    await lock.release();
  }
}
