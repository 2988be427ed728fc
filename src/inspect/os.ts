/**
 * Operating systems on the inspected filesystems, with virt-inspector's Linux fields: a
 * root filesystem is one with an os-release file; from it come the distribution, product
 * name and version, from its files the architecture (ELF header of /bin/sh), hostname,
 * package format and manager, and from its fstab where its other filesystems go.
 */
import { PACKAGE_DATABASES, PACKAGE_MANAGERS, parsePackages, type Package, type PackageFormat } from './packages.js';

export interface OperatingSystem {
  /** The root filesystem's id. */
  root: string;
  type: 'linux';
  /** os-release's ID: debian, ubuntu, fedora, rhel, alpine, arch… */
  distro?: string;
  /** os-release's PRETTY_NAME (else NAME). */
  productName?: string;
  /** From VERSION_ID (Debian: /etc/debian_version, which has the point release); 0 where unknown. */
  version: { major: number; minor: number };
  /** x86_64, i386, aarch64, armv7l, ppc64, ppc64le, s390x, riscv64. */
  arch?: string;
  hostname?: string;
  packageFormat?: PackageFormat;
  packageManagement?: string;
  /** From /etc/fstab: mount point → the id of the filesystem that goes there (those attached). */
  mountpoints: Record<string, string>;
  /** fstab lines whose device is not among the attached filesystems (a network share, a missing disk). */
  unmatched: string[];
  /** With `packages: true`: what is installed (name, version, arch), sorted by name. */
  packages?: Package[];
}

const FILE_LIMIT = 64 * 1024;

/**
 * What OS detection reads of each candidate filesystem, in one call: small text files
 * whole (up to FILE_LIMIT), the ELF header of /bin/sh (its architecture), and of the
 * package databases and managers' programs only whether they are there (limit 0: opened,
 * not read; a real dpkg status or apt-get is hundreds of KiB, all of it cold disk reads).
 */
const OS_READS: { paths: string[]; limit: number }[] = [
  { paths: ['/etc/os-release', '/usr/lib/os-release', '/etc/hostname', '/etc/fstab', '/etc/debian_version'], limit: FILE_LIMIT },
  { paths: ['/bin/sh'], limit: 64 },
  { paths: [...PACKAGE_DATABASES.flatMap((d) => d.files), ...PACKAGE_MANAGERS.map((m) => m.program)], limit: 0 },
];
const OS_FILES = OS_READS.flatMap((r) => r.paths);

/** The reads (Helper.readFiles) of OS detection in the filesystem mounted at `root`; give their results, flattened, to detectOs. */
export const osReads = (root: string) => OS_READS.map((r) => ({ root, ...r }));

/** The keys and values of an os-release file (quotes removed). */
function osRelease(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1]!, m[2]!.replace(/^(["'])(.*)\1$/, '$2').replace(/\\(.)/g, '$1'));
  }
  return out;
}

/** The architecture an ELF header names; undefined for what is not an ELF file. */
export function elfArch(h: Buffer | undefined): string | undefined {
  if (!h || h.length < 20 || h.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const little = h[5] === 1;
  const machine = little ? h.readUInt16LE(18) : h.readUInt16BE(18);
  const is64 = h[4] === 2;
  const names: Record<number, string> = { 0x3e: 'x86_64', 0x03: 'i386', 0xb7: 'aarch64', 0x28: 'armv7l', 0x16: 's390x', 0xf3: is64 ? 'riscv64' : 'riscv32' };
  if (machine === 0x15) return little ? 'ppc64le' : 'ppc64';
  if (machine === 0x14) return 'ppc';
  return names[machine];
}

function version(release: Map<string, string>, debianVersion: string | undefined): { major: number; minor: number } {
  const id = release.get('ID');
  const text = id === 'debian' && debianVersion && /^\d+(\.\d+)?/.test(debianVersion) ? debianVersion : (release.get('VERSION_ID') ?? '');
  const m = /^(\d+)(?:\.(\d+))?/.exec(text.trim());
  return { major: m ? Number(m[1]) : 0, minor: m?.[2] ? Number(m[2]) : 0 };
}

/** What an fstab line says: the device, where it goes, its options (btrfs's subvol= among them). */
export interface FstabEntry {
  spec: string;
  mountpoint: string;
  options: string[];
}

/** fstab's lines with a device and a mount point; comments, swap and pseudo filesystems left out. */
export function fstabEntries(text: string): FstabEntry[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(/\s+/))
    .filter((f) => f.length >= 2 && f[1]!.startsWith('/') && !['proc', 'sysfs', 'tmpfs', 'devpts', 'none'].includes(f[0]!))
    .map((f) => ({ spec: f[0]!.replace(/\\040/g, ' '), mountpoint: f[1]!.replace(/\\040/g, ' '), options: (f[3] ?? '').split(',').filter(Boolean) }));
}

/**
 * The OS whose root is filesystem `root`, from its files (osReads' results in order; a
 * missing one undefined), or undefined when it holds no os-release.
 */
export function detectOs(root: string, files: (Buffer | undefined)[], match: (entry: FstabEntry) => string | undefined): OperatingSystem | undefined {
  const file = (path: string) => files[OS_FILES.indexOf(path)];
  const release = file('/etc/os-release') ?? file('/usr/lib/os-release');
  if (!release) return undefined;
  const rel = osRelease(release.toString('utf8'));
  const fstab = fstabEntries(file('/etc/fstab')?.toString('utf8') ?? '');
  const mountpoints: Record<string, string> = {};
  const unmatched: string[] = [];
  for (const e of fstab) {
    const id = match(e);
    if (id) mountpoints[e.mountpoint] = id;
    else unmatched.push(`${e.spec} ${e.mountpoint}`);
  }
  if (!mountpoints['/']) mountpoints['/'] = root;
  const format = PACKAGE_DATABASES.find((d) => d.files.some((f) => file(f)))?.format;
  const manager = PACKAGE_MANAGERS.find((m) => m.format === format && file(m.program));
  return {
    root,
    type: 'linux',
    distro: rel.get('ID'),
    productName: rel.get('PRETTY_NAME') ?? rel.get('NAME'),
    version: version(rel, file('/etc/debian_version')?.toString('utf8')),
    arch: elfArch(file('/bin/sh')),
    hostname: file('/etc/hostname')?.toString('utf8').trim().split('\n')[0] || undefined,
    ...(format ? { packageFormat: format } : {}),
    ...(manager ? { packageManagement: manager.name } : {}),
    mountpoints,
    unmatched,
  };
}

/** The file that lists a format's packages, if we read that format. */
export const packageList = (format: PackageFormat | undefined) => PACKAGE_DATABASES.find((d) => d.format === format)?.list;

export function packagesOf(format: PackageFormat, text: string): Package[] {
  return parsePackages(format, text).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
