/**
 * The installed packages of an rpm system, from its package database, read on the host.
 *
 * Why here, in TypeScript, rather than with rpm in the appliance (as libguestfs runs
 * librpm chrooted into the guest): the appliance is built from the host's files, and a
 * Debian host may have no rpm or sqlite at all; nothing in the image is executed, locked
 * or replayed (rpm would open the guest's database read-write to take its lock, and
 * libguestfs's librpm reads the guest's own macros and configuration); parsing untrusted
 * bytes in a bounded reader on the host cannot corrupt the host, where a C library fed a
 * hostile database can; and it costs one fetch of one file and a parse, no other round
 * trips to the guest. The formats are documented (rpm's header blob; the SQLite file
 * format; Berkeley DB's hash pages; rpm's ndb), and only their read side is needed.
 */
import { recordError } from '../pieces.js';
import { chooseBackend, headerBlobs, type RpmBackend, type RpmDatabaseFiles } from './backends.js';
import { readRpmHeader, type RpmPackage } from './header.js';
import { rpmVersionCompare } from './vercmp.js';

export { BACKEND_FILES, type RpmBackend, type RpmDatabaseFiles } from './backends.js';
export type { RpmPackage } from './header.js';
export { rpmVersionCompare } from './vercmp.js';

export interface RpmPackageList {
  /** The database read; undefined when there was none. */
  backend?: RpmBackend;
  /** Every package whose header could be read, gpg-pubkey pseudo-packages included (as rpm -qa and libguestfs list them), by name, then epoch, version, release and arch. */
  packages: RpmPackage[];
  /** Why some or all of the packages are missing: a damaged database, or damaged records in one. */
  error?: string;
}

/**
 * The packages in the database rpm would read (backends.ts chooseBackend). Never throws
 * for what the files hold: a damaged database gives the packages read before and after
 * the damage, and an error that says what and where.
 */
export function rpmPackages(files: RpmDatabaseFiles): RpmPackageList {
  const backend = chooseBackend(files);
  if (!backend) return { packages: [], error: 'no rpm database (rpmdb.sqlite, Packages.db or Packages)' };
  const packages: RpmPackage[] = [];
  const damaged = new Damage();
  try {
    for (const record of headerBlobs(backend, files)) {
      if (record.error) damaged.record(record.key, record.error);
      else
        try {
          packages.push(readRpmHeader(record.value));
        } catch (error) {
          damaged.record(record.key, error);
        }
    }
  } catch (error) {
    damaged.whole(error);
  }
  return { backend, packages: packages.sort(comparePackages), error: damaged.summary(backend, packages.length) };
}

/** What went wrong, counted: the first damaged record's error is kept, and what ended the read early. */
class Damage {
  private count = 0;
  private first?: string;
  private fatal?: string;

  record(key: number | undefined, error: unknown): void {
    const e = recordError(error);
    this.count++;
    this.first ??= key === undefined ? e.message : `record ${key}: ${e.message}`;
  }

  whole(error: unknown): void {
    this.fatal = recordError(error).message;
  }

  summary(backend: RpmBackend, read: number): string | undefined {
    const parts: string[] = [];
    if (this.fatal) parts.push(read > 0 ? `${this.fatal} (after ${read} packages)` : this.fatal);
    if (this.count > 0) parts.push(`${this.count} damaged record${this.count === 1 ? '' : 's'} skipped, the first: ${this.first}`);
    return parts.length > 0 ? `rpm ${backend} database: ${parts.join('; ')}` : undefined;
  }
}

function comparePackages(a: RpmPackage, b: RpmPackage): number {
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  if (a.epoch !== b.epoch) return a.epoch - b.epoch;
  return rpmVersionCompare(a.version, b.version) || rpmVersionCompare(a.release, b.release) || (a.arch === b.arch ? 0 : a.arch < b.arch ? -1 : 1);
}
