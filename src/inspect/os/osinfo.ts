/**
 * The osinfo-db short id virt-inspector prints (libguestfs lib/inspect-osinfo.c): a
 * function of the OS type, distribution and version, and for Windows of the product name,
 * variant and build number; undefined where libguestfs says "unknown".
 */
import type { Distro, OsType } from './distros.js';

export interface OsinfoInput {
  type: OsType;
  distro?: Distro;
  version: { major: number; minor: number };
  productName?: string;
  productVariant?: string;
  buildId?: string;
}

export function osinfoId(os: OsinfoInput): string | undefined {
  if (os.type === 'linux') return linuxId(os.distro, os.version.major, os.version.minor);
  if (os.type === 'freebsd' || os.type === 'netbsd' || os.type === 'openbsd') return `${os.distro ?? 'unknown'}${os.version.major}.${os.version.minor}`;
  if (os.type === 'dos') return os.distro === 'msdos' ? 'msdos6.22' : undefined;
  if (os.type === 'windows') return windowsId(os);
  return undefined;
}

function linuxId(distro: Distro | undefined, major: number, minor: number): string | undefined {
  const both = `${distro}${major}.${minor}`;
  switch (distro) {
    case 'centos':
      if (major >= 8) return `centos${major}`;
      if (major === 7) return 'centos7.0';
      if (major === 6) return both;
      break;
    case 'circle':
    case 'rocky':
      if (major >= 8) return `${distro}${major}`;
      break;
    case 'debian':
      if (major >= 4) return `debian${major}`;
      break;
    case 'fedora':
    case 'mageia':
      return `${distro}${major}`;
    case 'sles':
      return `${major >= 15 ? 'sle' : 'sles'}${major}${minor === 0 ? '' : `sp${minor}`}`;
    case 'ubuntu':
      return `ubuntu${major}.${String(minor).padStart(2, '0')}`;
    case 'archlinux':
    case 'gentoo':
    case 'voidlinux':
      return distro;
    case 'altlinux':
      return major >= 8 ? `alt${major}.${minor}` : both;
  }
  return distro && (major > 0 || minor > 0) ? both : undefined;
}

/** Windows by kernel version; 10.0 by variant, product name and, for clients, build (11 from 22000). */
function windowsId(os: OsinfoInput): string | undefined {
  const { major, minor } = os.version;
  const name = os.productName ?? 'unknown';
  const server = (os.productVariant ?? 'unknown').includes('Server');
  const key = `${major}.${minor}`;
  if (key === '5.1') return 'winxp';
  if (key === '5.2') return name.includes('XP') ? 'winxp' : name.includes('R2') ? 'win2k3r2' : 'win2k3';
  const six: Record<string, [string, string]> = {
    '6.0': ['win2k8', 'winvista'],
    '6.1': ['win2k8r2', 'win7'],
    '6.2': ['win2k12', 'win8'],
    '6.3': ['win2k12r2', 'win8.1'],
  };
  if (Object.hasOwn(six, key)) return six[key]![server ? 0 : 1];
  if (key !== '10.0') return undefined;
  if (server) return ['2025', '2022', '2019'].map((y) => (name.includes(y) ? `win2k${y.slice(2)}` : '')).find(Boolean) || 'win2k16';
  const build = /^\s*\+?\d+$/.test(os.buildId ?? '') ? Number(os.buildId) : undefined;
  return build === undefined ? undefined : build >= 22000 ? 'win11' : 'win10';
}
