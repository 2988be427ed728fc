/**
 * One boot of a shape that snapshots: restore its snapshot; if there is none (or it no
 * longer restores), boot cold, save it at the snapshot point, and restore that. A shape
 * whose snapshot cannot be saved or restored here is remembered as such, and boots cold.
 */
import { findSnapshot, markUnusable, prepareSnapshot, removeSnapshot, unusableReason, type PendingSnapshot } from '../cache/snapshots.js';
import type { QemuConfig } from './argv.js';
import type { AttemptResult } from './attempt.js';
import { cold, restore, save, type Mode } from './modes.js';
import { snapshotKey } from './snapshot.js';

export type Runner = (mode: Mode) => Promise<AttemptResult & { spawnedAt: number }>;
type Result = AttemptResult & { spawnedAt: number };

export interface SnapshotShape {
  qemu: string;
  cacheRoot: string;
  /** The boot's configuration with the kernel and the initrd named by content and the root by identity. */
  config: QemuConfig;
  log: (message: string) => void;
}

export async function bootWithSnapshot(run: Runner, s: SnapshotShape): Promise<Result> {
  const key = await snapshotKey(s.qemu, s.config);
  const unusable = await unusableReason(s.cacheRoot, key);
  if (unusable) {
    s.log(`snapshot ${key}: not used, it did not work here before (${unusable})`);
    return run(cold);
  }
  const existing = await findSnapshot(s.cacheRoot, key);
  if (existing) {
    const r = await run(restore(existing));
    if (r.outcome === 'ready') return { ...r, snapshot: 'restored' };
    s.log(`snapshot ${key}: did not restore, deleting it`);
    await removeSnapshot(s.cacheRoot, key);
    if (r.outcome === 'no-sign-of-life') return r; // a hanging accelerator: the launcher falls back
  }
  const pending = await prepareSnapshot(s.cacheRoot, key).catch((err: unknown) => {
    s.log(`snapshot ${key}: cannot make one in the cache (${(err as Error).message}): booting without`);
  });
  if (!pending) return run(cold);
  return saveThenRestore(run, s, key, pending);
}

/** The first boot of a shape: save it, then restore what was saved (which checks it). */
async function saveThenRestore(run: Runner, s: SnapshotShape, key: string, pending: PendingSnapshot): Promise<Result> {
  // What does not work is remembered where the cache can say so; a read-only cache only costs time.
  const unusableFrom = (why: string) => markUnusable(s.cacheRoot, key, why).catch((err: unknown) => s.log(`snapshot ${key}: cannot note it as unusable: ${(err as Error).message}`));
  const saved = await run(save(pending)).catch(async (err: unknown) => {
    await pending.discard();
    throw err;
  });
  if (saved.outcome !== 'saved') {
    await pending.discard();
    if (saved.saveError) await unusableFrom(saved.saveError);
    if (saved.outcome !== 'exited' || saved.status?.code === 0) return saved;
    // qemu refused to start: perhaps only with its RAM in a file (the cache's file system?), not the machine.
    const plainCold = await run(cold);
    if (plainCold.outcome === 'ready') await unusableFrom(`qemu did not start with its RAM in a file: ${saved.detail}`);
    return plainCold;
  }
  const made = await pending.commit().catch(async (err: unknown) => {
    s.log(`snapshot ${key}: cannot keep it (${(err as Error).message}): booting without`);
    await pending.discard();
  });
  if (!made) return run(cold);
  s.log(`snapshot ${key}: saved in ${made.dir}`);
  const r = await run(restore(made));
  if (r.outcome === 'ready') return { ...r, snapshot: 'created' };
  const why = `a snapshot just made did not restore: ${r.outcome}${r.detail ? ` (${r.detail})` : ''}`;
  s.log(`snapshot ${key}: ${why}; booting without snapshots`);
  await removeSnapshot(s.cacheRoot, key);
  await unusableFrom(why);
  return run(cold);
}
