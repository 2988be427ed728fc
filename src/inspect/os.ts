/**
 * Operating systems on the inspected filesystems, found and described as virt-inspector
 * does (libguestfs's inspection, read whole: os/roles.ts, os/release-files.ts,
 * os/systems.ts): what each filesystem is — a root, a /usr, nothing — from its files;
 * then the roots with what their /usr and fstab add. All of it from files read in one
 * call to the guest for every candidate filesystem (osReads).
 */
import { ELF_HEADER_BYTES } from './os/arch.js';
import type { Distro, OsType, PackageFormat, PackageManagement } from './os/distros.js';
import { osinfoId } from './os/osinfo.js';
import { OSTREE_MARKER, type Deployment } from './os/ostree.js';
import { keyValues, shellUnquote } from './os/release-files.js';
import { filesystemRole, ROLE_READS } from './os/roles.js';
import { assembleRoots, resolveFstab, type FstabMatch, type FstabMount, type Placed } from './os/systems.js';
import type { Package } from './packages.js';
import { typeRead } from './records.js';

export type { FstabEntry } from './os/fstab.js';
export type { FstabMount } from './os/systems.js';
export { deploymentsOf, OSTREE_DEPLOY, OSTREE_DEPLOY_DEPTH, type Deployment } from './os/ostree.js';
export type { Distro, OsType, PackageFormat, PackageManagement } from './os/distros.js';
export { packageList, packagesOf } from './packages.js';

export interface OperatingSystem {
  /** The root filesystem's id. */
  root: string;
  /** virt-inspector's <name>: linux, windows, freebsd (OpenBSD too, as libguestfs names it), netbsd, hurd, minix, dos. */
  type: OsType;
  /** virt-inspector's names: debian, ubuntu, fedora, rhel, centos, rocky, oraclelinux, opensuse, sles, archlinux, alpinelinux, voidlinux, redhat-based (AlmaLinux)… */
  distro?: Distro;
  /** As virt-inspector forms it: os-release's PRETTY_NAME, or a release file's first line (Debian: /etc/debian_version, "12.15"). */
  productName?: string;
  /** Windows: "Client" or "Server". */
  productVariant?: string;
  /** os-release's PRETTY_NAME, where the root has one. */
  prettyName?: string;
  /** os-release's ID, where the root has one (also for those virt-inspector has no name for: almalinux, nixos, ol…). */
  osReleaseId?: string;
  /** As virt-inspector says it: 0.0 where unknown. */
  version: { major: number; minor: number };
  /** libguestfs's names: x86_64, i386, aarch64, arm, ppc64, ppc64le, s390x, riscv64, loongarch64… */
  arch?: string;
  hostname?: string;
  /** os-release's BUILD_ID; Windows: its build number. */
  buildId?: string;
  /** The osinfo-db short id virt-inspector prints: fedora39, debian12, ubuntu22.04, rhel9.4, win11… */
  osinfo?: string;
  /** What the distribution uses, as virt-inspector infers it (whether or not the manager's program is there). */
  packageFormat?: PackageFormat;
  packageManagement?: PackageManagement;
  /** libguestfs's inspect-get-format: always an installed system. */
  format: 'installed';
  /** Windows: where the system is (/Windows), which control set is current, whether group policy is set, and the drive letters (C → a filesystem id). */
  windowsSystemroot?: string;
  windowsCurrentControlSet?: string;
  windowsGroupPolicy?: boolean;
  driveMappings?: Record<string, string>;
  /** An OSTree deployment (Fedora CoreOS…): the folder of the root filesystem that is this OS's "/", and the one that is its /var. */
  deployment?: Deployment;
  /** Mount point → the id of the filesystem that goes there (those attached); "/" is the root where fstab says nothing else. */
  mountpoints: Record<string, string>;
  /** The fstab lines libguestfs keeps, swap included, in order: what virt-inspector's mountpoints and filesystems come from. */
  fstab: FstabMount[];
  /** fstab lines whose device is not among the attached filesystems (a network share, a missing disk). */
  unmatched: string[];
  /** With `packages: true`: what is installed, sorted by name. */
  packages?: Package[];
  /** Facts that should be there and are not, and why (Windows: a hive that cannot be read, a value of the wrong type). */
  warnings?: string[];
  /** Why the package list is partial or empty (a damaged database, none where the distribution keeps one): the other fields stand. */
  packagesError?: string;
}

/**
 * Small files are read whole up to this (a release file is under 1 KiB, an fstab a few);
 * a longer one is left unread, as libguestfs leaves it (read_small_file's 1 000 000 bytes),
 * and said in the OS's warnings: cut short, its lines past the cut would be lost unsaid.
 */
const FILE_LIMIT = 1_000_000;

/**
 * What OS detection reads of each candidate filesystem, in one call: small files whole
 * (release files, os-release, hostname files, fstab…), the ELF header of each program the
 * architecture is read from, and of the markers only whether they are there (limit 0),
 * OSTree's among them (isOstreeSysroot).
 */
const OS_READS: { paths: string[]; limit: number | 'types' }[] = [
  { paths: ROLE_READS.text, limit: FILE_LIMIT + 1 },
  { paths: ROLE_READS.headers, limit: ELF_HEADER_BYTES },
  { paths: [...ROLE_READS.markers, OSTREE_MARKER], limit: 0 },
  { paths: ROLE_READS.types, limit: 'types' },
];
const OS_FILES = OS_READS.flatMap((r) => (r.limit === 'types' ? [] : r.paths));
/** Where the types' results start in osReads' flattened results (after every file's). */
const TYPES_AT = OS_FILES.length;

/** The reads (Helper.readFiles) of OS detection in the filesystem mounted at `root`; give their results, flattened, to detectSystems. */
export const osReads = (root: string) => OS_READS.map((r) => ({ root, ...r }));

/** A candidate filesystem and what osReads read of it (flattened, in order; undefined where a file is not there). */
export interface OsCandidate {
  info: Placed['info'];
  files: (Buffer | undefined)[];
  /** An OSTree deployment of the filesystem, whose folder osReads read as the root. */
  deployment?: Deployment;
}

/**
 * Whether a filesystem (osReads' results) is an OSTree sysroot: its deployments
 * (deploymentsOf a walk of OSTREE_DEPLOY, OSTREE_DEPLOY_DEPTH deep) are candidates too,
 * each read with osReads of its folder.
 */
export const isOstreeSysroot = (files: (Buffer | undefined)[]) => files[OS_FILES.indexOf(OSTREE_MARKER)] !== undefined;

/**
 * The operating systems of the candidate filesystems, in their order: each filesystem's
 * role, its fstab resolved with `match` (an fstab line → the id of the filesystem it
 * names), then libguestfs's passes over the list (CoreOS's /usr, BSD shadows, btrfs
 * snapshots of a root, a Linux root's /usr).
 */
export function detectSystems(candidates: OsCandidate[], match: FstabMatch): OperatingSystem[] {
  const placed = candidates.flatMap((c): Placed[] => {
    const tooLarge = ROLE_READS.text.filter((_, i) => (c.files[i]?.length ?? 0) > FILE_LIMIT);
    // There, but not read: empty (an fstab's presence still tells a root).
    const at = new Map(OS_FILES.map((p, i) => [p, tooLarge.includes(p) ? Buffer.alloc(0) : c.files[i]]));
    const file = (p: string) => at.get(p);
    const types = new Map(ROLE_READS.types.map((p, i) => [p, typeRead(c.files[TYPES_AT + i])]));
    const role = filesystemRole({ file, header: file, type: (p) => types.get(p) });
    const warnings = tooLarge.map((p) => `${p} is larger than ${FILE_LIMIT} bytes: not read, as libguestfs does not read it`);
    return role ? [{ info: c.info, role, file, deployment: c.deployment, warnings, ...resolveFstab(c.info.id, role.data, file, match) }] : [];
  });
  return assembleRoots(placed).map(operatingSystem);
}

function operatingSystem(p: Placed): OperatingSystem {
  const d = p.role.data;
  const osRelease = new Map(keyValues(p.file('/etc/os-release')?.toString('utf8') ?? '', shellUnquote));
  const version = d.version ?? { major: 0, minor: 0 };
  const mountpoints: Record<string, string> = {};
  // A later line for the same place mounts over an earlier one, as the OS would (the root is the first "/").
  for (const m of p.fstab) if (m.id && m.mountpoint.startsWith('/')) mountpoints[m.mountpoint] = m.id;
  mountpoints['/'] ??= p.info.id;
  const os: OperatingSystem = {
    root: p.info.id,
    type: d.type,
    distro: d.distro,
    productName: d.productName,
    prettyName: osRelease.get('PRETTY_NAME'),
    osReleaseId: osRelease.get('ID'),
    version,
    arch: d.arch,
    hostname: d.hostname,
    buildId: d.buildId,
    osinfo: osinfoId({ type: d.type, distro: d.distro, version, productName: d.productName }),
    packageFormat: d.packageFormat,
    packageManagement: d.packageManagement,
    format: 'installed',
    deployment: p.deployment,
    mountpoints,
    fstab: p.fstab,
    unmatched: p.unmatched,
    ...(p.warnings?.length ? { warnings: p.warnings } : {}),
  };
  for (const k of Object.keys(os) as (keyof OperatingSystem)[]) if (os[k] === undefined) delete os[k];
  return os;
}
