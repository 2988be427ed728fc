import { readFile } from 'node:fs/promises';
import { basename, isAbsolute, join } from 'node:path';
import { ApplianceError } from '../errors.js';

export type ModuleCompression = 'none' | 'xz' | 'zst' | 'gz';

export interface ModuleInfo {
  /** The kernel's name for it: the file name without .ko*, '-' written '_'. */
  name: string;
  /** As modules.dep writes it, e.g. kernel/drivers/block/virtio_blk.ko.xz */
  relPath: string;
  hostPath: string;
  compression: ModuleCompression;
}

/**
 * What the init needs to reach its root disk and the guest channel on both machine
 * types: virtio over PCI (q35/pc) and over MMIO (-M microvm), the block and console
 * drivers. Filesystems and the serial console are built into distribution kernels; a
 * caller asks for anything else by name. No virtio-rng: the launcher attaches no such
 * device, and kernel 6.1 seeds its RNG without one (/dev/random does not block).
 */
export const APPLIANCE_MODULES: string[] = ['virtio_pci', 'virtio_mmio', 'virtio_blk', 'virtio_console'];

const MODULE_FILE = /\.ko(?:\.(xz|zst|gz))?$/;

/** `virtio-blk`, `virtio_blk` and `…/virtio_blk.ko.xz` all name the module virtio_blk, as modprobe has it. */
export function moduleName(nameOrPath: string): string {
  return basename(nameOrPath).replace(MODULE_FILE, '').replaceAll('-', '_');
}

/**
 * The modules `names` need, with every dependency modules.dep lists, minus those in
 * modules.builtin, each after what it depends on. The order is a function of the
 * inputs alone: requested names in the order given, each one's dependencies in the
 * order modprobe loads them (modules.dep lists them last-loaded first).
 */
export async function resolveModules(modulesDir: string, names: string[]): Promise<ModuleInfo[]> {
  const deps = await readModulesDep(modulesDir);
  const builtin = new Set((await readLines(join(modulesDir, 'modules.builtin'), true)).map(moduleName));

  const order: ModuleInfo[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, requiredBy: string | undefined): void => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') {
      throw new ApplianceError('EMODULEDEP', `${join(modulesDir, 'modules.dep')} has a dependency cycle through ${name}: run depmod again`);
    }
    const entry = deps.get(name);
    if (!entry) {
      throw new ApplianceError(
        'EMODULEDEP',
        `module ${name}, needed by ${requiredBy}, is missing from ${join(modulesDir, 'modules.dep')}: ` +
          `the file is stale or damaged; run "depmod ${basename(modulesDir)}"`,
      );
    }
    state.set(name, 'visiting');
    for (const dep of [...entry.deps].reverse()) visit(moduleName(dep), name);
    state.set(name, 'done');
    order.push(moduleInfo(modulesDir, entry.relPath));
  };

  for (const requested of names) {
    const name = moduleName(requested);
    if (builtin.has(name)) continue;
    if (!deps.has(name)) {
      throw new ApplianceError(
        'EUNKNOWNMODULE',
        `unknown kernel module "${requested}": it is neither in ${join(modulesDir, 'modules.dep')} nor built in ` +
          `(modules.builtin); check the name with "modinfo -k ${basename(modulesDir)} ${requested}"`,
      );
    }
    visit(name, undefined);
  }
  return order;
}

function moduleInfo(modulesDir: string, relPath: string): ModuleInfo {
  const ext = MODULE_FILE.exec(relPath)?.[1];
  return {
    name: moduleName(relPath),
    relPath,
    // Old depmods wrote absolute paths; current ones write them relative to the modules dir.
    hostPath: isAbsolute(relPath) ? relPath : join(modulesDir, relPath),
    compression: (ext as ModuleCompression | undefined) ?? 'none',
  };
}

async function readModulesDep(modulesDir: string): Promise<Map<string, { relPath: string; deps: string[] }>> {
  const map = new Map<string, { relPath: string; deps: string[] }>();
  for (const line of await readLines(join(modulesDir, 'modules.dep'), false)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const relPath = line.slice(0, colon).trim();
    const deps = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    map.set(moduleName(relPath), { relPath, deps });
  }
  return map;
}

async function readLines(path: string, optional: boolean): Promise<string[]> {
  const lines: string[] = [];
  try {
    for (const line of (await readFile(path, 'utf8')).split(/\r?\n/)) if (line.trim() !== '') lines.push(line);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    // A kernel built without modules.builtin simply has nothing built in we know of.
    if (optional) return [];
    throw new ApplianceError('ENOMODULES', `${path} does not exist: install the kernel's modules, or run "depmod ${basename(join(path, '..'))}"`, {
      cause: err,
    });
  }
  return lines;
}
