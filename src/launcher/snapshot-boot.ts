/**
 * One boot of a shape that snapshots: restore its snapshot; if there is none, boot cold,
 * save it at the snapshot point, and restore that. What went wrong is told apart, so that
 * one bad boot costs no good snapshot:
 * - a snapshot is deleted only when its state does not load (qemu started, the restored
 *   guest never ran again); a restore that got the guest running proved the snapshot, and
 *   a user disk qemu cannot open, a deadline too short or a hung host are the boot's faults;
 * - a shape is marked as without snapshots here only for a fault of the snapshot itself (a
 *   device that cannot migrate, a guest that must not be saved, a fresh snapshot that does
 *   not load), and the mark expires (cache/snapshots.ts UNUSABLE_FOR_MS);
 * - a cache too full to hold a snapshot costs the snapshot, never a mark.
 */
import {
  findSnapshot,
  markUnusable,
  prepareSnapshot,
  removeSnapshot,
  snapshotRoom,
  unusableReason,
  type PendingSnapshot,
  type Snapshot,
} from '../cache/snapshots.js';
import { acquireLock } from '../cache/lock.js';
import { layout } from '../cache/layout.js';
import type { QemuConfig } from './argv.js';
import { abortError, type AttemptResult } from './attempt.js';
import { cold, restore, save, type Mode } from './modes.js';
import { snapshotKey } from './snapshot.js';

/** One run; `outlivesCaller`: the caller's signal does not end it (a snapshot's save). */
export type Runner = (mode: Mode, how?: { outlivesCaller?: boolean }) => Promise<AttemptResult & { spawnedAt: number }>;
type Result = AttemptResult & { spawnedAt: number };

export interface SnapshotShape {
  qemu: string;
  cacheRoot: string;
  /** The boot's configuration with the kernel and the initrd named by content and the root by identity. */
  config: QemuConfig;
  log: (message: string) => void;
  /** The caller's: a wait for another process's save ends with it; a save of our own goes on. */
  signal?: AbortSignal;
  /** Takes work that goes on after the caller's abort (the launch keeps its socket folder until it ends). */
  outlive?: (work: Promise<unknown>) => void;
}

/** Free space below which no snapshot is made: one takes ~140 MB of RAM file (the root's files in its page cache among it), plus its state. */
export const SNAPSHOT_ROOM = 192 << 20;

/** Why a restore failed, when it is the snapshot's fault; undefined when it is the boot's (see above). */
function snapshotFault(r: Result): string | undefined {
  if (r.outcome !== 'exited' || r.diskFault !== undefined || r.resumedAt !== undefined) return undefined;
  return `its state did not load: ${r.detail ?? 'qemu exited'}`;
}

/** The cache's file system is full: qemu dies of SIGBUS writing the RAM file, or a write says ENOSPC. */
function outOfSpace(r: Result): boolean {
  return r.status?.signal === 'SIGBUS' || /ENOSPC|No space left/.test(`${r.saveError ?? ''} ${r.detail ?? ''}`);
}

export async function bootWithSnapshot(run: Runner, s: SnapshotShape): Promise<Result> {
  const key = snapshotKey(s.qemu, s.config);
  const unusable = await unusableReason(s.cacheRoot, key);
  if (unusable) {
    s.log(`snapshot ${key}: not used, it did not work here lately (${unusable})`);
    return run(cold);
  }
  const existing = await findSnapshot(s.cacheRoot, key);
  if (existing) {
    const r = await run(restore(existing));
    if (r.outcome === 'ready') return { ...r, snapshot: 'restored' };
    const fault = snapshotFault(r);
    if (!fault) return r; // the boot's fault: the snapshot stays, the launcher decides what next
    s.log(`snapshot ${key}: ${fault}; deleting it`);
    await removeSnapshot(s.cacheRoot, key);
  }
  return firstBoot(run, s, key);
}

/** How long a boot waits for another process saving the same shape's snapshot before it boots without. */
const SAVER_WAIT_MS = 5 * 60_000;

/**
 * A shape without a snapshot: one process saves it, under the shape's lock; the others
 * (test workers started together on an empty cache) wait for it without using the CPU it
 * needs, then restore what it saved. A saver that dies leaves a stale lock, which the next
 * one breaks; one that takes too long is not waited for. A caller that gives up (its
 * signal, its timeoutMs) does not end the save: the next boot of the shape restores it.
 */
async function firstBoot(run: Runner, s: SnapshotShape, key: string): Promise<Result> {
  const saved = () => findSnapshot(s.cacheRoot, key);
  const lock = await acquireLock(layout.lock(s.cacheRoot, `snapshot-${key}`), {
    done: async () => {
      if (s.signal?.aborted) throw abortError(s.signal.reason);
      return (await saved()) !== undefined;
    },
    onWait: (pid) => s.log(`snapshot ${key}: process ${pid} is saving it; waiting for it`),
    pollMs: 100,
    timeoutMs: SAVER_WAIT_MS,
  }).catch((err: unknown) => {
    if (s.signal?.aborted) throw err;
    s.log(`snapshot ${key}: ${(err as Error).message}: booting without`);
    return 'gave up' as const;
  });
  if (lock === 'gave up') return run(cold);
  const saving = (async () => {
    const theirs = await saved();
    return theirs ? { theirs } : makeSnapshot(run, s, key);
  })().finally(() => lock?.release());
  const made = await untilAborted(saving, s);
  if ('theirs' in made) {
    const r = await run(restore(made.theirs));
    return r.outcome === 'ready' ? { ...r, snapshot: 'restored' } : r;
  }
  if ('ram' in made) return checkFresh(run, s, key, made);
  return 'outcome' in made ? made : coldAfterSave(run, s, key, made.unusableIfColdBoots);
}

/** `work`, or the caller's abort first: then `work` goes on, and the launch keeps its folder until it ends. */
async function untilAborted<T>(work: Promise<T>, s: SnapshotShape): Promise<T> {
  const signal = s.signal;
  if (!signal) return work;
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => (onAbort = () => reject(abortError(signal.reason))));
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await Promise.race([work, aborted]);
  } catch (err) {
    if (signal.aborted) s.outlive?.(work.catch(() => {}));
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** A folder for a new snapshot, unless the cache cannot hold one (said, never marked). */
async function prepare(s: SnapshotShape, key: string): Promise<PendingSnapshot | undefined> {
  try {
    const pending = await prepareSnapshot(s.cacheRoot, key);
    const room = await snapshotRoom(s.cacheRoot);
    if (room === undefined || room >= SNAPSHOT_ROOM) return pending;
    s.log(
      `snapshot ${key}: ENOSPC: ${(room / 2 ** 20).toFixed(0)} MiB free in the cache, a snapshot needs about ${SNAPSHOT_ROOM >> 20}: booting without (free some space, or run "appliance cache prune")`,
    );
    await pending.discard();
  } catch (err) {
    s.log(`snapshot ${key}: cannot make one in the cache (${(err as Error).message}): booting without`);
  }
  return undefined;
}

/** What remains to do when no snapshot was made: boot cold (and mark the shape if that works), or the failed run. */
type NotMade = { unusableIfColdBoots?: string } | Result;

/** What does not work is remembered where the cache can say so; a read-only cache only costs time. */
function unusableFrom(s: SnapshotShape, key: string, why: string): Promise<void> {
  return markUnusable(s.cacheRoot, key, why).catch((err: unknown) => s.log(`snapshot ${key}: cannot note it as unusable: ${(err as Error).message}`));
}

/** The first boot of a shape, saved at its snapshot point and kept; it outlives its caller (no signal). */
async function makeSnapshot(run: Runner, s: SnapshotShape, key: string): Promise<Snapshot | NotMade> {
  const pending = await prepare(s, key);
  if (!pending) return {};
  const saved = await run(save(pending), { outlivesCaller: true }).catch(async (err: unknown) => {
    await pending.discard();
    throw err;
  });
  if (saved.outcome !== 'saved') {
    await pending.discard();
    if (outOfSpace(saved)) {
      s.log(`snapshot ${key}: ENOSPC: the cache's file system is full: booting without`);
      return {};
    }
    if (saved.saveError) {
      await unusableFrom(s, key, saved.saveError);
      return {};
    }
    if (saved.outcome !== 'exited' || saved.status?.code === 0) return saved; // hung or powered off: the boot's fault
    // qemu refused to start with its RAM in a file (the cache's file system?): remember it if it boots without.
    return { unusableIfColdBoots: `qemu did not start with its RAM in a file: ${saved.detail}` };
  }
  const made = await pending.commit().catch(async (err: unknown) => {
    s.log(`snapshot ${key}: cannot keep it (${(err as Error).message}): booting without`);
    await pending.discard();
  });
  if (made) s.log(`snapshot ${key}: saved in ${made.dir}`);
  return made ?? {};
}

async function coldAfterSave(run: Runner, s: SnapshotShape, key: string, unusableIfColdBoots?: string): Promise<Result> {
  const r = await run(cold);
  if (unusableIfColdBoots && r.outcome === 'ready') await unusableFrom(s, key, unusableIfColdBoots);
  return r;
}

/** Restores the snapshot this boot just saved, which checks it. */
async function checkFresh(run: Runner, s: SnapshotShape, key: string, made: Snapshot): Promise<Result> {
  const r = await run(restore(made));
  if (r.outcome === 'ready') return { ...r, snapshot: 'created' };
  const fault = snapshotFault(r);
  if (!fault) return r;
  const why = `a snapshot just made did not restore: ${fault}`;
  s.log(`snapshot ${key}: ${why}; booting without snapshots`);
  await removeSnapshot(s.cacheRoot, key);
  await unusableFrom(s, key, why);
  return run(cold);
}
