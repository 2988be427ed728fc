import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import { parseSize } from '../cli/common.js';
import { entryExists, layout, MANIFEST, removeAbandonedTemps, removeWhole } from './store.js';

export interface EntryInfo {
  key: string;
  dir: string;
  /** Bytes the entry takes on disk (allocated blocks: root.ext2 is sparse). */
  diskBytes: number;
  /** Last use (build or cache hit), ms since the epoch. */
  lastUsed: number;
  /** From the manifest, when it can be read. */
  kernelVersion?: string;
  created?: string;
}

export interface CacheLimits {
  maxEntries: number;
  maxBytes: number;
}

/**
 * Limits from APPLIANCE_CACHE_MAX_ENTRIES and APPLIANCE_CACHE_MAX_SIZE (e.g. 4G), else
 * 8 entries and 4 GiB: room for a few kernels' appliances side by side.
 */
export function cacheLimits(env: NodeJS.ProcessEnv = process.env): CacheLimits {
  return {
    maxEntries: env.APPLIANCE_CACHE_MAX_ENTRIES ? Number(env.APPLIANCE_CACHE_MAX_ENTRIES) : 8,
    maxBytes: env.APPLIANCE_CACHE_MAX_SIZE ? parseSize(env.APPLIANCE_CACHE_MAX_SIZE) : 4 * 1024 ** 3,
  };
}

async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) {
    const st = await stat(join(dir, name));
    total += st.blocks * 512;
  }
  return total;
}

/** The complete entries of a cache, most recently used first. */
export async function listEntries(root: string): Promise<EntryInfo[]> {
  let keys: string[];
  try {
    keys = await readdir(layout.entries(root));
  } catch {
    return [];
  }
  const out: EntryInfo[] = [];
  for (const key of keys) {
    const dir = layout.entry(root, key);
    try {
      const [st, diskBytes, manifest] = await Promise.all([
        stat(dir),
        diskUsage(dir),
        readFile(join(dir, MANIFEST), 'utf8').then((t) => JSON.parse(t) as { kernel?: { version?: string }; created?: string }),
      ]);
      out.push({ key, dir, diskBytes, lastUsed: st.mtimeMs, kernelVersion: manifest.kernel?.version, created: manifest.created });
    } catch {
      // deleted meanwhile by another process's eviction
    }
  }
  return out.sort((a, b) => b.lastUsed - a.lastUsed || (a.key < b.key ? -1 : 1));
}

export interface SnapshotInfo {
  key: string;
  dir: string;
  /** Bytes on disk: the RAM file is sparse, as large as the guest's memory. */
  diskBytes: number;
  lastUsed: number;
}

/** The complete snapshots of booted appliances (src/qemu/snapshot.ts), most recently used first. */
export async function listSnapshots(root: string): Promise<SnapshotInfo[]> {
  let names: string[];
  try {
    names = (await readdir(layout.snapshots(root))).filter((n) => /^[0-9a-f]{32}$/.test(n));
  } catch {
    return [];
  }
  const out: SnapshotInfo[] = [];
  for (const key of names) {
    const dir = join(layout.snapshots(root), key);
    try {
      const [st, diskBytes] = await Promise.all([stat(dir), diskUsage(dir)]);
      out.push({ key, dir, diskBytes, lastUsed: st.mtimeMs });
    } catch {
      // replaced or deleted meanwhile
    }
  }
  return out.sort((a, b) => b.lastUsed - a.lastUsed);
}

/** Deletes an entry so that no reader ever sees half of it (see removeWhole). */
export async function removeEntry(root: string, key: string): Promise<void> {
  await removeWhole(root, layout.entry(root, key), `evict-${key}`);
}

/**
 * Least recently used entries go until the cache is within both limits. `keep` (the
 * entry a build just made or used) is never deleted, even when it alone is over the
 * size limit. Returns the entries deleted.
 */
export async function evict(root: string, limits: CacheLimits, keep: string[] = []): Promise<EntryInfo[]> {
  const entries = await listEntries(root);
  const lru = new LRUCache<string, EntryInfo>({
    max: Math.max(1, limits.maxEntries),
    maxSize: Math.max(1, limits.maxBytes),
    sizeCalculation: (e) => Math.max(1, e.diskBytes),
  });
  // Oldest first, so the policy sees the real order of use; kept keys count as newest.
  const ordered = [...entries].reverse().sort((a, b) => Number(keep.includes(a.key)) - Number(keep.includes(b.key)));
  for (const e of ordered) lru.set(e.key, e);
  const doomed = entries.filter((e) => !lru.has(e.key) && !keep.includes(e.key));
  for (const e of doomed) await removeEntry(root, e.key);
  return doomed;
}

/** `appliance cache prune`: abandoned temporary folders, records of deleted entries, and entries over the limits. */
export async function prune(root: string, limits: CacheLimits): Promise<{ entries: EntryInfo[]; temps: number; records: number }> {
  const temps = await removeAbandonedTemps(root);
  const entries = await evict(root, limits);
  return { entries, temps, records: await removeOrphanRecords(root) };
}

/** Build records whose entry is gone: they would only send a lookup to a rebuild. */
async function removeOrphanRecords(root: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(layout.records(root));
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    const path = join(layout.records(root), name);
    const record = await readFile(path, 'utf8').then(
      (t) => JSON.parse(t) as { key?: string },
      () => ({}) as { key?: string },
    );
    // Records without a key (the init build's compiler identity) are not about entries.
    if (typeof record.key !== 'string' || entryExists(root, record.key)) continue;
    await rm(path, { force: true });
    removed++;
  }
  return removed;
}

/**
 * `appliance cache clear`: every entry and its build record, and the snapshots of booted
 * appliances (a running VM keeps its mapping of a deleted one). The compiled init and
 * agent stay: they are keyed by their sources and compiler, not by any appliance.
 */
export async function clearCache(root: string): Promise<number> {
  const entries = await listEntries(root);
  for (const e of entries) await removeEntry(root, e.key);
  await removeOrphanRecords(root);
  await removeAbandonedTemps(root);
  await rm(layout.snapshots(root), { recursive: true, force: true });
  return entries.length;
}
