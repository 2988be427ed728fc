import { createHash } from 'node:crypto';
import { copyFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { cacheLimits, evict } from '../cache/evict.js';
import { deriveKey, fingerprint, type KeyInput } from './key.js';
import { BUILD_FORMAT } from './version.js';
import { entryExists } from '../cache/entries.js';
import { withCacheEntry } from '../cache/make-entry.js';
import { writeRecord } from '../cache/records.js';
import { writeExt2 } from '../formats/ext2/index.js';
import { buildGuestPrograms, guestSourceNames, INIT_SOURCE_DIR, type GuestPrograms } from '../guest/compile.js';
import type { Entry } from '../formats/entry.js';
import { formatSize } from '../units.js';
import { APPLIANCE_MODULES, findKernel, resolveModules } from '../kernel/index.js';
import { buildInitrd } from './initrd.js';
import { executableSearchPath } from '../host/which.js';
import { DPKG_ADMIN_DIR } from '../host/dpkg.js';
import { librarySearchDirs } from '../host/elf.js';
import type { Appliance, BuildProgress, BuildRecord, BuildRequest, Manifest } from './types.js';
import { sha256File } from '../files.js';
import { applianceAt, writeManifest } from './manifest.js';
import { stampsOf, verifiedHit } from './integrity.js';
import { assembleRoot, finishRoot } from './root.js';

export interface MakeContext {
  root: string;
  request: BuildRequest;
  recordId: string;
  version: string;
  log: (msg: string) => void;
  warn: (msg: string) => void;
  onProgress?: (p: BuildProgress) => void;
}

/** Free space left in root.ext2, for what the guest writes outside its tmpfs mounts. */
const ROOT_EXTRA_BYTES = 8 * 1024 * 1024;

/** What the resolution found: the kernel, the guest programs, the root's entries and where they come from. */
interface Resolved {
  kernel: Awaited<ReturnType<typeof findKernel>>;
  init: GuestPrograms;
  initrdModules: Awaited<ReturnType<typeof resolveModules>>;
  plan: Awaited<ReturnType<typeof assembleRoot>>;
  entries: Entry[];
  fileCount: number;
  contentBytes: number;
}

/**
 * The slow path of buildAppliance: find the kernel, build the init, resolve the file
 * list, compute the key, and build the entry if the cache does not have it.
 */
export async function resolveAndBuild(ctx: MakeContext): Promise<Appliance> {
  const started = performance.now();
  const r = await resolve(ctx);
  const key = await keyOf(ctx, r);
  if (entryExists(ctx.root, key)) {
    const hit = await verifiedHit(ctx.root, key, ctx.request.strict, ctx.warn);
    if (hit) {
      ctx.log(`cache hit after resolving: the inputs are unchanged (${key})`);
      return hit;
    }
  }
  ctx.log(`cache miss: building ${key}`);
  const result = await withCacheEntry(ctx.root, key, (tmp) => buildEntry(ctx, r, key, tmp, started), {
    onWait: (pid) => ctx.log(`process ${pid} is building the same appliance: waiting for it`),
  });
  ctx.log(result.hit ? `another process built ${key} meanwhile: using it` : `built ${result.dir}`);
  const removed = await evict(ctx.root, cacheLimits(), [key]);
  for (const e of removed) ctx.log(`cache eviction: removed ${e.key} (least recently used)`);
  return applianceAt(ctx.root, key, result.hit);
}

/** The kernel, the guest programs (compiled while the file list resolves) and the root's entries. */
async function resolve(ctx: MakeContext): Promise<Resolved> {
  const { request, log, warn } = ctx;
  const kernel = await findKernel({ kernel: request.kernel });
  log(`kernel: ${kernel.path} (release ${kernel.version}, modules in ${kernel.modulesDir})`);
  const initBuild = buildGuestPrograms({ cacheDir: ctx.root });
  initBuild.catch(() => {}); // awaited below; a failing file list must not leave it unhandled
  const plan = await assembleRoot(
    { packages: request.packages, binaries: request.binaries, includes: request.includes, modules: request.modules },
    { kernel, log, warn },
  );
  const [init, initrdModules] = await Promise.all([initBuild, resolveModules(kernel.modulesDir, APPLIANCE_MODULES)]);
  log(`init and agent: built with ${init.compiler} (${init.hash})`);
  finishRoot(plan.files, init, request.sourceDateEpoch);
  const entries = plan.files.sorted();
  const fileCount = entries.filter((e) => e.type === 'file').length;
  const contentBytes = entries.reduce((n, e) => n + (e.type === 'file' ? (e.size ?? 0) : 0), 0);
  log(`root: ${entries.length} entries, ${fileCount} files, ${formatSize(contentBytes)} of content`);
  log(`initrd modules: ${initrdModules.map((m) => m.name).join(' ')}`);
  return { kernel, init, initrdModules, plan, entries, fileCount, contentBytes };
}

/**
 * The key: what is not a host file (options, versions, made-up entries) described, and the
 * host files' state digested; recorded, so that the next build's fast path can check it.
 */
async function keyOf(ctx: MakeContext, r: Resolved): Promise<string> {
  const { request } = ctx;
  const inputs: KeyInput[] = [
    ...[...r.plan.files.sources.keys()].sort().map((path): KeyInput => ({ path, kind: 'lstat' })),
    { path: r.kernel.path, kind: 'stat' },
    ...r.initrdModules.map((m): KeyInput => ({ path: m.hostPath, kind: 'stat' })),
  ];
  const description = {
    format: BUILD_FORMAT,
    version: ctx.version,
    request,
    kernelVersion: r.kernel.version,
    init: r.init.hash,
    initrdModules: r.initrdModules.map((m) => m.relPath),
    rootModules: r.plan.modules.map((m) => m.relPath),
    // Host entries are described by where they come from (their state is in the digest);
    // the others (mount points, the agent, folders made for includes) by what they are.
    entries: r.entries.map((e) => {
      const host = r.plan.files.hostOf.get(String(e.path));
      if (host !== undefined) return [e.path, host];
      const made = [e.path, e.type, e.mode, e.uid, e.gid, e.mtime, e.size ?? 0];
      return e.source?.kind === 'bytes' ? [...made, createHash('sha256').update(e.source.data).digest('hex')] : made;
    }),
  };
  const watch = watchList(request, r.kernel.modulesDir, r.init.compiler, r.plan.includeDirs);
  const [digest, watchDigest] = await Promise.all([fingerprint(inputs, request.strict, r.plan.files.sources), fingerprint(watch, false)]);
  const key = deriveKey(description, digest);
  const record: BuildRecord = { version: ctx.version, key, inputs, digest, watch, watchDigest };
  await writeRecord(ctx.root, ctx.recordId, record);
  return key;
}

/** The entry's files, written into `tmp` together: the kernel, the initrd, the root image, then the manifest. */
async function buildEntry(ctx: MakeContext, r: Resolved, key: string, tmp: string, started: number): Promise<void> {
  const [kernelOut, initrdOut, rootOut] = [join(tmp, 'kernel'), join(tmp, 'initrd'), join(tmp, 'root.ext2')];
  // The writer counts files with content (empty ones have nothing to write).
  const withContent = r.entries.filter((e) => e.type === 'file' && (e.size ?? 0) > 0).length;
  const [, initrd, ext2] = await Promise.all([
    copyFile(r.kernel.path, kernelOut),
    buildInitrd({ kernel: r.kernel, init: r.init.init, output: initrdOut }),
    writeExt2(r.entries, rootOut, {
      squashOwner: ctx.request.squashOwner,
      sourceDateEpoch: ctx.request.sourceDateEpoch,
      extraBytes: ROOT_EXTRA_BYTES,
      onProgress: ctx.onProgress ? (p) => ctx.onProgress!({ files: p.files, totalFiles: withContent, bytes: p.bytes, totalBytes: r.contentBytes }) : undefined,
    }),
  ]);
  const [kernelSha, initrdSha, rootSha] = await Promise.all([sha256File(kernelOut), sha256File(initrdOut), sha256File(rootOut)]);
  const manifest: Manifest = {
    format: 1,
    version: ctx.version,
    key,
    created: new Date().toISOString(),
    buildMs: Math.round(performance.now() - started),
    inputs: ctx.request,
    kernel: { source: r.kernel.path, version: r.kernel.version, size: (await stat(kernelOut)).size, sha256: kernelSha },
    initrd: { size: initrd.size, sha256: initrdSha, modules: initrd.modules.map((m) => m.name) },
    root: {
      size: ext2.sizeBytes,
      uuid: ext2.uuid,
      sha256: rootSha,
      entries: r.entries.length,
      files: r.fileCount,
      contentBytes: r.contentBytes,
      modules: r.plan.modules.map((m) => m.name),
    },
    init: { hash: r.init.hash, compiler: r.init.compiler },
    stamps: await stampsOf(tmp),
    packages: r.plan.packages,
    binaries: r.plan.binaries,
    skipped: r.plan.files.skipped,
  };
  await writeManifest(tmp, manifest);
}

/**
 * What the resolution looked at besides the inputs: a change to any means the same
 * options might now resolve to other files (a new package, a program earlier in
 * $PATH, a library in another folder, a new kernel, changed init sources).
 */
function watchList(request: BuildRequest, modulesDir: string, compiler: string, includeDirs: string[]): KeyInput[] {
  const paths = [
    join(DPKG_ADMIN_DIR, 'status'),
    '/etc/ld.so.cache',
    '/etc/ld.so.conf',
    '/etc/ld.so.conf.d',
    ...librarySearchDirs(),
    ...executableSearchPath(),
    join(modulesDir, 'modules.dep'),
    compiler,
    // The guest programs' sources and the folders that hold them (a file added to one shows there).
    ...guestSourceNames().flatMap((n) => [join(INIT_SOURCE_DIR, dirname(n)), join(INIT_SOURCE_DIR, n)]),
    ...(request.kernel ? [] : ['/boot', '/lib/modules']),
    ...request.includes.map((i) => i.host),
    ...includeDirs,
  ];
  return [...new Set(paths)].map((path) => ({ path, kind: 'watch' }));
}
