/** The cache's bounds: least recently used entries go, leftovers are swept, `cache clear` empties it. */
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import { parseSize } from '../units.js';
import { entryExists, MANIFEST } from './entries.js';
import { removeEntry } from './make-entry.js';
import { CLEARED, layout } from './layout.js';
import { removeAbandonedTemps, removeWhole } from './temp.js';
import { diskUsage } from './usage.js';

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
 * `appliance cache clear`: every tenant of the cache (layout.ts CLEARED): entries, records,
 * snapshots, extracted kernels, the compiled init, temporaries. Each goes whole (renamed
 * away first), so a process using the cache meanwhile sees a tenant or nothing; a running
 * VM keeps its mapping of a deleted snapshot. Returns the number of entries removed.
 */
export async function clearCache(root: string): Promise<number> {
  const entries = await listEntries(root);
  for (const e of entries) await removeEntry(root, e.key);
  for (const tenant of CLEARED) {
    if (tenant === 'tmp') await removeAbandonedTemps(root, 0);
    else await removeWhole(root, layout[tenant](root), `clear-${tenant}`);
  }
  return entries.length;
}
