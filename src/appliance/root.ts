import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, posix } from 'node:path';
import { ApplianceError } from '../errors.js';
import type { GuestPrograms } from '../guest/compile.js';
import { AGENT_PATH, INSPECT_PATH, MOVED_MOUNTS, TMPFS_MOUNTS } from '../guest/contract.js';
import { moduleIndexes, moduleName, resolveModules, type KernelInfo, type ModuleInfo } from '../kernel/index.js';
import { executableSearchPath, findExecutable, scriptInterpreters } from '../host/which.js';
import { DEFAULT_BINARIES, DEFAULT_PATHS } from './default.js';
import { dependencyClosure, packageFiles, readDpkgDatabase, type InstalledPackage } from '../host/dpkg.js';
import { elfClosure, librarySearchDirs } from '../host/elf.js';
import { FileList } from './filelist.js';

/**
 * Empty mount points: those the init mounts over (the guest contract), and /mnt, where a
 * user's command mounts a disk (`boot --help`'s example), with the modes a Debian system has.
 */
const MOUNT_POINTS = [...MOVED_MOUNTS, ...TMPFS_MOUNTS, { path: '/mnt', mode: 0o755 }];

/** Text forms of indexes modprobe reads as .bin, and depmod's input: 370 KB the guest does not need. */
const MODPROBE_UNUSED = new Set(['modules.alias', 'modules.symbols', 'modules.order']);

/** The top-level links of a merged-/usr system (/bin -> usr/bin …), kept whenever the host has them. */
const USRMERGE_LINKS = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

export interface RootRequest {
  /** Undefined for none. With no packages, binaries or includes the default appliance is built. */
  packages?: string[];
  binaries?: string[];
  includes?: { host: string; guest: string }[];
  /** Modules to put in the root, loadable on demand. */
  modules: string[];
}

export interface RootPlan {
  files: FileList;
  packages: { name: string; version: string; arch: string }[];
  binaries: { name: string; path: string }[];
  modules: ModuleInfo[];
  /** Host folders walked for --include: a file added to one changes the list. */
  includeDirs: string[];
}

export interface AssembleContext {
  kernel: KernelInfo;
  log: (msg: string) => void;
  warn: (msg: string) => void;
}

/**
 * The root image's host files: the requested packages with their dependency closure,
 * the requested programs with their libraries, the includes, and the filesystem
 * modules with what modprobe needs to load them. `finishRoot` adds the rest.
 */
export async function assembleRoot(req: RootRequest, ctx: AssembleContext): Promise<RootPlan> {
  const files = new FileList(ctx.warn);
  const isDefault = !req.packages?.length && !req.binaries?.length && !req.includes?.length;
  for (const link of USRMERGE_LINKS) {
    const st = files.lstat(link);
    if (typeof st !== 'string' && st.isSymbolicLink()) files.addHostPath(link);
  }

  const packages = req.packages?.length ? addPackages(files, req.packages, ctx) : [];

  const searchPath = executableSearchPath();
  const programs: { name: string; path: string }[] = [];
  const wanted = isDefault ? DEFAULT_BINARIES : (req.binaries ?? []);
  for (const name of wanted) {
    const path = findExecutable(name, searchPath);
    if (path) programs.push({ name, path });
    else if (isDefault) ctx.log(`default program ${name} is not on this host: left out`);
    else {
      throw new ApplianceError(
        'ENOBINARY',
        `program "${name}" of binaries (--binaries) is not found in $PATH or ${searchPath.slice(-6).join(':')}: install it, or give its full path`,
      );
    }
  }
  const extraPaths = isDefault ? DEFAULT_PATHS.filter((p) => typeof files.lstat(p) !== 'string') : [];

  const modules = await rootModules(files, req.modules, ctx);
  if (modules.length > 0) {
    // The kernel loads modules on demand by running /sbin/modprobe.
    const modprobe = typeof files.lstat('/sbin/modprobe') !== 'string' ? '/sbin/modprobe' : findExecutable('modprobe', searchPath);
    if (modprobe) programs.push({ name: 'modprobe', path: modprobe });
    else ctx.warn('modprobe (package kmod) is not installed: the root modules cannot load on demand');
  }
  addPrograms(files, [...programs.map((p) => p.path), ...extraPaths], searchPath, ctx);
  // ld.so.cache finds libraries in folders outside the loader's defaults (/usr/local/lib …).
  files.addHostPath('/etc/ld.so.cache');

  const includeDirs: string[] = [];
  for (const inc of req.includes ?? []) includeDirs.push(...addInclude(files, inc.host, inc.guest));

  return {
    files,
    packages: packages.map((p) => ({ name: p.name, version: p.version, arch: p.arch })),
    binaries: programs,
    modules,
    includeDirs,
  };
}

/**
 * Adds what is not a host file: the mount points, our agent and the inspect helper. Folders and these
 * entries get one time that follows from the inputs alone: SOURCE_DATE_EPOCH if set,
 * else the latest file's. Returns that time.
 */
export function finishRoot(files: FileList, init: GuestPrograms, sourceDateEpoch?: number): number {
  const epoch = sourceDateEpoch ?? files.latestFileTime();
  const fixed = { uid: 0, gid: 0, mtime: epoch };
  for (const mp of MOUNT_POINTS) files.addEntry({ ...fixed, path: mp.path, type: 'dir', mode: mp.mode });
  const size = statSync(init.agent).size;
  files.addEntry({ ...fixed, path: AGENT_PATH, type: 'file', mode: 0o755, size, source: { kind: 'host', path: init.agent } });
  const inspectSize = statSync(init.inspect).size;
  files.addEntry({ ...fixed, path: INSPECT_PATH, type: 'file', mode: 0o755, size: inspectSize, source: { kind: 'host', path: init.inspect } });
  files.setFolderTimes(epoch);
  return epoch;
}

function addPackages(files: FileList, names: string[], ctx: AssembleContext): InstalledPackage[] {
  const db = readDpkgDatabase();
  const closure = dependencyClosure(db, names);
  ctx.log(`packages: ${names.length} requested, ${closure.packages.length} with their dependencies`);
  for (const u of closure.unsatisfied) ctx.log(`dependency of ${u.from} not installed, left out: ${u.group.join(' | ')}`);
  let missing = 0;
  for (const pkg of closure.packages) {
    for (const path of packageFiles(db, pkg)) {
      // Symlinks are followed, so that links through /etc/alternatives resolve in the guest.
      if (files.addHostPath(path) === 'missing') missing++;
    }
  }
  if (missing > 0) ctx.log(`${missing} files listed by dpkg are not on the host (removed after installation): left out`);
  return closure.packages;
}

/** Programs, the interpreters of scripts among them, and the shared libraries of all. */
function addPrograms(files: FileList, paths: string[], searchPath: string[], ctx: AssembleContext): void {
  const queue = [...paths];
  const elfs: string[] = [];
  for (let i = 0; i < queue.length; i++) {
    const path = queue[i]!;
    if (files.addHostPath(path) !== 'added') continue;
    elfs.push(path);
    for (const interp of scriptInterpreters(path)) {
      const found = isAbsolute(interp) ? interp : findExecutable(interp, searchPath);
      if (found && !queue.includes(found)) queue.push(found);
    }
  }
  const closure = elfClosure(elfs, librarySearchDirs());
  for (const m of closure.missing) ctx.warn(`library ${m.library} needed by ${m.neededBy} is not found: ${m.neededBy} will not run in the appliance`);
  for (const lib of closure.files) files.addHostPath(lib);
  ctx.log(`programs: ${paths.length}, with ${closure.files.length - elfs.length} shared libraries and interpreters`);
}

/**
 * The names a kernel has, as modules (modules.dep) or built in (modules.builtin): a
 * membership test only, so a default list can skip what a kernel flavour lacks
 * before resolveModules, which rejects unknown names, does the real work.
 */
function knownModules(modulesDir: string): Set<string> {
  const known = new Set<string>();
  for (const file of ['modules.dep', 'modules.builtin']) {
    let text: string;
    try {
      text = readFileSync(join(modulesDir, file), 'utf8');
    } catch {
      continue; // resolveModules says what is wrong with a missing modules.dep
    }
    for (const line of text.split('\n')) {
      const path = line.split(':', 1)[0]!.trim();
      if (path) known.add(moduleName(path));
    }
  }
  return known;
}

/**
 * The requested root modules with their dependencies, and the index files modprobe
 * reads (modules.dep.bin, modules.alias.bin …; the text forms it does not read are
 * left out). Names this kernel does not have are skipped, so one list suits every
 * kernel flavour.
 */
async function rootModules(files: FileList, names: string[], ctx: AssembleContext): Promise<ModuleInfo[]> {
  if (names.length === 0) return [];
  const dir = ctx.kernel.modulesDir;
  const known = knownModules(dir);
  const present = names.filter((name) => {
    if (known.has(moduleName(name))) return true;
    ctx.log(`module ${name}: not in kernel ${ctx.kernel.version}, left out`);
    return false;
  });
  const modules = await resolveModules(dir, present);
  ctx.log(`root modules: ${modules.map((m) => m.name).join(' ') || '(all built in)'}`);
  for (const m of modules) files.addHostPath(m.hostPath);
  const depmod = ['/sbin/depmod', '/usr/sbin/depmod'].find((p) => typeof files.lstat(p) !== 'string') ?? findExecutable('depmod', executableSearchPath());
  if (!depmod) ctx.warn("depmod (package kmod) is not installed: modprobe in the appliance will see the host's every module");
  const indexes = depmod ? await moduleIndexes(depmod, dir, ctx.kernel.version, modules) : new Map<string, Buffer>();
  // Made-up entries take the time of the kernel's own index, so the image depends on inputs only.
  const mtime = Math.floor(statSync(join(dir, 'modules.dep')).mtimeMs / 1000);
  for (const name of readdirSync(dir).sort()) {
    if (!name.startsWith('modules.') || MODPROBE_UNUSED.has(name)) continue;
    const data = indexes.get(name);
    if (!data) files.addHostPath(join(dir, name));
    else
      files.addEntry({ path: join(dir, name).slice(1), type: 'file', mode: 0o644, uid: 0, gid: 0, mtime, size: data.length, source: { kind: 'bytes', data } });
  }
  return modules;
}

/**
 * `--include HOST[:GUEST]`: a file, or a folder with everything below it. The
 * include's own path is followed if it is a symlink (the user named what they want);
 * symlinks inside a folder are copied as links. Returns the host folders walked.
 */
function addInclude(files: FileList, given: string, guest: string): string[] {
  let st;
  let host: string;
  try {
    // The real path, so the cache key follows the file itself and not a link to it.
    host = realpathSync(given);
    st = statSync(host);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ApplianceError('ENOINCLUDE', `include ${given} (includes, --include): ${code === 'ENOENT' ? 'no such file or folder' : code}: fix the path`);
  }
  files.addHostAt(host, guest, st);
  const dirs: string[] = [];
  if (!st.isDirectory()) return dirs;
  const walk = (hostDir: string, guestDir: string) => {
    dirs.push(hostDir);
    let names: string[];
    try {
      names = readdirSync(hostDir).sort();
    } catch (err) {
      files.skip(hostDir, (err as NodeJS.ErrnoException).code ?? String(err));
      return;
    }
    for (const name of names) {
      const hostPath = join(hostDir, name);
      const s = files.lstat(hostPath);
      if (typeof s === 'string') continue;
      files.addHostAt(hostPath, posix.join(guestDir, name), s);
      if (s.isDirectory()) walk(hostPath, posix.join(guestDir, name));
    }
  };
  walk(host, guest);
  return dirs;
}
