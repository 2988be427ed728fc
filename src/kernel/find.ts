import { access, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ApplianceError } from '../errors.js';
import { readKernelVersion } from './bzimage.js';

export interface KernelInfo {
  /** The bzImage on the host. */
  path: string;
  /** The kernel release, from the bzImage header. */
  version: string;
  /** /lib/modules/<version> */
  modulesDir: string;
}

export interface FindKernelOptions {
  /** An explicit kernel (the CLI's --kernel); wins over APPLIANCE_KERNEL. */
  kernel?: string;
  env?: NodeJS.ProcessEnv;
  /** Where /boot and /lib/modules are looked for; '/' unless testing against a fake tree. */
  root?: string;
}

const INSTALL_HINT =
  'install one (Debian: apt-get install linux-image-amd64; Ubuntu: apt-get install linux-image-generic; ' +
  'Fedora: dnf install kernel-core), or pass one (the kernel option, --kernel PATH or APPLIANCE_KERNEL)';

/**
 * The kernel to boot: --kernel, else APPLIANCE_KERNEL, else the newest /boot/vmlinuz-*
 * or /lib/modules/<v>/vmlinuz whose modules.dep exists (a kernel without its modules
 * cannot reach the root disk, whose drivers are modules on distribution kernels).
 */
export async function findKernel(opts: FindKernelOptions = {}): Promise<KernelInfo> {
  const root = opts.root ?? '/';
  const explicit = opts.kernel || (opts.env ?? process.env).APPLIANCE_KERNEL;
  if (explicit) {
    const version = await readKernelVersion(explicit);
    const modulesDir = join(root, 'lib/modules', version);
    if (!(await exists(join(modulesDir, 'modules.dep')))) throw noModules(explicit, version, modulesDir);
    return { path: explicit, version, modulesDir };
  }

  const unreadable: string[] = [];
  const withoutModules: { path: string; version: string; modulesDir: string }[] = [];
  const usable: KernelInfo[] = [];
  for (const path of await candidates(root)) {
    let version: string;
    try {
      version = await readKernelVersion(path);
    } catch (err) {
      const code = (err as ApplianceError).code;
      if (code === 'EKERNELPERM') unreadable.push(path);
      if (code === 'EKERNELPERM' || code === 'EKERNELFORMAT') continue;
      throw err;
    }
    const modulesDir = join(root, 'lib/modules', version);
    const info = { path, version, modulesDir };
    if (await exists(join(modulesDir, 'modules.dep'))) usable.push(info);
    else withoutModules.push(info);
  }

  // Newest release first; candidates() already lists /boot before /lib/modules, and sort is stable.
  usable.sort((a, b) => compareVersions(b.version, a.version));
  if (usable[0]) return usable[0];
  if (unreadable.length > 0) {
    throw new ApplianceError(
      'EKERNELPERM',
      `no readable kernel: ${unreadable.join(', ')} ${unreadable.length > 1 ? 'are' : 'is'} not readable by you ` +
        `(some distributions, like Ubuntu, ship /boot/vmlinuz-* mode 0600): run "sudo chmod 0644 ${unreadable.join(' ')}", ` +
        `or pass a readable copy (the kernel option, --kernel PATH or APPLIANCE_KERNEL)`,
    );
  }
  const first = withoutModules[0];
  if (first) throw noModules(first.path, first.version, first.modulesDir);
  throw new ApplianceError(
    'ENOKERNEL',
    `no kernel found (looked for ${join(root, 'boot/vmlinuz-*')} and ${join(root, 'lib/modules/*/vmlinuz')}): ${INSTALL_HINT}`,
  );
}

/** /boot/vmlinuz-* then /lib/modules/<v>/vmlinuz, each sorted by name for a deterministic pick. */
async function candidates(root: string): Promise<string[]> {
  const boot = (await listDir(join(root, 'boot'))).filter((name) => name.startsWith('vmlinuz-')).map((name) => join(root, 'boot', name));
  const inModules: string[] = [];
  for (const dir of await listDir(join(root, 'lib/modules'))) {
    const path = join(root, 'lib/modules', dir, 'vmlinuz');
    if (await exists(path)) inModules.push(path);
  }
  return [...boot, ...inModules];
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch (err) {
    // A folder we cannot list holds no kernel we could use either.
    if (['ENOENT', 'ENOTDIR', 'EACCES'].includes((err as NodeJS.ErrnoException).code ?? '')) return [];
    throw err;
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

function noModules(path: string, version: string, modulesDir: string): ApplianceError {
  return new ApplianceError(
    'ENOMODULES',
    `kernel ${path} is release ${version} but ${join(modulesDir, 'modules.dep')} does not exist: install that ` +
      `kernel's modules (Debian: the linux-image-${version} package; Ubuntu: linux-modules-${version}) ` +
      `or run "depmod ${version}", or pass another kernel (the kernel option, --kernel PATH or APPLIANCE_KERNEL)`,
  );
}

/** Orders kernel releases like `sort -V`: runs of digits compare as numbers, the rest as text. */
export function compareVersions(a: string, b: string): number {
  const pa = a.match(/\d+|\D+/g) ?? [];
  const pb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i]!;
    const y = pb[i]!;
    if (x === y) continue;
    const nx = /^\d/.test(x);
    const ny = /^\d/.test(y);
    if (nx && ny) return Number(x) - Number(y) || x.length - y.length;
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}
