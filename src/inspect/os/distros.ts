/**
 * The names virt-inspector gives operating systems, distributions and package systems
 * (libguestfs daemon/inspect_types.ml), how os-release and lsb-release IDs map to them
 * (inspect_fs_unix.ml), and the package format and manager each distribution implies
 * (inspect_fs.ml check_package_format / check_package_management).
 */

// prettier-ignore
export type OsType = 'linux' | 'windows' | 'freebsd' | 'netbsd' | 'openbsd' | 'hurd' | 'minix' | 'dos';

// prettier-ignore
export type Distro =
  | 'alpinelinux' | 'altlinux' | 'archlinux' | 'buildroot' | 'centos' | 'circle' | 'cirros' | 'coreos' | 'debian'
  | 'fedora' | 'freebsd' | 'freedos' | 'frugalware' | 'gentoo' | 'kalilinux' | 'kylin' | 'linuxmint' | 'mageia'
  | 'mandriva' | 'meego' | 'msdos' | 'neokylin' | 'netbsd' | 'openbsd' | 'openeuler' | 'openmandriva' | 'opencloudos'
  | 'tencentos' | 'opensuse' | 'oraclelinux' | 'pardus' | 'pldlinux' | 'redhat-based' | 'rhel' | 'rocky'
  | 'scientificlinux' | 'slackware' | 'sles' | 'suse-based' | 'ttylinux' | 'ubuntu' | 'voidlinux' | 'windows';

export type PackageFormat = 'apk' | 'deb' | 'ebuild' | 'pacman' | 'pisi' | 'pkgsrc' | 'rpm' | 'xbps';

// prettier-ignore
export type PackageManagement = 'apk' | 'apt' | 'dnf' | 'pacman' | 'pisi' | 'portage' | 'up2date' | 'urpmi' | 'xbps' | 'yum' | 'zypper';

/** os-release's ID → the distribution (distro_of_os_release_id); any other ID names none. */
const OS_RELEASE_IDS: Record<string, Distro> = {
  alpine: 'alpinelinux',
  altlinux: 'altlinux',
  arch: 'archlinux',
  centos: 'centos',
  circle: 'circle',
  coreos: 'coreos',
  debian: 'debian',
  fedora: 'fedora',
  frugalware: 'frugalware',
  gentoo: 'gentoo',
  kali: 'kalilinux',
  kylin: 'kylin',
  mageia: 'mageia',
  neokylin: 'neokylin',
  openEuler: 'openeuler',
  openmandriva: 'openmandriva',
  opencloudos: 'opencloudos',
  tencentos: 'tencentos',
  opensuse: 'opensuse',
  pardus: 'pardus',
  pld: 'pldlinux',
  rhel: 'rhel',
  rocky: 'rocky',
  sles: 'sles',
  sled: 'sles',
  ubuntu: 'ubuntu',
  void: 'voidlinux',
};

export function distroOfOsReleaseId(id: string): Distro | undefined {
  if (Object.hasOwn(OS_RELEASE_IDS, id)) return OS_RELEASE_IDS[id];
  return id.startsWith('opensuse-') ? 'opensuse' : undefined;
}

/** lsb-release's DISTRIB_ID → the distribution (distro_of_lsb_release_distrib_id). */
const LSB_IDS: Record<string, Distro> = { CoreOS: 'coreos', LinuxMint: 'linuxmint', Mageia: 'mageia', Ubuntu: 'ubuntu' };

export const distroOfLsbId = (id: string): Distro | undefined => (Object.hasOwn(LSB_IDS, id) ? LSB_IDS[id] : undefined);

/** Distributions without versions: an os-release without VERSION_ID is still whole for them. */
export const ROLLING: ReadonlySet<Distro> = new Set(['archlinux', 'gentoo', 'voidlinux']);

// prettier-ignore
const RPM: Distro[] = ['altlinux', 'centos', 'circle', 'fedora', 'kylin', 'mageia', 'mandriva', 'meego', 'neokylin', 'opencloudos',
  'tencentos', 'openeuler', 'openmandriva', 'opensuse', 'oraclelinux', 'redhat-based', 'rhel', 'rocky', 'scientificlinux', 'sles', 'suse-based'];
const FORMATS: Partial<Record<Distro, PackageFormat>> = {
  ...Object.fromEntries(RPM.map((d) => [d, 'rpm'])),
  debian: 'deb',
  kalilinux: 'deb',
  linuxmint: 'deb',
  ubuntu: 'deb',
  archlinux: 'pacman',
  gentoo: 'ebuild',
  pardus: 'pisi',
  alpinelinux: 'apk',
  voidlinux: 'xbps',
};

export const packageFormatOf = (distro: Distro | undefined): PackageFormat | undefined => (distro ? FORMATS[distro] : undefined);

/** Red Hat's family: dnf from 8, yum from 5, up2date before (0: the release file did not parse). */
const RED_HAT_FAMILY: ReadonlySet<Distro> = new Set(['centos', 'circle', 'kylin', 'oraclelinux', 'redhat-based', 'rhel', 'rocky', 'scientificlinux']);
const MANAGERS: Partial<Record<Distro, PackageManagement>> = {
  meego: 'yum',
  neokylin: 'dnf',
  altlinux: 'apt',
  debian: 'apt',
  kalilinux: 'apt',
  linuxmint: 'apt',
  ubuntu: 'apt',
  archlinux: 'pacman',
  gentoo: 'portage',
  pardus: 'pisi',
  mageia: 'urpmi',
  mandriva: 'urpmi',
  opensuse: 'zypper',
  sles: 'zypper',
  'suse-based': 'zypper',
  alpinelinux: 'apk',
  voidlinux: 'xbps',
  openmandriva: 'dnf',
  opencloudos: 'dnf',
  tencentos: 'dnf',
  openeuler: 'dnf',
};

/**
 * The package manager a distribution implies, whether or not its program is there: only
 * Fedora looks at a file, /usr/bin/dnf from Fedora 22 on (`hasDnf`), else yum.
 */
export function packageManagementOf(distro: Distro | undefined, major: number, hasDnf: boolean): PackageManagement | undefined {
  if (!distro) return undefined;
  if (distro === 'fedora') return major >= 22 && hasDnf ? 'dnf' : major >= 1 ? 'yum' : undefined;
  if (RED_HAT_FAMILY.has(distro)) return major >= 8 ? 'dnf' : major >= 5 ? 'yum' : major >= 2 ? 'up2date' : undefined;
  return MANAGERS[distro];
}
