// cache: the one folder where everything derived is kept (layout.ts): appliances, snapshots, kernels, the init; made whole, bounded, cleared.
export { cacheRootPath, ensureCacheRoot } from './dir.js';
export { layout } from './layout.js';
export { clearCache, evict, listEntries, prune, cacheLimits, type CacheLimits, type EntryInfo } from './evict.js';
export { listSnapshots, type SnapshotInfo } from './snapshots.js';
