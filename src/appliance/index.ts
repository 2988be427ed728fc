// appliance: what goes into an appliance and how it is composed: the host's files, the key, the root image, the initrd, the manifest; cached whole.
import { createHash } from 'node:crypto';
import { isAbsolute, resolve } from 'node:path';
import { cacheRootPath, ensureCacheRoot } from '../cache/dir.js';
import { fingerprint } from './key.js';
import { entryExists } from '../cache/entries.js';
import { readRecord } from '../cache/records.js';
import { ApplianceError } from '../errors.js';
import { DEFAULT_ROOT_MODULES } from './default.js';
import { moduleName } from '../kernel/modules.js';
import { verifiedHit } from './integrity.js';
import type { Appliance, BuildOptions, BuildRecord, BuildRequest } from './types.js';
import { BUILD_FORMAT, packageRoot, packageVersion } from './version.js';

export type { Appliance, BuildOptions, BuildProgress, BuildRecord, BuildRequest, Manifest } from './types.js';

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

/**
 * Of the modules `names`, those the appliance's root holds (modprobe loads them), and the
 * others: built into its kernel, or not in the kernel at all (Debian's cloud kernel has no
 * f2fs, say), which a modprobe of them would only report as a failure.
 */
export function modulesHeld(appliance: Appliance, names: readonly string[]): { held: string[]; absent: string[] } {
  const root = new Set(appliance.manifest.root.modules.map(moduleName));
  const held: string[] = [];
  const absent: string[] = [];
  for (const name of names) (root.has(moduleName(name)) ? held : absent).push(name);
  return { held, absent };
}

/**
 * Names the record of a request: the request, our version and where our package is (two
 * checkouts of one version build their own guest programs: a record of one, whose inputs
 * are its files, must not answer for the other), and the $PATH programs are looked up in.
 */
export function recordId(request: BuildRequest, version: string, env: NodeJS.ProcessEnv = process.env): string {
  const text = JSON.stringify({ version, format: BUILD_FORMAT, request, path: env.PATH ?? '', at: packageRoot() ?? '' });
  return `build-${createHash('sha256').update(text).digest('hex').slice(0, 32)}`;
}

/**
 * Builds the appliance (kernel, initrd, root.ext2, manifest.json) for these options,
 * or finds it in the cache. A cache hit only stats the files the last build was made
 * from; the resolution and the writers are loaded only when something changed.
 */
export async function buildAppliance(opts: BuildOptions = {}): Promise<Appliance> {
  const log = opts.log ?? (() => {});
  const warn = opts.warn ?? ((msg: string) => process.stderr.write(`appliance: warning: ${msg}\n`));
  const root = await ensureCacheRoot(opts.cacheDir ?? cacheRootPath());
  const version = packageVersion();
  const request = normalizeOptions(opts);
  const id = recordId(request, version);

  const record = await readRecord<BuildRecord>(root, id);
  if (record?.version === version && entryExists(root, record.key)) {
    const [watchDigest, digest] = await Promise.all([fingerprint(record.watch, false), fingerprint(record.inputs, request.strict)]);
    if (watchDigest === record.watchDigest && digest === record.digest) {
      const hit = await verifiedHit(root, record.key, request.strict, warn);
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
  return resolveAndBuild({ root, request, recordId: id, version, log, warn, onProgress: opts.onProgress });
}
