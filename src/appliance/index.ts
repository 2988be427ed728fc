import { createHash } from 'node:crypto';
import { isAbsolute, join, resolve } from 'node:path';
import { cacheRootPath, ensureCacheRoot } from '../cache/dir.js';
import { fingerprint, type KeyInput } from './key.js';
import { entryExists, touchEntry } from '../cache/entries.js';
import { layout } from '../cache/layout.js';
import { readRecord } from '../cache/records.js';
import { ApplianceError } from '../errors.js';
import { DEFAULT_ROOT_MODULES } from './default.js';
import { readManifest, type Manifest } from './manifest.js';
import { packageVersion } from './version.js';

export type { Manifest } from './manifest.js';

export interface BuildProgress {
  /** Files and bytes of the root image written so far, of the totals. */
  files: number;
  totalFiles: number;
  bytes: number;
  totalBytes: number;
}

export interface BuildOptions {
  /** Debian packages, with their dependency closure. */
  packages?: string[];
  /** Programs found on $PATH, with the shared libraries they load. */
  binaries?: string[];
  /** Extra host files and folders; `guest` defaults to the host path. */
  includes?: { host: string; guest?: string }[];
  /** The kernel to boot (default: APPLIANCE_KERNEL, else the newest installed). */
  kernel?: string;
  /** Kernel modules for the root, loadable on demand (default: filesystems, see DEFAULT_ROOT_MODULES). */
  modules?: string[];
  /** The cache folder (default: see cacheRootPath). */
  cacheDir?: string;
  /** Key on file contents (sha256) instead of size, mtime and inode. */
  strict?: boolean;
  /** Files owned by root in the image whatever their owner on the host (default true). */
  squashOwner?: boolean;
  /** Explanations of each decision (--verbose). */
  log?: (msg: string) => void;
  /** Host files skipped and other things worth a look; default: a line on stderr. */
  warn?: (msg: string) => void;
  onProgress?: (p: BuildProgress) => void;
}

export interface Appliance {
  /** The cache entry folder holding the four files below. */
  dir: string;
  kernel: string;
  initrd: string;
  root: string;
  manifest: Manifest;
  key: string;
  cacheHit: boolean;
  kernelVersion: string;
}

/** The options reduced to what decides the output, in a canonical form (order-free lists sorted). */
export interface BuildRequest {
  packages: string[];
  binaries: string[];
  includes: { host: string; guest: string }[];
  modules: string[];
  kernel?: string;
  strict: boolean;
  squashOwner: boolean;
  sourceDateEpoch?: number;
}

/**
 * What a set of options resolved to last time: the entry's key, and the host paths
 * it was computed from. While none of those changed, the key is still right and
 * nothing needs resolving again (stat'ing the inputs is all a cache hit costs).
 */
export interface BuildRecord {
  version: string;
  key: string;
  /** The files that make the appliance, and the digest of their state. */
  inputs: KeyInput[];
  digest: string;
  /** What the resolution looked at (dpkg database, $PATH folders, …): a change means resolving again. */
  watch: KeyInput[];
  watchDigest: string;
}

const uniqueSorted = (list: string[] | undefined) => [...new Set((list ?? []).map((s) => s.trim()).filter(Boolean))].sort();

export function normalizeOptions(opts: BuildOptions, env: NodeJS.ProcessEnv = process.env): BuildRequest {
  const epoch = env.SOURCE_DATE_EPOCH;
  if (epoch !== undefined && !/^\d+$/.test(epoch)) {
    throw new ApplianceError('EBADEPOCH', `SOURCE_DATE_EPOCH="${epoch}" is not a number of seconds: unset it or fix it`);
  }
  const kernel = opts.kernel || env.APPLIANCE_KERNEL;
  return {
    packages: uniqueSorted(opts.packages),
    binaries: uniqueSorted(opts.binaries),
    includes: (opts.includes ?? []).map((inc) => {
      const host = resolve(inc.host);
      const guest = inc.guest ?? host;
      return { host, guest: isAbsolute(guest) ? guest : `/${guest}` };
    }),
    modules: opts.modules ? uniqueSorted(opts.modules) : [...DEFAULT_ROOT_MODULES],
    kernel: kernel ? resolve(kernel) : undefined,
    strict: opts.strict ?? false,
    squashOwner: opts.squashOwner ?? true,
    sourceDateEpoch: epoch === undefined ? undefined : Number(epoch),
  };
}

/** Names the record of a request: the request, our version, and the $PATH programs are looked up in. */
export function recordId(request: BuildRequest, version: string, env: NodeJS.ProcessEnv = process.env): string {
  const text = JSON.stringify({ version, request, path: env.PATH ?? '' });
  return `build-${createHash('sha256').update(text).digest('hex').slice(0, 32)}`;
}

/** The Appliance for an existing entry. */
export async function applianceAt(root: string, key: string, cacheHit: boolean): Promise<Appliance> {
  const dir = layout.entry(root, key);
  const manifest = await readManifest(dir);
  return {
    dir,
    kernel: join(dir, 'kernel'),
    initrd: join(dir, 'initrd'),
    root: join(dir, 'root.ext2'),
    manifest,
    key,
    cacheHit,
    kernelVersion: manifest.kernel.version,
  };
}

/**
 * Builds the appliance (kernel, initrd, root.ext2, manifest.json) for these options,
 * or finds it in the cache. A cache hit only stats the files the last build was made
 * from; the resolution and the writers are loaded only when something changed.
 */
export async function buildAppliance(opts: BuildOptions = {}): Promise<Appliance> {
  const log = opts.log ?? (() => {});
  const root = await ensureCacheRoot(opts.cacheDir ?? cacheRootPath());
  const version = packageVersion();
  const request = normalizeOptions(opts);
  const id = recordId(request, version);

  const record = await readRecord<BuildRecord>(root, id);
  if (record?.version === version && entryExists(root, record.key)) {
    const [watchDigest, digest] = await Promise.all([fingerprint(record.watch, false), fingerprint(record.inputs, request.strict)]);
    if (watchDigest === record.watchDigest && digest === record.digest) {
      await touchEntry(root, record.key);
      // Another process may evict the entry between the check and the read: then build.
      const hit = await applianceAt(root, record.key, true).catch(() => undefined);
      if (hit) {
        log(`cache hit: ${hit.dir} (${record.inputs.length} inputs unchanged)`);
        return hit;
      }
    } else {
      log(watchDigest !== record.watchDigest ? 'the host changed since the last build: resolving again' : 'an input file changed: resolving again');
    }
  } else {
    log(record ? 'the last build for these options is no longer in the cache' : 'no earlier build for these options');
  }
  const { resolveAndBuild } = await import('./compose.js');
  return resolveAndBuild({ root, request, recordId: id, version, log, warn: opts.warn, onProgress: opts.onProgress });
}
