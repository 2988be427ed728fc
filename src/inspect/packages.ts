/**
 * Installed packages of an inspected OS, as libguestfs lists them (lib/inspect-apps.c):
 * dpkg's status file, apk's installed database, pacman's local database (a desc file per
 * package); each version split into epoch, version and release as libguestfs splits it.
 * rpm's database is read by rpm-db.ts (formats/rpm).
 */
import { ApplianceError } from '../errors.js';
import { listDpkgPackages } from '../formats/dpkg-status.js';
import { parsePacmanDesc } from '../formats/pacman-desc.js';
import type { Helper } from './helper.js';
import type { PackageFormat } from './os/distros.js';

export type { PackageFormat } from './os/distros.js';

/** One installed package, with the fields virt-inspector prints (those a format has). */
export interface Package {
  name: string;
  /** 0 where the version names none. */
  epoch: number;
  /** The upstream version: what is left of the package's version without epoch and release. */
  version: string;
  /** The packaging revision ("" where there is none): Debian's, apk's without its "r", pacman's pkgrel. */
  release: string;
  arch: string;
  url?: string;
  description?: string;
  /** Windows' own fields (its registry's uninstall keys). */
  displayName?: string;
  installPath?: string;
  publisher?: string;
  sourcePackage?: string;
  summary?: string;
  class?: string;
}

/** Which file of each format's database lists the packages (pacman's is a folder of them: readPacmanPackages). */
export const PACKAGE_DATABASES: { format: PackageFormat; list: string }[] = [
  { format: 'deb', list: '/var/lib/dpkg/status' },
  { format: 'apk', list: '/lib/apk/db/installed' },
];

/** The file that lists a format's packages, if one does. */
export const packageList = (format: PackageFormat | undefined) => PACKAGE_DATABASES.find((d) => d.format === format)?.list;

/** A package's version as its manager writes it: [epoch:]version[-release] (apk's release with its "r"). */
export function packageVersion(p: Package, format: PackageFormat | undefined): string {
  const release = p.release ? `-${format === 'apk' ? 'r' : ''}${p.release}` : '';
  return `${p.epoch ? `${p.epoch}:` : ''}${p.version}${release}`;
}

/** An epoch as guestfs_int_parse_unsigned_int reads it (strtol, nothing after the digits); -1 where it is none. */
function epochOf(text: string): number {
  if (!/^\s*[+-]?\d+$/.test(text)) return -1;
  const n = Number(text);
  return n >= 0 && n <= 0x7fffffff ? n : -1;
}

/**
 * "[epoch:]version[-release]" split at the first ":" and then the first "-" (as libguestfs
 * does: "1.2-3-4" is version 1.2, release 3-4); undefined when the epoch is not a number.
 */
export function splitVersion(full: string): { epoch: number; version: string; release: string } | undefined {
  const colon = full.indexOf(':');
  const epoch = colon < 0 ? 0 : epochOf(full.slice(0, colon));
  if (epoch < 0) return undefined;
  const rest = colon < 0 ? full : full.slice(colon + 1);
  const dash = rest.indexOf('-');
  return dash < 0 ? { epoch, version: rest, release: '' } : { epoch, version: rest.slice(0, dash), release: rest.slice(dash + 1) };
}

function dpkgPackages(text: string): Package[] {
  return listDpkgPackages(text).flatMap((p) => {
    const v = splitVersion(p.version);
    return v ? [{ name: p.name, ...v, arch: p.arch, url: p.url, sourcePackage: p.source, summary: p.summary, description: p.description }] : [];
  });
}

/**
 * apk's `installed`: one-letter fields (P name, V version, A arch, U url, T description)
 * in paragraphs, each taken at the blank line that ends it; the release loses its "r".
 */
function apkPackages(text: string): Package[] {
  const out: Package[] = [];
  let f: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line.length > 1 && line[1] !== ':') continue;
    if (line === '') {
      const v = f.V === undefined ? undefined : splitVersion(f.V);
      if (f.P !== undefined && v) {
        const release = v.release.startsWith('r') ? v.release.slice(1) : v.release;
        out.push({ name: f.P, ...v, release, arch: f.A ?? '', ...(f.U ? { url: f.U } : {}), ...(f.T ? { description: f.T } : {}) });
      }
      f = {};
    } else if ('PVAUT'.includes(line[0]!)) f[line[0]!] = line.slice(2);
  }
  return out;
}

/** A pacman desc file's package: name, version with a release, and arch are required. */
export function pacmanPackage(text: string): Package | undefined {
  const d = parsePacmanDesc(text);
  if (d.name === undefined || d.version === undefined || d.arch === undefined) return undefined;
  const v = splitVersion(d.version);
  if (!v || v.version === '' || v.release === '') return undefined;
  return { name: d.name, ...v, arch: d.arch, ...(d.url ? { url: d.url } : {}), ...(d.desc ? { description: d.desc } : {}) };
}

/** Sorted by name as libguestfs sorts them (strcmp: by bytes). */
const byName = (a: Package, b: Package) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name));

/** The packages a format's list file holds, sorted by name. */
export function packagesOf(format: PackageFormat, text: string): Package[] {
  const found = format === 'deb' ? dpkgPackages(text) : format === 'apk' ? apkPackages(text) : [];
  return found.sort(byName);
}

export const PACMAN_LOCAL = '/var/lib/pacman/local';
/** libguestfs reads at most this much of a desc file; a longer one is skipped (a corrupt database). */
const DESC_LIMIT = 8192;
/** Far more than any system has (an Arch desktop: ~1500); a database with more is refused rather than read. */
const PACMAN_MAX = 100_000;
/** desc files read per call to the guest (each path is an argument of the helper's command line). */
const BATCH = 1000;

/** pacman's packages in the filesystem mounted at `root`: the folders of its local database (at `local` there), a desc file each. */
export async function readPacmanPackages(helper: Helper, root: string, local = PACMAN_LOCAL): Promise<Package[]> {
  const dirs: string[] = [];
  for await (const e of helper.walk(root, local, { depth: 1 })) {
    if (e.kind !== 'entry' || e.stat.type !== 'dir' || typeof e.stat.path !== 'string' || e.stat.path === local) continue;
    if (dirs.length === PACMAN_MAX) throw new ApplianceError('EINSPECT', `${local} lists more than ${PACMAN_MAX} packages`);
    dirs.push(`${e.stat.path}/desc`);
  }
  const out: Package[] = [];
  for (let i = 0; i < dirs.length; i += BATCH) {
    const [descs] = await helper.readFiles([{ root, paths: dirs.slice(i, i + BATCH), limit: DESC_LIMIT + 1 }]);
    for (const d of descs ?? []) {
      const p = d && d.length <= DESC_LIMIT ? pacmanPackage(d.toString('utf8')) : undefined;
      if (p) out.push(p);
    }
  }
  return out.sort(byName);
}
