import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { copyFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheLimits, evict } from '../cache/evict.js';
import { deriveKey, fingerprint, type KeyInput } from './key.js';
import { BUILD_FORMAT } from './version.js';
import { entryExists } from '../cache/entries.js';
import { withCacheEntry } from '../cache/make-entry.js';
import { writeRecord } from '../cache/records.js';
import { writeExt2 } from '../formats/ext2/index.js';
import { buildGuestPrograms, INIT_SOURCE_DIR } from '../guest/compile.js';
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

/**
 * The slow path of buildAppliance: find the kernel, build the init, resolve the file
 * list, compute the key, and build the entry if the cache does not have it.
 */
export async function resolveAndBuild(ctx: MakeContext): Promise<Appliance> {
  const started = performance.now();
  const { root, request, log } = ctx;
  const { warn } = ctx;

  const kernel = await findKernel({ kernel: request.kernel });
  log(`kernel: ${kernel.path} (release ${kernel.version}, modules in ${kernel.modulesDir})`);
  // The init compiles (first time only) while the file list is resolved.
  const initBuild = buildGuestPrograms({ cacheDir: root });
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
  // The writer counts files with content (empty ones have nothing to write).
  const withContent = entries.filter((e) => e.type === 'file' && (e.size ?? 0) > 0).length;
  log(`root: ${entries.length} entries, ${fileCount} files, ${(contentBytes / 1e6).toFixed(1)} MB of content`);
  log(`initrd modules: ${initrdModules.map((m) => m.name).join(' ')}`);

  // The key: what is not a host file (options, versions, made-up entries) described,
  // and the host files' state digested.
  const inputs: KeyInput[] = [
    ...[...plan.files.sources.keys()].sort().map((path): KeyInput => ({ path, kind: 'lstat' })),
    { path: kernel.path, kind: 'stat' },
    ...initrdModules.map((m): KeyInput => ({ path: m.hostPath, kind: 'stat' })),
  ];
  const description = {
    format: BUILD_FORMAT,
    version: ctx.version,
    request,
    kernelVersion: kernel.version,
    init: init.hash,
    initrdModules: initrdModules.map((m) => m.relPath),
    rootModules: plan.modules.map((m) => m.relPath),
    // Host entries are described by where they come from (their state is in the digest);
    // the others (mount points, the agent, folders made for includes) by what they are.
    entries: entries.map((e) => {
      const host = plan.files.hostOf.get(String(e.path));
      if (host !== undefined) return [e.path, host];
      const made = [e.path, e.type, e.mode, e.uid, e.gid, e.mtime, e.size ?? 0];
      return e.source?.kind === 'bytes' ? [...made, createHash('sha256').update(e.source.data).digest('hex')] : made;
    }),
  };
  const watch = watchList(request, kernel.modulesDir, init.compiler, plan.includeDirs);
  const [digest, watchDigest] = await Promise.all([fingerprint(inputs, request.strict, plan.files.sources), fingerprint(watch, false)]);
  const key = deriveKey(description, digest);
  const record: BuildRecord = { version: ctx.version, key, inputs, digest, watch, watchDigest };
  await writeRecord(root, ctx.recordId, record);

  if (entryExists(root, key)) {
    const hit = await verifiedHit(root, key, request.strict, warn);
    if (hit) {
      log(`cache hit after resolving: the inputs are unchanged (${key})`);
      return hit;
    }
  }
  log(`cache miss: building ${key}`);

  const result = await withCacheEntry(
    root,
    key,
    async (tmp) => {
      const kernelOut = join(tmp, 'kernel');
      const initrdOut = join(tmp, 'initrd');
      const rootOut = join(tmp, 'root.ext2');
      const [, initrd, ext2] = await Promise.all([
        copyFile(kernel.path, kernelOut),
        buildInitrd({ kernel, init: init.init, output: initrdOut }),
        writeExt2(entries, rootOut, {
          squashOwner: request.squashOwner,
          sourceDateEpoch: request.sourceDateEpoch,
          extraBytes: ROOT_EXTRA_BYTES,
          onProgress: ctx.onProgress
            ? (p) => ctx.onProgress!({ files: p.files, totalFiles: withContent, bytes: p.bytes, totalBytes: contentBytes })
            : undefined,
        }),
      ]);
      const [kernelSha, initrdSha, rootSha] = await Promise.all([sha256File(kernelOut), sha256File(initrdOut), sha256File(rootOut)]);
      const manifest: Manifest = {
        format: 1,
        version: ctx.version,
        key,
        created: new Date().toISOString(),
        buildMs: Math.round(performance.now() - started),
        inputs: request,
        kernel: { source: kernel.path, version: kernel.version, size: (await stat(kernelOut)).size, sha256: kernelSha },
        initrd: { size: initrd.size, sha256: initrdSha, modules: initrd.modules.map((m) => m.name) },
        root: {
          size: ext2.sizeBytes,
          uuid: ext2.uuid,
          sha256: rootSha,
          entries: entries.length,
          files: fileCount,
          contentBytes,
          modules: plan.modules.map((m) => m.name),
        },
        init: { hash: init.hash, compiler: init.compiler },
        stamps: await stampsOf(tmp),
        packages: plan.packages,
        binaries: plan.binaries,
        skipped: plan.files.skipped,
      };
      await writeManifest(tmp, manifest);
    },
    { onWait: (pid) => log(`process ${pid} is building the same appliance: waiting for it`) },
  );
  log(result.hit ? `another process built ${key} meanwhile: using it` : `built ${result.dir}`);
  const removed = await evict(root, cacheLimits(), [key]);
  for (const e of removed) log(`cache eviction: removed ${e.key} (least recently used)`);
  return applianceAt(root, key, result.hit);
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
    INIT_SOURCE_DIR,
    ...readdirSync(INIT_SOURCE_DIR)
      .filter((n) => /\.[ch]$/.test(n))
      .sort()
      .map((n) => join(INIT_SOURCE_DIR, n)),
    ...(request.kernel ? [] : ['/boot', '/lib/modules']),
    ...request.includes.map((i) => i.host),
    ...includeDirs,
  ];
  return [...new Set(paths)].map((path) => ({ path, kind: 'watch' }));
}
