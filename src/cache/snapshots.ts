/**
 * Where the launcher's snapshots of booted appliances live (launcher/snapshot.ts makes and
 * restores them): `snapshots/KEY/{ram,state}`, made in tmp/ and put in place whole; the
 * most recently used are kept (snapshotsKept); `KEY.unusable` says why a shape has none on this host.
 */
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, stat, statfs, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { diskUsage } from './usage.js';
import { layout } from './layout.js';
import { keepNewest, putInPlace, removeAbandonedTemps, removeWhole, tempPath } from './temp.js';

/**
 * Snapshots kept: shapes side by side (memory sizes, CPUs, machines; up to DISK_SLOTS disks
 * share one), ~85 MB each on disk. APPLIANCE_CACHE_MAX_SNAPSHOTS sets it (default 8).
 */
export function snapshotsKept(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env.APPLIANCE_CACHE_MAX_SNAPSHOTS);
  return Number.isInteger(n) && n >= 1 ? n : 8;
}
const KEY = /^[0-9a-f]{32}$/;

export interface Snapshot {
  key: string;
  dir: string;
  /** The guest's RAM at the snapshot point (sparse: as large as the guest's memory). */
  ram: string;
  /** qemu's device state (a migration stream without the RAM). */
  state: string;
}

function paths(dir: string, key: string): Snapshot {
  return { key, dir, ram: join(dir, 'ram'), state: join(dir, 'state') };
}

/** The snapshot for `key` if there is one (marked as just used, for pruning). */
export async function findSnapshot(root: string, key: string): Promise<Snapshot | undefined> {
  const s = paths(layout.snapshot(root, key), key);
  if (!existsSync(s.state)) return undefined;
  const now = new Date();
  await utimes(s.dir, now, now).catch(() => {});
  return s;
}

/** Deletes a snapshot (a concurrent restore keeps its mapping of the RAM file). */
export async function removeSnapshot(root: string, key: string): Promise<void> {
  // Best effort: one left behind only costs its next boot a failed restore.
  await removeWhole(root, layout.snapshot(root, key), `evict-snapshot-${key}`).catch(() => {});
}

/**
 * How long a shape stays without snapshots after one could not be made or restored: what
 * failed (a device that cannot migrate, a busy host) may be gone by then, and trying again
 * costs one boot. A change to qemu, the kernel or the appliance is another shape anyway.
 */
export const UNUSABLE_FOR_MS = 24 * 3600_000;

/** Why snapshots of this shape do not work here, if they do not (a mark older than UNUSABLE_FOR_MS is dropped). */
export async function unusableReason(root: string, key: string, now = Date.now()): Promise<string | undefined> {
  const mark = layout.unusable(root, key);
  const st = await stat(mark).catch(() => undefined);
  if (!st) return undefined;
  if (now - st.mtimeMs > UNUSABLE_FOR_MS) {
    await rm(mark, { force: true });
    return undefined;
  }
  return readFile(mark, 'utf8').catch(() => undefined);
}

/** Free bytes where snapshots are made, or undefined if the file system does not say. */
export async function snapshotRoom(root: string): Promise<number | undefined> {
  const fs = await statfs(layout.tmp(root)).catch(() => undefined);
  return fs ? fs.bavail * fs.bsize : undefined;
}

/** Remembers that this shape cannot be snapshotted here, so later boots do not pay for trying. */
export async function markUnusable(root: string, key: string, reason: string): Promise<void> {
  await mkdir(layout.snapshots(root), { recursive: true, mode: 0o700 });
  await writeFile(layout.unusable(root, key), reason);
}

/** A snapshot being made: its folder is private to this process until `commit`. */
export interface PendingSnapshot extends Snapshot {
  /** Puts the folder in place (or keeps one a concurrent boot made meanwhile). */
  commit(): Promise<Snapshot>;
  discard(): Promise<void>;
}

/** A snapshot is made in the cache's tmp/ and put in place whole by `commit`. */
export async function prepareSnapshot(root: string, key: string): Promise<PendingSnapshot> {
  await mkdir(layout.snapshots(root), { recursive: true, mode: 0o700 });
  await removeAbandonedTemps(root);
  const tmp = await tempPath(root, `snapshot-${key}`);
  await mkdir(tmp, { mode: 0o700 });
  const pending = paths(tmp, key);
  return {
    ...pending,
    commit: async () => {
      // The RAM was written through a mapping: make it durable before the name says it is complete.
      for (const file of [pending.ram, pending.state]) {
        const fh = await open(file, 'r+');
        await fh.sync().finally(() => fh.close());
      }
      const final = layout.snapshot(root, key);
      await putInPlace(tmp, final);
      await keepNewest(root, layout.snapshots(root), snapshotsKept(), (name) => KEY.test(name));
      return paths(final, key);
    },
    discard: () => removeWhole(root, tmp, `discard-snapshot-${key}`),
  };
}

export interface SnapshotInfo {
  key: string;
  dir: string;
  /** Bytes on disk: the RAM file is sparse, as large as the guest's memory. */
  diskBytes: number;
  lastUsed: number;
}

/** The complete snapshots, most recently used first. */
export async function listSnapshots(root: string): Promise<SnapshotInfo[]> {
  let names: string[];
  try {
    names = (await readdir(layout.snapshots(root))).filter((n) => KEY.test(n));
  } catch {
    return [];
  }
  const out: SnapshotInfo[] = [];
  for (const key of names) {
    const dir = layout.snapshot(root, key);
    try {
      const [st, diskBytes] = await Promise.all([stat(dir), diskUsage(dir)]);
      out.push({ key, dir, diskBytes, lastUsed: st.mtimeMs });
    } catch {
      // replaced or deleted meanwhile
    }
  }
  return out.sort((a, b) => b.lastUsed - a.lastUsed);
}
