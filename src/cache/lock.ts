import { readFileSync } from 'node:fs';
import { link, readFile, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplianceError } from '../errors.js';

/** Who holds a lock: enough to tell, after a kill -9, that the holder is gone. */
interface LockOwner {
  pid: number;
  /** Start time of the process (clock ticks since boot): a reused pid has another. */
  start: string | null;
  host: string;
}

/** Field 22 of /proc/PID/stat, the process's start time; null where there is no /proc. */
export function processStartTime(pid: number): string | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** True if a process with this pid exists on this machine (EPERM: it does, as another user's). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True unless `owner` is certainly gone: a lock from another host is presumed alive. */
export function ownerAlive(owner: LockOwner): boolean {
  if (owner.host !== hostname()) return true;
  if (!pidAlive(owner.pid)) return false;
  const start = processStartTime(owner.pid);
  return owner.start === null || start === null || start === owner.start;
}

export interface Lock {
  release(): Promise<void>;
}

export interface AcquireOptions {
  /** Checked while waiting: when it turns true, the wait ends without the lock (the work is done). */
  done?: () => Promise<boolean>;
  /** Called once when the lock is busy, to say we wait for someone. */
  onWait?: (holderPid: number) => void;
  pollMs?: number;
  timeoutMs?: number;
}

/**
 * Takes an exclusive lock file. The file is created complete, by hard-linking a
 * private file carrying our pid (so there is never an empty lock to puzzle over),
 * and a lock whose holder died (kill -9, a crash) is broken by the next taker.
 * Returns null if `done()` turned true while waiting.
 *
 * Breaking a stale lock races with other breakers only in a window of microseconds;
 * losing that race makes two processes build the same entry, which is harmless
 * because entries are built in private folders and renamed into place.
 */
export async function acquireLock(path: string, opts: AcquireOptions = {}): Promise<Lock | null> {
  const me: LockOwner = { pid: process.pid, start: processStartTime(process.pid), host: hostname() };
  const mine = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  await writeFile(mine, JSON.stringify(me));
  const deadline = Date.now() + (opts.timeoutMs ?? 10 * 60_000);
  let announced = false;
  try {
    for (;;) {
      try {
        await link(mine, path);
        return { release: () => releaseLock(path, me) };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = await readOwner(path);
      if (holder === undefined) continue; // released between our link and our read
      if (holder === null || !ownerAlive(holder)) {
        await breakStale(path, holder);
        continue;
      }
      if (opts.done && (await opts.done())) return null;
      if (!announced) {
        opts.onWait?.(holder.pid);
        announced = true;
      }
      if (Date.now() > deadline) {
        throw new ApplianceError(
          'ELOCKTIMEOUT',
          `gave up waiting for ${path}, held by process ${holder.pid} on ${holder.host}: if that process is stuck, stop it or delete the lock file`,
        );
      }
      await sleep((opts.pollMs ?? 50) * (0.5 + Math.random()));
    }
  } finally {
    await unlink(mine).catch(() => {});
  }
}

/** The lock's owner; undefined if there is no lock any more, null if it cannot be parsed. */
async function readOwner(path: string): Promise<LockOwner | null | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const owner = JSON.parse(text) as LockOwner;
    return typeof owner.pid === 'number' ? owner : null;
  } catch {
    return null;
  }
}

/** Removes a stale lock, unless it changed hands since we read it. */
async function breakStale(path: string, seen: LockOwner | null): Promise<void> {
  const again = await readOwner(path);
  if (again === undefined) return;
  if (JSON.stringify(again) !== JSON.stringify(seen)) return;
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

/** Deletes the lock if it is still ours (a stale-lock breaker may have taken it over after a long pause). */
async function releaseLock(path: string, me: LockOwner): Promise<void> {
  const owner = await readOwner(path);
  if (owner && owner.pid === me.pid && owner.start === me.start && owner.host === me.host) {
    await unlink(path).catch(() => {});
  }
}
