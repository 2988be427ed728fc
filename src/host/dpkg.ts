import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApplianceError } from '../errors.js';
import { parseDpkgStatus, type InstalledPackage } from '../formats/dpkg-status.js';

export type { InstalledPackage } from '../formats/dpkg-status.js';

/** Where dpkg keeps its database; tests point this at a fixture. */
export const DPKG_ADMIN_DIR = '/var/lib/dpkg';

/**
 * Paths left out of package file lists by default: documentation, man pages and
 * locales are never needed to inspect a disk and make up much of a package's size.
 */
export const DEFAULT_EXCLUDES = [
  '/usr/share/doc',
  '/usr/share/doc-base',
  '/usr/share/man',
  '/usr/share/info',
  '/usr/share/gtk-doc',
  '/usr/share/help',
  '/usr/share/lintian',
  '/usr/share/locale',
  '/usr/share/i18n',
  '/usr/lib/locale',
] as const;

export interface DpkgDatabase {
  adminDir: string;
  nativeArch: string;
  /** Installed packages by name (one name may be installed for several architectures). */
  byName: Map<string, InstalledPackage[]>;
  /** Virtual package name → installed packages providing it. */
  providers: Map<string, InstalledPackage[]>;
  /** Diverted path → where the diverted file really is, and which package diverted it. */
  diversions: Map<string, { to: string; by: string }>;
}

/** The dpkg architecture of this Node binary, used only when dpkg itself is not installed. */
function nodeArch(): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: 'i386', arm: 'armhf', ppc64: 'ppc64el', s390x: 's390x' };
  return map[process.arch] ?? process.arch;
}

/** Lines of a dpkg metadata file. These are small text databases (the status file is about
 * a megabyte), read in one call because that is ten times faster than a line stream. */
function lines(path: string): string[] {
  return readFileSync(path, 'utf8').split('\n');
}

/** Reads /var/lib/dpkg/status (and the diversions) into an index of installed packages. */
export function readDpkgDatabase(adminDir = DPKG_ADMIN_DIR): DpkgDatabase {
  const statusPath = join(adminDir, 'status');
  if (!existsSync(statusPath)) {
    throw new ApplianceError(
      'ENODPKG',
      `no dpkg database at ${statusPath}: packages (--packages) need a Debian-based host; use binaries and includes (--binaries, --include) instead`,
    );
  }
  const byName = new Map<string, InstalledPackage[]>();
  const providers = new Map<string, InstalledPackage[]>();
  let nativeArch: string | undefined;
  for (const pkg of parseDpkgStatus(readFileSync(statusPath, 'utf8'))) {
    push(byName, pkg.name, pkg);
    for (const virtual of pkg.provides) push(providers, virtual, pkg);
    if (pkg.name === 'dpkg') nativeArch = pkg.arch;
  }
  return { adminDir, nativeArch: nativeArch ?? nodeArch(), byName, providers, diversions: readDiversions(adminDir) };
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** /var/lib/dpkg/diversions holds triples of lines: original path, diverted-to path, diverting package. */
function readDiversions(adminDir: string): Map<string, { to: string; by: string }> {
  const path = join(adminDir, 'diversions');
  const out = new Map<string, { to: string; by: string }>();
  if (!existsSync(path)) return out;
  const triple: string[] = [];
  for (const line of lines(path)) {
    triple.push(line);
    if (triple.length === 3) {
      out.set(triple[0]!, { to: triple[1]!, by: triple[2]! });
      triple.length = 0;
    }
  }
  return out;
}

/**
 * The installed package a dependency name stands for: `name[:arch]`, preferring the
 * native architecture (or `all`), else a package that Provides the name.
 */
export function findInstalled(db: DpkgDatabase, spec: string): InstalledPackage | undefined {
  const [name, qualifier] = spec.split(':') as [string, string | undefined];
  const wantArch = qualifier && qualifier !== 'any' && qualifier !== 'native' ? qualifier : undefined;
  const pick = (list: InstalledPackage[] | undefined) => {
    if (!list?.length) return undefined;
    if (wantArch) return list.find((p) => p.arch === wantArch);
    return list.find((p) => p.arch === db.nativeArch || p.arch === 'all') ?? list[0];
  };
  const direct = pick(db.byName.get(name));
  if (direct) return direct;
  // Several providers: take the first by name so the choice does not depend on status file order.
  const providers = [...(db.providers.get(name) ?? [])].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return pick(providers);
}

export interface Closure {
  /** Every package of the closure, sorted by name then architecture. */
  packages: InstalledPackage[];
  /** Dependency groups no installed package satisfies (harmless on a working host: optional alternatives, removed packages). */
  unsatisfied: { from: string; group: string[] }[];
}

/**
 * The dependency closure of the named packages over Pre-Depends and Depends. For
 * `a | b` the first installed alternative wins; virtual names go through Provides;
 * version constraints are ignored because only the host's installed versions exist.
 */
export function dependencyClosure(db: DpkgDatabase, names: string[]): Closure {
  const seen = new Map<string, InstalledPackage>();
  const unsatisfied: Closure['unsatisfied'] = [];
  const queue: InstalledPackage[] = [];
  const visit = (pkg: InstalledPackage) => {
    const id = `${pkg.name}:${pkg.arch}`;
    if (seen.has(id)) return;
    seen.set(id, pkg);
    queue.push(pkg);
  };
  for (const name of names) {
    const pkg = findInstalled(db, name);
    if (!pkg) {
      throw new ApplianceError(
        'ENOPACKAGE',
        `package "${name}" is not installed on this host (dpkg database ${db.adminDir}): install it with apt-get, or remove it from packages (--packages)`,
      );
    }
    visit(pkg);
  }
  while (queue.length > 0) {
    const pkg = queue.shift()!;
    for (const group of pkg.depends) {
      const chosen = group.map((alt) => findInstalled(db, alt)).find((p) => p !== undefined);
      if (chosen) visit(chosen);
      else unsatisfied.push({ from: pkg.name, group });
    }
  }
  const packages = [...seen.values()].sort((a, b) => (a.name !== b.name ? (a.name < b.name ? -1 : 1) : a.arch < b.arch ? -1 : a.arch > b.arch ? 1 : 0));
  return { packages, unsatisfied };
}

/** True when `path` is one of `prefixes` or lies below one. */
export function isExcluded(path: string, prefixes: readonly string[]): boolean {
  return prefixes.some((p) => path === p || (path.startsWith(p) && path[p.length] === '/'));
}

/**
 * The paths a package installed (its info/*.list), without the excluded folders.
 * A path another package diverted is where this package's file is *not*; the
 * diverted-to path is added so the package's own file comes along.
 */
export function packageFiles(db: DpkgDatabase, pkg: InstalledPackage, excludes: readonly string[] = DEFAULT_EXCLUDES): string[] {
  const candidates = [`${pkg.name}:${pkg.arch}.list`, `${pkg.name}.list`];
  if (pkg.multiArch !== 'same') candidates.reverse();
  const listPath = candidates.map((c) => join(db.adminDir, 'info', c)).find((p) => existsSync(p));
  // Some packages (transitional, metapackages) install no files and may have no list.
  if (!listPath) return [];
  const out: string[] = [];
  for (const line of lines(listPath)) {
    if (line === '/.' || line === '' || isExcluded(line, excludes)) continue;
    out.push(line);
    const diversion = db.diversions.get(line);
    if (diversion && diversion.by !== pkg.name && !isExcluded(diversion.to, excludes)) out.push(diversion.to);
  }
  return out;
}
