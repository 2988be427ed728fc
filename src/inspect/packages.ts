/**
 * Installed packages of an inspected OS, from its package database: dpkg's status file,
 * apk's installed database; rpm keeps its database in BerkeleyDB or sqlite files, which
 * are not read here (the format is named, the list left empty).
 */
import { listDpkgPackages } from '../formats/dpkg-status.js';

export interface Package {
  name: string;
  version: string;
  arch: string;
}

export type PackageFormat = 'deb' | 'rpm' | 'apk' | 'pacman';

/** What each format's database is called, and which of its files lists the packages (if we read it). */
export const PACKAGE_DATABASES: { format: PackageFormat; files: string[]; list?: string }[] = [
  { format: 'deb', files: ['/var/lib/dpkg/status'], list: '/var/lib/dpkg/status' },
  { format: 'rpm', files: ['/var/lib/rpm/Packages', '/var/lib/rpm/rpmdb.sqlite', '/usr/lib/sysimage/rpm/rpmdb.sqlite'] },
  { format: 'apk', files: ['/lib/apk/db/installed'], list: '/lib/apk/db/installed' },
  { format: 'pacman', files: ['/var/lib/pacman/local/ALPM_DB_VERSION'] },
];

/** The package managers a format's systems use, each known by a program of its own. */
export const PACKAGE_MANAGERS: { name: string; program: string; format: PackageFormat }[] = [
  { name: 'apt', program: '/usr/bin/apt-get', format: 'deb' },
  { name: 'dnf', program: '/usr/bin/dnf', format: 'rpm' },
  { name: 'yum', program: '/usr/bin/yum', format: 'rpm' },
  { name: 'zypper', program: '/usr/bin/zypper', format: 'rpm' },
  { name: 'apk', program: '/sbin/apk', format: 'apk' },
  { name: 'pacman', program: '/usr/bin/pacman', format: 'pacman' },
];

export function parsePackages(format: PackageFormat, text: string): Package[] {
  if (format === 'deb') return listDpkgPackages(text);
  if (format === 'apk') return parseApkInstalled(text);
  return [];
}

/** apk's `installed`: paragraphs of one-letter fields, P: name, V: version, A: arch. */
function parseApkInstalled(text: string): Package[] {
  const out: Package[] = [];
  for (const para of text.split('\n\n')) {
    const field = (k: string) => new RegExp(`^${k}:(.*)$`, 'm').exec(para)?.[1]?.trim();
    const name = field('P');
    if (name) out.push({ name, version: field('V') ?? '', arch: field('A') ?? '' });
  }
  return out;
}
