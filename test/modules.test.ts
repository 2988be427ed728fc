import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplianceError } from '../src/errors.js';
import { APPLIANCE_MODULES, findKernel, resolveModules, type KernelInfo } from '../src/kernel/index.js';

let kernel: KernelInfo;
let dir: string;
beforeAll(async () => {
  kernel = await findKernel({ env: {} });
  dir = await mkdtemp(join(tmpdir(), 'appliance-modules-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** kmod's own resolution: the files modprobe would insmod, in its order, or "builtin NAME". */
function modprobeShowDepends(name: string): string[] {
  const out = execFileSync('modprobe', ['-S', kernel.version, '--show-depends', name], { encoding: 'utf8' });
  return out
    .trim()
    .split('\n')
    .map((line) => line.trim().replace(/^insmod /, ''));
}

async function fixture(name: string, dep: string, builtin?: string): Promise<string> {
  const modulesDir = join(dir, name);
  await mkdir(modulesDir);
  await writeFile(join(modulesDir, 'modules.dep'), dep);
  if (builtin !== undefined) await writeFile(join(modulesDir, 'modules.builtin'), builtin);
  return modulesDir;
}

async function errorOf(p: Promise<unknown>): Promise<ApplianceError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplianceError);
  return err as ApplianceError;
}

describe('resolveModules against the installed kernel', () => {
  // Long chains: wireguard and processor_thermal_device_pci_legacy pull in eight modules,
  // nfsv4 seven. (Chosen without soft dependencies, which modprobe adds and we do not.)
  it.each([
    'virtio_pci',
    'virtio_mmio',
    'virtio_blk',
    'virtio_console',
    'virtio-rng',
    'virtio_scsi',
    'virtio_net',
    'virtio_pmem',
    'nfsv4',
    'wireguard',
    'processor_thermal_device_pci_legacy',
  ])('%s resolves to what modprobe --show-depends loads, in its order', async (name) => {
    const ours = await resolveModules(kernel.modulesDir, [name]);
    expect(ours.map((m) => m.hostPath)).toEqual(modprobeShowDepends(name));
  });

  it('skips built-in modules, as modprobe reports them', async () => {
    const builtin = (await readFile(join(kernel.modulesDir, 'modules.builtin'), 'utf8')).trim().split('\n');
    expect(builtin.length).toBeGreaterThan(0);
    // Its file name, as a user would type it (amd-uncore), which modprobe reports as amd_uncore.
    const name = builtin[0]!.replace(/^.*\//, '').replace(/\.ko$/, '');
    expect(modprobeShowDepends(name)).toEqual([`builtin ${name.replaceAll('-', '_')}`]);
    expect(await resolveModules(kernel.modulesDir, [name, 'virtio_blk'])).toEqual(await resolveModules(kernel.modulesDir, ['virtio_blk']));
  });

  it('resolves the default appliance set: each module once, after everything modprobe loads before it', async () => {
    const ours = (await resolveModules(kernel.modulesDir, APPLIANCE_MODULES)).map((m) => m.hostPath);
    expect(new Set(ours).size).toBe(ours.length);
    for (const name of APPLIANCE_MODULES) {
      const chain = modprobeShowDepends(name);
      const positions = chain.map((path) => ours.indexOf(path));
      expect(positions.every((p) => p >= 0)).toBe(true);
      expect(positions).toEqual([...positions].sort((a, b) => a - b));
    }
    expect(ours.every((p) => p.endsWith('.ko'))).toBe(true);
  });

  it('accepts - and _ alike and rejects an unknown name with a clear error', async () => {
    expect(await resolveModules(kernel.modulesDir, ['virtio-blk'])).toEqual(await resolveModules(kernel.modulesDir, ['virtio_blk']));
    const err = await errorOf(resolveModules(kernel.modulesDir, ['virtio_blk', 'no_such_module']));
    expect(err.code).toBe('EUNKNOWNMODULE');
    expect(err.message).toMatch(/unknown kernel module "no_such_module".*modules\.dep.*modinfo/);
  });
});

describe('resolveModules on fixtures', () => {
  it('orders a chain of four and a diamond, deps first, skipping a built-in one, the same way every time', async () => {
    // d needs c needs b needs a (depmod lists the whole closure, last-loaded first);
    // top needs left and right, which both need a; e is requested but built in.
    const modulesDir = await fixture(
      'chain',
      [
        'kernel/a.ko:',
        'kernel/b.ko: kernel/a.ko',
        'kernel/c-mod.ko.xz: kernel/b.ko kernel/a.ko',
        'kernel/d.ko.zst: kernel/c-mod.ko.xz kernel/b.ko kernel/a.ko',
        'kernel/left.ko: kernel/a.ko',
        'kernel/right.ko.gz: kernel/a.ko',
        'kernel/top.ko: kernel/right.ko.gz kernel/left.ko kernel/a.ko',
        '',
      ].join('\n'),
      'kernel/fs/e.ko\n',
    );
    const names = async (req: string[]) => (await resolveModules(modulesDir, req)).map((m) => m.name);
    expect(await names(['d'])).toEqual(['a', 'b', 'c_mod', 'd']);
    expect(await names(['e', 'top', 'c-mod'])).toEqual(['a', 'left', 'right', 'top', 'b', 'c_mod']);
    expect(await names(['top', 'd', 'top'])).toEqual(['a', 'left', 'right', 'top', 'b', 'c_mod', 'd']);
    const d = await resolveModules(modulesDir, ['d']);
    expect(d.map((m) => m.compression)).toEqual(['none', 'none', 'xz', 'zst']);
    expect(d[3]).toEqual({ name: 'd', relPath: 'kernel/d.ko.zst', hostPath: join(modulesDir, 'kernel/d.ko.zst'), compression: 'zst' });
    expect((await resolveModules(modulesDir, ['top']))[2]!.compression).toBe('gz');
  });

  it('reports a missing modules.dep, a dependency without its own line, and a cycle', async () => {
    const none = join(dir, 'none');
    await mkdir(none);
    const missing = await errorOf(resolveModules(none, ['x']));
    expect(missing.code).toBe('ENOMODULES');
    expect(missing.message).toMatch(/modules\.dep does not exist/);

    const stale = await fixture('stale', 'kernel/x.ko: kernel/gone.ko\n');
    expect((await errorOf(resolveModules(stale, ['x']))).message).toMatch(/module gone, needed by x, is missing from .*modules\.dep.*depmod/);

    const cycle = await fixture('cycle', 'kernel/p.ko: kernel/q.ko\nkernel/q.ko: kernel/p.ko\n');
    expect((await errorOf(resolveModules(cycle, ['p']))).message).toMatch(/dependency cycle/);
  });
});
