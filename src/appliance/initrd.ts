import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { ApplianceError } from '../errors.js';
import type { Entry } from '../formats/entry.js';
import { decompress } from '../kernel/decompress.js';
import { findKernel, type KernelInfo } from '../kernel/find.js';
import { buildGuestPrograms } from '../guest/compile.js';
import { APPLIANCE_MODULES, resolveModules, type ModuleInfo } from '../kernel/modules.js';
import { writeNewc } from '../formats/newc/writer.js';

export interface BuildInitrdOptions {
  kernel: KernelInfo;
  /** Module names (as modprobe takes them); default APPLIANCE_MODULES. */
  modules?: string[];
  /** Host path of the static init binary. */
  init: string;
  output: string;
  /** Appended after the standard layout; parents first. */
  extra?: Entry[];
}

export interface InitrdResult {
  path: string;
  size: number;
  /** In load order, as /modules.order lists them. */
  modules: ModuleInfo[];
}

// Everything is owned by root with mtime 0, so the same kernel, modules and init give
// the same bytes.
const base = { uid: 0, gid: 0, mtime: 0 } as const;

/**
 * Writes the initrd the C init expects (ARCHITECTURE.md "Initrd layout"): /init, the
 * modules uncompressed under /lib/modules, /modules.order in load order, the mount
 * points, and /dev/console so the kernel can give init a console before devtmpfs exists.
 */
export async function buildInitrd(opts: BuildInitrdOptions): Promise<InitrdResult> {
  const modules = await resolveModules(opts.kernel.modulesDir, opts.modules ?? APPLIANCE_MODULES);
  const initSize = await regularFileSize(opts.init);
  const scratch = await mkdtemp(join(tmpdir(), 'appliance-initrd-'));
  try {
    const entries: Entry[] = [
      ...['dev', 'proc', 'sys', 'newroot', 'lib', 'lib/modules'].map((path): Entry => ({ ...base, path, type: 'dir', mode: 0o755 })),
      { ...base, path: 'dev/console', type: 'chardev', mode: 0o600, rdevMajor: 5, rdevMinor: 1 },
      { ...base, path: 'init', type: 'file', mode: 0o755, size: initSize, source: { kind: 'host', path: opts.init } },
    ];
    const order: string[] = [];
    for (const module of modules) {
      const name = basename(module.relPath).replace(/\.(xz|zst|gz)$/, '');
      const path = `lib/modules/${name}`;
      if (order.includes(`/${path}`)) {
        throw new ApplianceError('EMODULEDEP', `two modules would both be /${path} in the initrd (${module.relPath}): rename one`);
      }
      let hostPath = module.hostPath;
      if (module.compression !== 'none') {
        hostPath = join(scratch, name);
        await decompress({ path: module.hostPath }, module.compression, hostPath);
      }
      entries.push({ ...base, path, type: 'file', mode: 0o644, size: (await stat(hostPath)).size, source: { kind: 'host', path: hostPath } });
      order.push(`/${path}`);
    }
    const list = Buffer.from(order.map((line) => `${line}\n`).join(''));
    entries.push({ ...base, path: 'modules.order', type: 'file', mode: 0o644, size: list.length, source: { kind: 'bytes', data: list } });
    entries.push(...(opts.extra ?? []));

    const { bytes } = await writeNewc(entries, opts.output);
    return { path: opts.output, size: bytes, modules };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * `appliance mkinitrd`: the initrd for `kernel` (default: the kernel a build would pick)
 * with `init` (default: the appliance's compiled init).
 */
export async function makeInitrd(opts: { output: string; kernel?: string; modules?: string[]; init?: string }): Promise<InitrdResult & { kernel: KernelInfo }> {
  const kernel = await findKernel({ kernel: opts.kernel });
  const init = opts.init ?? (await buildGuestPrograms()).init;
  return { ...(await buildInitrd({ kernel, modules: opts.modules, init, output: opts.output })), kernel };
}

async function regularFileSize(path: string): Promise<number> {
  const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
    throw new ApplianceError(
      'ENOINIT',
      `init binary ${path} cannot be read (${err.code}): pass the static init (the init option; --init PATH on the command line)`,
      {
        cause: err,
      },
    );
  });
  if (!st.isFile())
    throw new ApplianceError('ENOINIT', `init binary ${path} is not a regular file: pass the static init (the init option; --init PATH on the command line)`);
  return st.size;
}
