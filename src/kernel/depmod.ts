import { execFile } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { ApplianceError } from '../errors.js';
import type { ModuleInfo } from './modules.js';

/** What depmod reads besides the modules: the built-in list and their aliases, and the build's order. */
const KERNEL_LISTS = ['modules.builtin', 'modules.builtin.modinfo', 'modules.order'];

/**
 * modprobe's indexes (modules.dep.bin, modules.alias.bin, …) for `modules` alone, made
 * by the host's depmod over a folder of links to them, by file name. The kernel's own
 * indexes name every module it has: in an appliance holding a few they send modprobe to
 * files that are not there, and kmod reports that as "Unknown symbol in module" instead
 * of "Module nbd not found". The output is a function of the inputs (checked by the
 * reproducibility tests), so builds stay byte-identical.
 */
export async function moduleIndexes(depmod: string, modulesDir: string, version: string, modules: ModuleInfo[]): Promise<Map<string, Buffer>> {
  const base = mkdtempSync(join(tmpdir(), 'appliance-depmod-'));
  try {
    const dir = join(base, 'lib/modules', version);
    for (const m of modules) {
      mkdirSync(dirname(join(dir, m.relPath)), { recursive: true });
      symlinkSync(m.hostPath, join(dir, m.relPath));
    }
    mkdirSync(dir, { recursive: true });
    for (const name of KERNEL_LISTS) {
      try {
        symlinkSync(join(modulesDir, name), join(dir, name));
      } catch {
        // depmod does without what the kernel's build did not leave
      }
    }
    const config = join(base, 'depmod.d'); // empty: the host's overrides are not the appliance's
    mkdirSync(config);
    try {
      await promisify(execFile)(depmod, ['-C', config, '-b', base, version]);
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new ApplianceError('EMODULEDEP', `${depmod} -b ${base} ${version} failed: ${(e.stderr || e.message).trim()}`);
    }
    const out = new Map<string, Buffer>();
    for (const name of readdirSync(dir).sort()) {
      if (name.startsWith('modules.') && lstatSync(join(dir, name)).isFile()) out.set(name, readFileSync(join(dir, name)));
    }
    return out;
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}
