// Many callers at once, as test runners start their workers: on an empty cache, six
// processes reading one image together all succeed; the appliance is built once and one
// snapshot is saved (by one of them, the others waiting for it), which then serves boot()
// and inspect() alike, with any number of disks up to DISK_SLOTS. `appliance prepare` warms a
// cache up once, as a suite's global setup does, and eight callers then share its snapshot.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layout } from '../src/cache/layout.js';
import { inspect } from '../src/inspect/index.js';
import { boot } from '../src/vm/index.js';
import { processesNaming } from './helpers/proc.js';

const CLI = resolve('dist/src/bin.cjs');
let work: string;
let image: string;
let copy: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'appliance-concurrency-'));
  const tree = join(work, 'tree');
  mkdirSync(join(tree, 'etc'), { recursive: true });
  writeFileSync(join(tree, 'etc/motd'), 'hello, workers\n');
  image = join(work, 'disk.img');
  const r = spawnSync('mkfs.ext4', ['-q', '-d', tree, image, '16M'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  copy = join(work, 'copy.img');
  copyFileSync(image, copy);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function run(args: string[], cacheDir: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    // The cache folder before any `--`, after which the words are the guest command's.
    const child = spawn(process.execPath, [CLI, args[0]!, '--cache-dir', cacheDir, ...args.slice(1)]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

describe('many callers on an empty cache', () => {
  it('six `appliance cat` started together: all succeed, one snapshot saved; then boot with and without disks resumes it', async () => {
    const cacheDir = join(work, 'cache');
    const results = await Promise.all(Array.from({ length: 6 }, () => run(['cat', image, '/etc/motd'], cacheDir)));
    for (const r of results) expect([r.code, r.stdout, r.stderr]).toEqual([0, 'hello, workers\n', '']);
    const snapshots = () => readdirSync(layout.snapshots(cacheDir)).filter((n) => /^[0-9a-f]{32}$/.test(n));
    expect(snapshots()).toHaveLength(1);
    for (const args of [
      ['boot', '--json', '--', 'true'],
      ['boot', '--json', '--disk', `${copy},rw`, '--disk', image, '--', 'true'],
    ]) {
      const r = await run(args, cacheDir);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ exitCode: 0, boot: { snapshot: 'restored' } });
    }
    expect(snapshots()).toHaveLength(1);
  }, 300_000);

  it('a read-write disk another VM has open: refused at once in our words, and the snapshot is kept', async () => {
    const cacheDir = join(work, 'cache');
    await using reader = await boot({ cacheDir, disks: [{ path: image, format: 'raw' }] });
    const t0 = performance.now();
    const err = await boot({ cacheDir, disks: [{ path: image, format: 'raw', readonly: false }] }).catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'EDISKOPEN', message: expect.stringMatching(/another VM has this image open/) });
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(readdirSync(layout.snapshots(cacheDir)).filter((n) => n.endsWith('.unusable'))).toEqual([]);
    expect((await reader.exec(['true'])).exitCode).toBe(0);
  }, 120_000);

  it('boot() and inspect() end with their signal or timeoutMs: qemu killed, nothing left, EABORTED or ETIMEDOUT', async () => {
    const cacheDir = join(work, 'cache');
    const left = () => processesNaming(cacheDir).length;
    const aborted = new AbortController();
    setTimeout(() => aborted.abort(), 300);
    const t0 = performance.now();
    // A cold boot (no snapshot) takes seconds under TCG: both end long before.
    await expect(boot({ cacheDir, snapshot: false, signal: aborted.signal })).rejects.toMatchObject({ code: 'EABORTED' });
    await expect(boot({ cacheDir, snapshot: false, timeoutMs: 300 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    await expect(inspect([image], { cacheDir, timeoutMs: 1 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(left()).toBe(0);
    await using vm = await boot({ cacheDir, timeoutMs: 60_000 });
    expect((await vm.exec(['true'])).exitCode).toBe(0);
  }, 120_000);

  it('a caller that times out while its boot saves a snapshot: the save goes on and is kept, then restored; no qemu left', async () => {
    const cacheDir = join(work, 'cache');
    const shape = { cacheDir, memoryMb: 384 }; // built appliance, a shape of its own: this boot saves its snapshot
    const snapshots = () => readdirSync(layout.snapshots(cacheDir)).filter((n) => /^[0-9a-f]{32}$/.test(n));
    const before = snapshots();
    const t0 = performance.now();
    await expect(boot({ ...shape, timeoutMs: 1500 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(performance.now() - t0).toBeLessThan(4_000);
    expect(snapshots()).toEqual(before); // still saving
    const deadline = performance.now() + 90_000;
    while (snapshots().length === before.length && performance.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(snapshots()).toHaveLength(before.length + 1);
    while (processesNaming(cacheDir).length > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(processesNaming(cacheDir)).toEqual([]);
    await using vm = await boot(shape);
    expect(vm.timings.snapshot).toBe('restored');
  }, 180_000);

  it('`appliance prepare` on an empty cache, then eight callers at once: all succeed from its snapshot, none saves one', async () => {
    const cacheDir = join(work, 'prepared');
    const prepared = await run(['prepare', '--json'], cacheDir);
    expect(prepared.code, prepared.stderr).toBe(0);
    expect(JSON.parse(prepared.stdout)).toMatchObject({ snapshot: 'created' });
    const snapshots = () => readdirSync(layout.snapshots(cacheDir)).filter((n) => /^[0-9a-f]{32}$/.test(n));
    expect(snapshots()).toHaveLength(1);
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        i % 2 ? run(['cat', image, '/etc/motd'], cacheDir) : run(['boot', '--json', '--disk', image, '--', 'true'], cacheDir),
      ),
    );
    for (const [i, r] of results.entries()) {
      expect(r.code, r.stderr).toBe(0);
      if (i % 2) expect(r.stdout).toBe('hello, workers\n');
      else expect(JSON.parse(r.stdout)).toMatchObject({ exitCode: 0, boot: { snapshot: 'restored' } });
    }
    expect(snapshots()).toHaveLength(1);
  }, 300_000);
});
