/**
 * `npm run bench:build`: our build against supermin's, from the Debian package list
 * libguestfs's appliance is made of. Alternating runs, median of 5 after a warm-up
 * each. Ours runs with its cache emptied before each run, so it really resolves and
 * writes everything; the compiled init is kept, as supermin's prebuilt init is.
 * Then the no-op build (a cache hit) beside `node -e 0`, alternating (what the build adds to
 * Node's own start), and the compiled init's cache hit (in process: what every build that
 * resolves pays for it).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { layout } from '../src/cache/layout.js';
import { buildGuestPrograms } from '../src/guest/compile.js';
import { median } from './stats.js';

const SUPERMIN_D = '/usr/lib/x86_64-linux-gnu/guestfs/supermin.d';
const CLI = resolve('dist/src/bin.cjs');
const RUNS = 5;

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): { ms: number; stdout: string } {
  const t = performance.now();
  const res = spawnSync(cmd, args, { encoding: 'utf8', env, maxBuffer: 64 << 20 });
  const ms = performance.now() - t;
  if (res.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${res.status}):\n${res.stderr}`);
  return { ms, stdout: res.stdout };
}

const fmt = (ms: number) => `${ms.toFixed(0)} ms`;

async function main(): Promise<void> {
  if (!existsSync(join(SUPERMIN_D, 'packages'))) {
    console.error(`bench:build needs libguestfs's supermin.d (${SUPERMIN_D}): apt-get install libguestfs-tools`);
    process.exit(1);
  }
  const packages = readFileSync(join(SUPERMIN_D, 'packages'), 'utf8')
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);
  const work = mkdtempSync(join(tmpdir(), 'bench-build-'));
  const cacheDir = join(work, 'cache');
  const ours = async () => {
    // Entries and records go; the compiled init stays (init/), as supermin's prebuilt init does.
    for (const dir of [layout.entries(cacheDir), layout.records(cacheDir)]) rmSync(dir, { recursive: true, force: true });
    return timed(process.execPath, [CLI, 'build', '--packages', packages.join(','), '--cache-dir', cacheDir, '--json']);
  };
  const supermin = () => {
    const out = join(work, 'supermin-out');
    rmSync(out, { recursive: true, force: true });
    return timed('supermin', ['--build', '--format', 'ext2', SUPERMIN_D, '-o', out]);
  };

  try {
    console.log(`${packages.length} packages from ${join(SUPERMIN_D, 'packages')}; ${RUNS} runs each after a warm-up, alternating`);
    const first = JSON.parse((await ours()).stdout) as {
      manifest: { packages: unknown[]; root: { files: number; entries: number; contentBytes: number; size: number } };
    };
    supermin();
    const oursMs: number[] = [];
    const superminMs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      oursMs.push((await ours()).ms);
      superminMs.push(supermin().ms);
    }
    const noop = Array.from(
      { length: RUNS + 1 },
      () => timed(process.execPath, [CLI, 'build', '--packages', packages.join(','), '--cache-dir', cacheDir]).ms,
    ).slice(1);
    const defaultCache = join(work, 'default-cache');
    const inCache = { ...process.env, APPLIANCE_CACHE_DIR: defaultCache };
    timed(process.execPath, [CLI, 'build'], inCache);
    timed(process.execPath, [CLI, 'build'], inCache); // the second keeps the code cache (src/bin.cts)
    // Node's own start, alternating with the no-op build: the difference is what the build costs.
    const nodeAlone: number[] = [];
    const noopDefault: number[] = [];
    for (let i = 0; i < 4 * RUNS; i++) {
      nodeAlone.push(timed(process.execPath, ['-e', '0']).ms);
      noopDefault.push(timed(process.execPath, [CLI, 'build'], inCache).ms);
    }
    const initHit = [];
    for (let i = 0; i <= RUNS; i++) {
      const t = performance.now();
      await buildGuestPrograms({ cacheDir });
      initHit.push(performance.now() - t);
    }

    const r = first.manifest.root;
    console.log(
      `ours:     ${first.manifest.packages.length} packages in the closure, ${r.files} files (${r.entries} entries), ${(r.contentBytes / 1e6).toFixed(1)} MB of content`,
    );
    console.log(`ours     median ${fmt(median(oursMs))}  (runs: ${oursMs.map(fmt).join(', ')})`);
    console.log(`supermin median ${fmt(median(superminMs))}  (runs: ${superminMs.map(fmt).join(', ')})`);
    console.log(`ratio ours/supermin: ${(median(oursMs) / median(superminMs)).toFixed(2)} (target: at most 1.00)`);
    console.log(`no-op build (cache hit), this package list: median ${fmt(median(noop))}`);
    console.log(
      `no-op build (cache hit), default appliance: median ${fmt(median(noopDefault))}, node -e 0 ${fmt(median(nodeAlone))}: ` +
        `${fmt(median(noopDefault) - median(nodeAlone))} over Node's start (target: at most 50 ms)`,
    );
    console.log(`compiled init and agent, cache hit (in process): median ${fmt(median(initHit.slice(1)))}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
