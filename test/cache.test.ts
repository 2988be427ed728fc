import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evict, listEntries, prune } from '../src/cache/evict.js';
import { fingerprint } from '../src/appliance/key.js';
import { acquireLock, processStartTime } from '../src/cache/lock.js';
import { entryExists } from '../src/cache/entries.js';
import { withCacheEntry } from '../src/cache/make-entry.js';
import { layout } from '../src/cache/layout.js';

const DIST_STORE = resolve('dist/src/cache/make-entry.js');

// A builder process: withCacheEntry with a build that logs its start, writes a file,
// sleeps, writes another and the manifest. Prints {dir, hit}.
const WORKER = `
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
const { withCacheEntry } = await import(${JSON.stringify(DIST_STORE)});
const [root, key, delayMs, log] = process.argv.slice(2);
const result = await withCacheEntry(root, key, async (tmp) => {
  appendFileSync(log, process.pid + '\\n');
  writeFileSync(join(tmp, 'first'), 'a'.repeat(100000));
  await sleep(Number(delayMs));
  writeFileSync(join(tmp, 'second'), 'b');
  writeFileSync(join(tmp, 'manifest.json'), '{}');
}, { pollMs: 20 });
process.stdout.write(JSON.stringify(result));
`;

let dir: string;
let worker: string;
beforeAll(() => {
  expect(existsSync(DIST_STORE), 'run npm run build first (the test spawns dist/)').toBe(true);
  dir = mkdtempSync(join(tmpdir(), 'cache-test-'));
  worker = join(dir, 'worker.mjs');
  writeFileSync(worker, WORKER);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function startWorker(root: string, key: string, delayMs: number, log: string) {
  const child = spawn(process.execPath, [worker, root, key, String(delayMs), log], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }>((res) =>
    child.on('close', (code, signal) => res({ code, signal, out, err })),
  );
  return { child, done };
}

const lines = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').filter(Boolean) : []);

/** An entry is either absent or complete: never a folder with some of the files. */
function assertWholeOrAbsent(root: string, key: string): boolean {
  const entry = layout.entry(root, key);
  if (!existsSync(entry)) return false;
  expect(readdirSync(entry).sort()).toEqual(['first', 'manifest.json', 'second']);
  expect(statSync(join(entry, 'first')).size).toBe(100000);
  return true;
}

describe('withCacheEntry', () => {
  it('builds once in-process, then hits', async () => {
    const root = join(dir, 'single');
    let builds = 0;
    const build = async (tmp: string) => {
      builds++;
      writeFileSync(join(tmp, 'manifest.json'), '{}');
    };
    expect(await withCacheEntry(root, 'k1', build)).toEqual({ dir: layout.entry(root, 'k1'), hit: false });
    expect(await withCacheEntry(root, 'k1', build)).toEqual({ dir: layout.entry(root, 'k1'), hit: true });
    expect(builds).toBe(1);
  });

  it('leaves nothing behind when the build throws', async () => {
    const root = join(dir, 'throws');
    await expect(
      withCacheEntry(root, 'k', async (tmp) => {
        writeFileSync(join(tmp, 'half'), 'x');
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(entryExists(root, 'k')).toBe(false);
    expect(readdirSync(layout.tmp(root))).toEqual([]);
    expect(existsSync(layout.lock(root, 'k'))).toBe(false);
  });

  it('4 concurrent builder processes: one builds, all succeed with the same entry', async () => {
    const root = join(dir, 'concurrent');
    const log = join(dir, 'concurrent.log');
    const workers = Array.from({ length: 4 }, () => startWorker(root, 'shared', 400, log));
    const results = await Promise.all(workers.map((w) => w.done));
    for (const r of results) expect(r.code, r.err).toBe(0);
    const outs = results.map((r) => JSON.parse(r.out) as { dir: string; hit: boolean });
    expect(new Set(outs.map((o) => o.dir)).size).toBe(1);
    expect(outs.filter((o) => !o.hit)).toHaveLength(1);
    expect(lines(log)).toHaveLength(1);
    expect(readdirSync(layout.entries(root))).toEqual(['shared']);
    expect(assertWholeOrAbsent(root, 'shared')).toBe(true);
  });

  it('kill -9 mid-build leaves no entry; the next build breaks the stale lock and succeeds', async () => {
    const root = join(dir, 'killed');
    const log = join(dir, 'killed.log');
    const w = startWorker(root, 'k', 10_000, log);
    while (lines(log).length === 0) await sleep(10);
    w.child.kill('SIGKILL');
    expect((await w.done).signal).toBe('SIGKILL');
    expect(entryExists(root, 'k')).toBe(false);
    expect(existsSync(layout.lock(root, 'k'))).toBe(true); // stale: its holder is dead
    expect(readdirSync(layout.tmp(root))).toHaveLength(1); // the abandoned build

    const again = await startWorker(root, 'k', 0, log).done;
    expect(again.code, again.err).toBe(0);
    expect(JSON.parse(again.out)).toEqual({ dir: layout.entry(root, 'k'), hit: false });
    expect(assertWholeOrAbsent(root, 'k')).toBe(true);
    expect(readdirSync(layout.tmp(root))).toEqual([]); // the abandoned build was cleaned up
    expect(existsSync(layout.lock(root, 'k'))).toBe(false);
  });

  it('kill -9 at any moment: the entry is whole or absent, and a later build always succeeds', async () => {
    const root = join(dir, 'anytime');
    const log = join(dir, 'anytime.log');
    for (const killAfterMs of [0, 40, 80, 120, 160, 200, 300]) {
      const key = `k${killAfterMs}`;
      const w = startWorker(root, key, 30, log);
      await sleep(killAfterMs);
      w.child.kill('SIGKILL');
      await w.done;
      assertWholeOrAbsent(root, key);
      const again = await startWorker(root, key, 0, log).done;
      expect(again.code, again.err).toBe(0);
      expect(assertWholeOrAbsent(root, key)).toBe(true);
    }
  });
});

describe('lock', () => {
  it('breaks a lock whose holder is dead, or whose pid now belongs to another process', async () => {
    mkdirSync(join(dir, 'locks'), { recursive: true });
    const path = join(dir, 'locks', 'dead.lock');
    const gone = spawnSync('true').pid!;
    writeFileSync(path, JSON.stringify({ pid: gone, start: '1', host: (await import('node:os')).hostname() }));
    const lock = await acquireLock(path, { timeoutMs: 2000 });
    expect(JSON.parse(readFileSync(path, 'utf8')).pid).toBe(process.pid);
    await lock!.release();
    expect(existsSync(path)).toBe(false);

    // Our own pid, but another start time: the pid was reused, the holder is gone.
    writeFileSync(path, JSON.stringify({ pid: process.pid, start: 'not-now', host: (await import('node:os')).hostname() }));
    const again = await acquireLock(path, { timeoutMs: 2000 });
    await again!.release();
  });

  it('waits for a live holder, and stops waiting when the work is done', async () => {
    const path = join(dir, 'locks', 'live.lock');
    const holder = spawn('sleep', ['30']);
    await sleep(50);
    writeFileSync(path, JSON.stringify({ pid: holder.pid, start: processStartTime(holder.pid!), host: (await import('node:os')).hostname() }));
    let waitedFor: number | undefined;
    let done = false;
    const pending = acquireLock(path, { pollMs: 20, onWait: (pid) => (waitedFor = pid), done: async () => done });
    await sleep(200);
    expect(waitedFor).toBe(holder.pid);
    done = true;
    expect(await pending).toBeNull();

    // Holder killed: the next taker gets the lock.
    holder.kill('SIGKILL');
    await new Promise((r) => holder.on('close', r));
    const lock = await acquireLock(path, { pollMs: 20, timeoutMs: 2000 });
    await lock!.release();
  });
});

describe('eviction', () => {
  async function makeEntries(root: string, sizes: number[]): Promise<string[]> {
    const keys: string[] = [];
    for (const [i, size] of sizes.entries()) {
      const key = `e${i}`;
      await withCacheEntry(root, key, async (tmp) => {
        writeFileSync(join(tmp, 'data'), Buffer.alloc(size, 1));
        writeFileSync(join(tmp, 'manifest.json'), JSON.stringify({ kernel: { version: 'v' }, created: 'now' }));
      });
      // Used one minute apart, e0 the oldest.
      const t = new Date(Date.UTC(2024, 0, 1, 0, i));
      utimesSync(layout.entry(root, key), t, t);
      keys.push(key);
    }
    return keys;
  }

  it('keeps the most recently used entries within the count limit', async () => {
    const root = join(dir, 'evict-count');
    await makeEntries(root, [10, 10, 10, 10, 10]);
    // A hit on e1 makes it the newest.
    const now = new Date();
    utimesSync(layout.entry(root, 'e1'), now, now);
    const removed = await evict(root, { maxEntries: 2, maxBytes: 1e12 });
    expect(removed.map((e) => e.key).sort()).toEqual(['e0', 'e2', 'e3']);
    expect((await listEntries(root)).map((e) => e.key)).toEqual(['e1', 'e4']);
  });

  it('keeps the newest within the size limit, and never the entry asked to keep', async () => {
    const root = join(dir, 'evict-size');
    await makeEntries(root, [1 << 20, 1 << 20, 1 << 20, 1 << 20]);
    const each = (await listEntries(root))[0]!.diskBytes;
    expect(each).toBeGreaterThanOrEqual(1 << 20);
    const removed = await evict(root, { maxEntries: 100, maxBytes: each * 2 + 100 }, ['e0']);
    // e0 is kept though oldest; with it, only one other (the newest) fits.
    expect(removed.map((e) => e.key).sort()).toEqual(['e1', 'e2']);
    expect((await listEntries(root)).map((e) => e.key).sort()).toEqual(['e0', 'e3']);
  });

  it('prune removes abandoned temporary folders and records of evicted entries', async () => {
    const root = join(dir, 'prune');
    await makeEntries(root, [10, 10]);
    const dead = spawnSync('true').pid!;
    mkdirSync(join(layout.tmp(root), `e9.${dead}.abc`), { recursive: true });
    mkdirSync(layout.records(root), { recursive: true });
    writeFileSync(layout.record(root, 'build-gone'), JSON.stringify({ key: 'e9' }));
    writeFileSync(layout.record(root, 'build-here'), JSON.stringify({ key: 'e1' }));
    writeFileSync(layout.record(root, 'other'), JSON.stringify({ identity: 'x' }));
    const result = await prune(root, { maxEntries: 1, maxBytes: 1e12 });
    expect(result.entries.map((e) => e.key)).toEqual(['e0']);
    expect(result.temps).toBe(1);
    expect(readdirSync(layout.records(root)).sort()).toEqual(['build-here.json', 'other.json']);
  });
});

describe('fingerprint', () => {
  it('changes with size, mtime or inode; with --strict, with the content even when those are kept', async () => {
    const f = join(dir, 'fp.txt');
    writeFileSync(f, 'hello');
    const t = new Date(Date.UTC(2024, 0, 1));
    utimesSync(f, t, t);
    const inputs = [{ path: f, kind: 'lstat' as const }];
    const base = await fingerprint(inputs, false);
    const baseStrict = await fingerprint(inputs, true);
    expect(await fingerprint(inputs, false)).toBe(base);

    utimesSync(f, new Date(Date.UTC(2024, 0, 2)), new Date(Date.UTC(2024, 0, 2)));
    expect(await fingerprint(inputs, false)).not.toBe(base);

    // Same size and mtime, other content: only --strict sees it.
    writeFileSync(f, 'jello');
    utimesSync(f, t, t);
    expect(await fingerprint(inputs, false)).toBe(base);
    expect(await fingerprint(inputs, true)).not.toBe(baseStrict);

    // Replaced by rename (new inode), same content and mtime.
    writeFileSync(`${f}.new`, 'jello');
    utimesSync(`${f}.new`, t, t);
    (await import('node:fs')).renameSync(`${f}.new`, f);
    expect(await fingerprint(inputs, false)).not.toBe(base);
  });

  it("ignores a folder's mtime for image inputs but not for watched paths", async () => {
    const d = join(dir, 'fp-dir');
    mkdirSync(d);
    const asInput = [{ path: d, kind: 'lstat' as const }];
    const asWatch = [{ path: d, kind: 'watch' as const }];
    const [i1, w1] = [await fingerprint(asInput, false), await fingerprint(asWatch, false)];
    utimesSync(d, new Date(Date.UTC(2020, 0, 1)), new Date(Date.UTC(2020, 0, 1)));
    expect(await fingerprint(asInput, false)).toBe(i1);
    expect(await fingerprint(asWatch, false)).not.toBe(w1);
  });
});
