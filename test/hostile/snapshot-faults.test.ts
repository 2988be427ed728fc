// A snapshot is shared by every boot of its shape: one boot's trouble (a disk in a format
// that cannot migrate, a user disk qemu cannot open, a deadline too short, a full cache)
// must not delete a good snapshot nor stop the shape from having one for good.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAppliance, type Appliance } from '../../src/appliance/index.js';
import { layout } from '../../src/cache/layout.js';
import { UNUSABLE_FOR_MS } from '../../src/cache/snapshots.js';
import { boot } from '../../src/vm/vm.js';

const tmp = mkdtempSync(join(tmpdir(), 'appliance-snapshot-faults-'));
const cacheDir = join(tmp, 'cache');
let appliance: Appliance;
const img = (name: string, ...args: string[]) => {
  const path = join(tmp, name);
  execFileSync('qemu-img', ['create', '-q', ...args, path, '1M']);
  return path;
};
const entries = () => (existsSync(layout.snapshots(cacheDir)) ? readdirSync(layout.snapshots(cacheDir)).sort() : []);
const snapshots = () => entries().filter((n) => /^[0-9a-f]{32}$/.test(n));
const marks = () => entries().filter((n) => n.endsWith('.unusable'));
const modes = (vm: { attempts: { mode: string; outcome: string }[] }) => vm.attempts.map((a) => `${a.mode}:${a.outcome}`);

beforeAll(async () => {
  appliance = await buildAppliance({ cacheDir });
}, 240_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('a snapshot of a shape', () => {
  const start = (disk: { path: string; format?: 'raw' | 'vdi' | 'qcow2' }, more: Parameters<typeof boot>[0] = {}) =>
    boot({ cacheDir, appliance, accel: 'tcg', machine: 'microvm', disks: [disk], ...more });

  it('is made even when the first boot has a disk whose format cannot migrate (vdi), and serves raw disks after', async () => {
    {
      await using vm = await start({ path: img('first.vdi', '-f', 'vdi'), format: 'vdi' });
      // The save ran with stand-ins for the disks, so vdi's migration blocker did not matter.
      expect(modes(vm)).toEqual(['save:saved', 'restore:ready']);
      expect((await vm.exec(['blockdev', '--getsize64', '/dev/disk/by-id/virtio-disk0'])).stdout.toString()).toBe('1048576\n');
    }
    expect(marks()).toEqual([]);
    await using raw = await start({ path: img('later.raw', '-f', 'raw'), format: 'raw' });
    expect(modes(raw)).toEqual(['restore:ready']);
  }, 180_000);

  it('survives a user disk qemu cannot open: one attempt, the disk named, the snapshot kept', async () => {
    const [key] = snapshots();
    const state = join(layout.snapshot(cacheDir, key!), 'state');
    const before = statSync(state).ino;
    const broken = img('broken.qcow2', '-f', 'qcow2');
    truncateSync(broken, 60); // a header cut short: qemu refuses it at start
    const err = await start({ path: broken, format: 'qcow2' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EDISKOPEN' });
    expect((err as Error & { reason: string }).reason).toBe(
      `qemu cannot open disk ${broken}: qcow2 header too short: check the image (qemu-img check) and its format`,
    );
    expect((err as { attempts: unknown[] }).attempts).toHaveLength(1);
    expect(snapshots()).toEqual([key]);
    expect(statSync(state).ino).toBe(before);
    expect(marks()).toEqual([]);
  }, 180_000);

  it('survives a boot whose deadline is too short to restore it', async () => {
    const [key] = snapshots();
    const err = await start({ path: img('deadline.raw', '-f', 'raw'), format: 'raw' }, { bootTimeoutMs: 30 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EBOOTTIMEOUT' });
    expect(snapshots()).toEqual([key]);
    expect(marks()).toEqual([]);
    await using vm = await start({ path: img('after.raw', '-f', 'raw'), format: 'raw' });
    expect(modes(vm)).toEqual(['restore:ready']);
  }, 180_000);

  it('marked unusable is tried again once the mark has expired', async () => {
    // Another shape (more memory; disk counts share one): saved, then its snapshot gone and the shape marked.
    const disk = { path: img('two-a.raw', '-f', 'raw'), format: 'raw' as const };
    const second = { path: img('two-b.raw', '-f', 'raw'), format: 'raw' as const };
    const before = snapshots();
    {
      await using vm = await boot({ cacheDir, appliance, accel: 'tcg', machine: 'microvm', memoryMb: 384, disks: [disk, second] });
      expect(modes(vm)).toEqual(['save:saved', 'restore:ready']);
    }
    const [key] = snapshots().filter((k) => !before.includes(k));
    rmSync(layout.snapshot(cacheDir, key!), { recursive: true });
    const mark = layout.unusable(cacheDir, key!);
    writeFileSync(mark, 'a test says so');
    {
      await using vm = await boot({ cacheDir, appliance, accel: 'tcg', machine: 'microvm', memoryMb: 384, disks: [disk, second] });
      expect(modes(vm)).toEqual(['cold:ready']);
    }
    const old = new Date(Date.now() - UNUSABLE_FOR_MS - 60_000);
    utimesSync(mark, old, old);
    await using vm = await boot({ cacheDir, appliance, accel: 'tcg', machine: 'microvm', memoryMb: 384, disks: [disk, second] });
    expect(modes(vm)).toEqual(['save:saved', 'restore:ready']);
    expect(existsSync(mark)).toBe(false);
  }, 240_000);
});

describe('a cache too full for a snapshot', () => {
  const small = join(tmp, 'small');
  const mounted = () => spawnSync('mountpoint', ['-q', small]).status === 0;
  beforeAll(() => {
    mkdirSync(small);
    // A small file system of its own (root can mount one, as CI runs): room for the appliance, not for a snapshot.
    spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=150m,mode=0700', 'tmpfs', small]);
  });
  afterAll(() => {
    if (mounted()) spawnSync('umount', [small]);
  });

  it('boots without one, says ENOSPC, and marks nothing', async (ctx) => {
    if (!mounted()) ctx.skip(); // not root: no file system of our own to fill
    const log: string[] = [];
    const smallCache = join(small, 'cache');
    await using vm = await boot({ cacheDir: smallCache, accel: 'tcg', machine: 'microvm', log: (m) => log.push(m) });
    expect(modes(vm)).toEqual(['cold:ready']);
    expect(vm.timings.snapshot).toBe('none');
    expect(log.join('\n')).toMatch(/snapshot [0-9a-f]{32}: ENOSPC: \d+ MiB free in the cache/);
    expect(readdirSync(layout.snapshots(smallCache)).filter((n) => n.endsWith('.unusable'))).toEqual([]);
    expect((await vm.exec(['true'])).exitCode).toBe(0);
  }, 240_000);
});
