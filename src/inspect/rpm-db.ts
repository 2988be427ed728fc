/**
 * An rpm system's installed packages: its database's files fetched whole from the image
 * (each bounded), then parsed on the host (formats/rpm says why there, not in the guest).
 * rpm keeps the database in /usr/lib/sysimage/rpm since rpm 4.16 (Fedora 36+, openSUSE,
 * RHEL 10; /var/lib/rpm is then a symlink to it, followed inside the image), and in
 * /var/lib/rpm before; the first folder that holds a database file is the one.
 */
import { rpmPackages, type RpmDatabaseFiles } from '../formats/rpm/index.js';
import type { ReadFileOptions } from './filesystem.js';
import type { Package } from './packages.js';

// libguestfs lists name, epoch, version, release, arch, URL, summary and description (daemon/rpm-c.c): so do we.

export const RPM_DB_DIRS = ['/usr/lib/sysimage/rpm', '/var/lib/rpm'] as const;

/** The files a database is in, by backend (a WAL beside sqlite's: its committed pages count). */
const FILES: Record<keyof RpmDatabaseFiles, string> = {
  sqlite: 'rpmdb.sqlite',
  sqliteWal: 'rpmdb.sqlite-wal',
  ndb: 'Packages.db',
  bdb: 'Packages',
};

/** Bounds a hostile image cannot push past: real databases are tens of MiB (2,000 packages: ~100 MiB at most). */
export const RPM_DB_LIMIT = 512 << 20;

/** The packages, sorted as rpm -qa lists them, and why some or all are missing (a damaged or absent database); `readFile` reads the OS's paths. */
export async function readRpmPackages(readFile: (path: string, opts: ReadFileOptions) => Promise<Buffer>): Promise<{ packages: Package[]; error?: string }> {
  for (const dir of RPM_DB_DIRS) {
    const files: RpmDatabaseFiles = {};
    for (const [key, name] of Object.entries(FILES) as [keyof RpmDatabaseFiles, string][]) {
      files[key] = await readFile(`${dir}/${name}`, { maxBytes: RPM_DB_LIMIT }).catch((err: { code?: string }) => {
        if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
        throw err;
      });
    }
    if (!files.sqlite && !files.ndb && !files.bdb) continue;
    const list = rpmPackages(files);
    return {
      packages: list.packages.map((p) => ({
        name: p.name,
        epoch: p.epoch,
        version: p.version,
        release: p.release,
        arch: p.arch,
        ...(p.url ? { url: p.url } : {}),
        ...(p.summary ? { summary: p.summary } : {}),
        ...(p.description ? { description: p.description } : {}),
      })),
      ...(list.error ? { error: list.error } : {}),
    };
  }
  return { packages: [], error: `no rpm database in ${RPM_DB_DIRS.join(' or ')}` };
}
