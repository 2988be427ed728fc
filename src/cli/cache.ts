import type { Command } from 'commander';
import { formatSize, parseSize } from '../units.js';
import { action, CACHE_DIR_OPTION, usageError } from './common.js';

interface CacheCliOptions {
  cacheDir?: string;
  json?: boolean;
}

interface PruneCliOptions extends CacheCliOptions {
  maxEntries?: string;
  maxSize?: string;
}

async function open(opts: CacheCliOptions): Promise<string> {
  const { cacheRootPath, ensureCacheRoot } = await import('../cache/dir.js');
  return ensureCacheRoot(opts.cacheDir ?? cacheRootPath());
}

export function register(program: Command): void {
  const cache = program.command('cache').description('List, prune or clear the appliance cache');
  cache
    .command('ls')
    .description('List the cached appliances, most recently used first')
    .option(...CACHE_DIR_OPTION)
    .option('--json', 'print the list as JSON')
    .action(action(list));
  cache
    .command('prune')
    .description('Remove least recently used appliances beyond the limits, and leftovers of interrupted builds')
    .option(...CACHE_DIR_OPTION)
    .option('--max-entries <n>', 'entries to keep (default: $APPLIANCE_CACHE_MAX_ENTRIES or 8)')
    .option('--max-size <size>', 'disk space to keep, e.g. 2G (default: $APPLIANCE_CACHE_MAX_SIZE or 4G)')
    .option('--json', 'print what was removed as JSON')
    .action(action(prune));
  cache
    .command('clear')
    .description('Remove every cached appliance')
    .option(...CACHE_DIR_OPTION)
    .option('--json', 'print the count as JSON')
    .action(action(clear));
}

async function list(opts: CacheCliOptions): Promise<void> {
  const root = await open(opts);
  const { listEntries, listSnapshots } = await import('../cache/index.js');
  const [entries, snapshots] = await Promise.all([listEntries(root), listSnapshots(root)]);
  if (opts.json) {
    const when = <T extends { lastUsed: number }>(rows: T[]) => rows.map((e) => ({ ...e, lastUsed: new Date(e.lastUsed).toISOString() }));
    process.stdout.write(`${JSON.stringify({ root, entries: when(entries), snapshots: when(snapshots) }, null, 2)}\n`);
    return;
  }
  for (const e of entries) {
    process.stdout.write(`${e.key}  ${new Date(e.lastUsed).toISOString()}  ${formatSize(e.diskBytes).padStart(10)}  ${e.kernelVersion ?? '?'}  ${e.dir}\n`);
  }
  const total = entries.reduce((n, e) => n + e.diskBytes, 0);
  process.stdout.write(`${entries.length} entries, ${formatSize(total)} in ${root}\n`);
  const snapshotBytes = snapshots.reduce((n, e) => n + e.diskBytes, 0);
  process.stdout.write(`${snapshots.length} snapshots of booted appliances, ${formatSize(snapshotBytes)}\n`);
}

async function prune(opts: PruneCliOptions): Promise<void> {
  const root = await open(opts);
  const { cacheLimits, prune } = await import('../cache/evict.js');
  const limits = cacheLimits();
  if (opts.maxEntries !== undefined) {
    if (!/^\d+$/.test(opts.maxEntries)) throw usageError(`--max-entries "${opts.maxEntries}" is not a whole number`);
    limits.maxEntries = Number(opts.maxEntries);
  }
  if (opts.maxSize !== undefined) limits.maxBytes = parseSize(opts.maxSize);
  const result = await prune(root, limits);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ removed: result.entries.map((e) => e.key), temps: result.temps, records: result.records }, null, 2)}\n`);
    return;
  }
  for (const e of result.entries) process.stdout.write(`removed ${e.key} (${formatSize(e.diskBytes)})\n`);
  process.stdout.write(`${result.entries.length} entries removed, ${result.temps} leftover temporary folders\n`);
}

async function clear(opts: CacheCliOptions): Promise<void> {
  const root = await open(opts);
  const { clearCache } = await import('../cache/evict.js');
  const removed = await clearCache(root);
  process.stdout.write(opts.json ? `${JSON.stringify({ removed })}\n` : `${removed} entries removed from ${root}\n`);
}
