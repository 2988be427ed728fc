/**
 * What one filesystem is to an operating system, by libguestfs's rules in their order
 * (daemon/inspect_fs.ml check_filesystem): a Grub /boot, a BSD, Hurd, Minix, Linux or
 * CoreOS root, a Linux or CoreOS /usr, or nothing; and for a root or /usr what its files
 * say (inspect_fs_unix.ml).
 *
 * libguestfs tests directories (is_dir /etc, /bin, /usr/local…): /bin is read as what it
 * is (a folder, or the symlink to usr/bin of a merged /usr whose /usr is a filesystem of
 * its own), or stands on one of the programs the architecture is read from, found through
 * any symlink; /etc stands on the files the rule asks for there; a /usr on its os-release
 * or programs and the absence of anything under /etc.
 */
import type { FileType } from '../records.js';
import { MDADM_CONF } from './mdadm.js';
import { ARCH_PROGRAMS, archOf } from './arch.js';
import { packageFormatOf, packageManagementOf, type Distro, type OsType, type PackageFormat, type PackageManagement } from './distros.js';
import { hostnameFromFile, LINUX_HOSTNAME_FILES, linuxHostname, MINIX_HOSTNAME, rcConfHostname, RC_CONF, SYSCONFIG_NETWORK } from './hostname.js';
import {
  applyRules,
  CIRROS_LOGO,
  generic,
  HURD_RELEASE_RULES,
  LINUX_RELEASE_RULES,
  parseLsbRelease,
  parseOsRelease,
  RELEASE_FILES,
  type FileOf,
  type ReleaseData,
} from './release-files.js';

/** How a root's mount points are found: its fstab (the BSDs' maps "/" to the root itself), or one fixed mount point. */
export type FstabSource = 'fstab' | 'bsd-fstab' | 'none' | '/' | '/usr';

/** inspection_data: what one filesystem tells of its OS. */
export interface InspectionData extends ReleaseData {
  type: OsType;
  arch?: string;
  hostname?: string;
  packageFormat?: PackageFormat;
  packageManagement?: PackageManagement;
  fstab: FstabSource;
}

export interface FilesystemRole {
  role: 'root' | 'usr';
  data: InspectionData;
}

/** What the rules test of these paths is what they are (read as types: lstat, a symlink's target). */
export const ROLE_TYPES = { bin: '/bin' };

/** Existence tests of the rules (read with limit 0). */
export const ROLE_MARKERS = {
  grub: ['/grub/menu.lst', '/grub/grub.conf', '/grub2/grub.cfg'],
  freebsd: '/etc/freebsd-update.conf',
  netbsd: '/netbsd',
  openbsd: '/bsd',
  hurd: ['/hurd/console', '/hurd/hello', '/hurd/null'],
  minix: '/service/vm',
  coreos: '/etc/coreos/update.conf',
  hosts: '/etc/hosts',
  dnf: '/usr/bin/dnf',
};
/** Small files the rules read whole, beyond the release files and hostname files. */
export const ROLE_FILES = {
  fstab: '/etc/fstab',
  motd: '/etc/motd',
  netbsdRelease: '/etc/release',
  minixVersion: '/etc/version',
  usrOsRelease: '/lib/os-release',
  coreosUsrLsb: '/share/coreos/lsb-release',
};

/**
 * Everything the rules read of a filesystem: small files whole, the programs' ELF headers,
 * and of the markers only whether they are there.
 */
export const ROLE_READS = {
  text: [...RELEASE_FILES, ...LINUX_HOSTNAME_FILES, SYSCONFIG_NETWORK, RC_CONF, MINIX_HOSTNAME, ...Object.values(ROLE_FILES), ...MDADM_CONF],
  headers: ARCH_PROGRAMS,
  markers: [...Object.values(ROLE_MARKERS).flat(), CIRROS_LOGO],
  types: Object.values(ROLE_TYPES),
};
/** What a /usr has none of: files under /etc. */
const ETC_FILES = [...ROLE_READS.text, ...ROLE_READS.markers].filter((p) => p.startsWith('/etc/'));

/**
 * The files a filesystem's role is told from: `file` (whole, or for markers only present),
 * `header` (the programs' ELF headers), `type` (what a path of ROLE_TYPES is: a folder, or
 * a symlink and its target).
 */
export interface RoleFiles {
  file: FileOf;
  header: (path: string) => Buffer | undefined;
  type: (path: string) => { type: FileType; target?: string } | undefined;
}

/** The role of one filesystem, or undefined when it holds no OS's root or /usr. */
export function filesystemRole(f: RoleFiles): FilesystemRole | undefined {
  const has = (p: string) => f.file(p) !== undefined;
  // libguestfs: is_dir /bin, or /bin -> usr/bin (merged /usr); ours also any program there.
  const binType = f.type(ROLE_TYPES.bin);
  const bin = binType?.type === 'dir' || (binType?.type === 'symlink' && binType.target === 'usr/bin') || ARCH_PROGRAMS.some((p) => f.header(p) !== undefined);
  const fstab = has(ROLE_FILES.fstab);
  const m = ROLE_MARKERS;
  let found: FilesystemRole | undefined;
  if (m.grub.some(has)) return undefined;
  else if (bin && fstab && has(m.freebsd)) found = root(bsdRoot(f, 'freebsd', 'freebsd', ROLE_FILES.motd));
  else if (bin && fstab && has(m.netbsd) && has(ROLE_FILES.netbsdRelease)) found = root(bsdRoot(f, 'netbsd', 'netbsd', ROLE_FILES.netbsdRelease));
  // libguestfs calls OpenBSD "freebsd", type and distribution alike.
  else if (bin && fstab && has(m.openbsd) && has(ROLE_FILES.motd)) found = root(bsdRoot(f, 'freebsd', 'freebsd', ROLE_FILES.motd));
  else if (m.hurd.every(has)) found = root(releaseRoot(f, 'hurd', HURD_RELEASE_RULES));
  else if (bin && fstab && has(m.minix) && has(ROLE_FILES.minixVersion)) found = root(minixRoot(f));
  else if (bin && (fstab || has(m.hosts))) found = root(releaseRoot(f, 'linux', LINUX_RELEASE_RULES));
  else if (has(m.coreos)) found = root({ type: 'linux', distro: 'coreos', hostname: linuxHostname(f.file), fstab: '/' });
  else found = usrRole(f);
  if (found) {
    const d = found.data;
    d.packageFormat = packageFormatOf(d.distro);
    d.packageManagement = packageManagementOf(d.distro, d.version?.major ?? 0, has(m.dnf));
  }
  return found;
}

const root = (data: InspectionData): FilesystemRole => ({ role: 'root', data });

/** A Linux or Hurd root: its release files, programs, fstab and hostname. */
function releaseRoot(f: RoleFiles, type: 'linux' | 'hurd', rules: typeof LINUX_RELEASE_RULES): InspectionData {
  const data: InspectionData = { type, fstab: 'fstab' };
  applyRules(rules, f.file, data);
  return { ...data, arch: archOf(f.header), hostname: linuxHostname(f.file) };
}

/** FreeBSD, NetBSD, OpenBSD: the version on the first line of motd (release for NetBSD), hostname in rc.conf. */
function bsdRoot(f: RoleFiles, type: OsType, distro: Distro, versionFile: string): InspectionData {
  const data: InspectionData = { type, distro, fstab: 'bsd-fstab' };
  const text = f.file(versionFile)?.toString('utf8');
  if (text !== undefined) generic(distro, type === 'netbsd' ? /^NetBSD (\d+)\.(\d+)/s : undefined)(text, data, f.file);
  return { ...data, arch: archOf(f.header), hostname: rcConfHostname(f.file(RC_CONF)) };
}

/** Minix: a version in /etc/version (no distribution), no fstab read. */
function minixRoot(f: RoleFiles): InspectionData {
  const data: InspectionData = { type: 'minix', fstab: 'none' };
  const text = f.file(ROLE_FILES.minixVersion)?.toString('utf8');
  if (text !== undefined) generic('meego', /^(\d+)\.(\d+)(\.(\d+))?/s)(text, data, f.file);
  delete data.distro;
  return { ...data, arch: archOf(f.header), hostname: hostnameFromFile(f.file(MINIX_HOSTNAME)) };
}

/**
 * A /usr: CoreOS's (its os-release says coreos, or it has share/coreos/lsb-release) goes
 * at /usr of the CoreOS root; any other one with an os-release or programs and nothing
 * under /etc gives its root what that root lacks.
 */
function usrRole(f: RoleFiles): FilesystemRole | undefined {
  const osRelease = f.file(ROLE_FILES.usrOsRelease)?.toString('utf8');
  const lsb = f.file(ROLE_FILES.coreosUsrLsb)?.toString('utf8');
  const probe: ReleaseData = {};
  if (osRelease !== undefined) parseOsRelease(osRelease, probe);
  if (probe.distro === 'coreos' || lsb !== undefined) {
    const data: InspectionData = { type: 'linux', distro: 'coreos', fstab: '/usr' };
    if (osRelease !== undefined) parseOsRelease(osRelease, data);
    else parseLsbRelease(lsb!, data);
    const arch = archOf(f.header);
    return { role: 'usr', data: arch ? { ...data, arch } : data };
  }
  const arch = archOf(f.header);
  if ((osRelease === undefined && !arch) || ETC_FILES.some((p) => f.file(p))) return undefined;
  const data: InspectionData = { type: 'linux', fstab: 'none' };
  if (osRelease !== undefined) parseOsRelease(osRelease, data);
  return { role: 'usr', data: arch ? { ...data, arch } : data };
}
