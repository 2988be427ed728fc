/**
 * The one way anything enters or leaves the cache: made at a fresh path in tmp/ and
 * renamed into place (or renamed into tmp/ and deleted there), so a reader sees the
 * whole of it or nothing, and a process killed midway leaves only a temporary that
 * removeAbandonedTemps deletes once its creator is gone.
 */
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { layout } from './layout.js';
import { pidAlive } from './lock.js';

/** A fresh name in tmp/, LABEL.PID.RANDOM, which removeAbandonedTemps deletes once this process is gone. */
export async function tempPath(root: string, label: string): Promise<string> {
  await mkdir(layout.tmp(root), { recursive: true, mode: 0o700 });
  return join(layout.tmp(root), `${label}.${process.pid}.${Math.random().toString(36).slice(2)}`);
}

/**
 * Renames the finished temporary `tmp` (a file or a folder) to `final`. If another process
 * put a folder there first, theirs is kept (made from the same key, it is as good) and
 * ours deleted; returns false then.
 */
export async function putInPlace(tmp: string, final: string): Promise<boolean> {
  try {
    await rename(tmp, final);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    await rm(tmp, { recursive: true, force: true });
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return false;
    throw err;
  }
}

/** Makes `final` with `make(tmp)` at a temporary path, then puts it in place (see putInPlace). */
export async function publish<T>(root: string, label: string, final: string, make: (tmp: string) => Promise<T>): Promise<T> {
  const tmp = await tempPath(root, label);
  try {
    const result = await make(tmp);
    await putInPlace(tmp, final);
    return result;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Deletes a file or folder of the cache so that no reader ever sees half of it: it is
 * renamed into tmp/ (atomic; a process still using a file in it keeps it), then deleted
 * at leisure. One already gone is not an error.
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

/**
 * Deletes temporaries whose creator is dead (builds or saves killed midway). Names are
 * LABEL.PID.RANDOM; the pid's start time is not in the name, so one is also deleted once
 * it is a day old (a reused pid keeping it alive).
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
    const pid = Number(name.split('.').at(-2));
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

/**
 * Keeps the `keep` most recently used (by mtime) names in `dir` that match, and deletes
 * the others (whole, see removeWhole): how the cache bounds what it derives from appliances.
 */
export async function keepNewest(root: string, dir: string, keep: number, match: (name: string) => boolean): Promise<void> {
  const found = await Promise.all(
    (await readdir(dir)).filter(match).map(async (name) => ({ name, used: (await stat(join(dir, name)).catch(() => undefined))?.mtimeMs ?? 0 })),
  );
  found.sort((a, b) => b.used - a.used);
  for (const e of found.slice(keep)) await removeWhole(root, join(dir, e.name), `evict-${e.name}`);
}
