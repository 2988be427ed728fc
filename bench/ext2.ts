/**
 * `npm run bench:ext2`: our ext2 writer against `mke2fs -d` on the same tree and image
 * size. Alternating runs, median of 5 after a warm-up each, every run from a fresh
 * output file with dirty pages synced first. Both run as processes (Node's start counts
 * for us), under GNU time for the peak RSS.
 *
 * Default tree: libguestfs's appliance tree (`supermin --build --format chroot`), cached
 * in os.tmpdir()/appliance-bench/; `--tree DIR` benchmarks another folder.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { median } from './stats.js';

const SUPERMIN_D = '/usr/lib/x86_64-linux-gnu/guestfs/supermin.d';
const CLI = resolve('dist/src/bin.cjs');
const RUNS = 5;

interface Run {
  ms: number;
  rssKb: number;
  stdout: string;
}

function run(cmd: string, args: string[]): Run {
  spawnSync('sync');
  const t = performance.now();
  const res = spawnSync('/usr/bin/time', ['-v', cmd, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const ms = performance.now() - t;
  if (res.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${res.status}):\n${res.stderr}`);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(res.stderr);
  if (!rss) throw new Error(`no "Maximum resident set size" from /usr/bin/time -v:\n${res.stderr}`);
  return { ms, rssKb: Number(rss[1]), stdout: res.stdout };
}

function defaultTree(): string {
  const cache = join(tmpdir(), 'appliance-bench');
  const tree = join(cache, 'tree');
  if (existsSync(tree)) return tree;
  if (!existsSync(SUPERMIN_D)) {
    console.error(`bench:ext2 needs libguestfs's supermin.d (${SUPERMIN_D}) for its default tree: apt-get install libguestfs-tools, or give --tree DIR`);
    process.exit(1);
  }
  mkdirSync(cache, { recursive: true });
  const partial = join(cache, 'tree.partial');
  rmSync(partial, { recursive: true, force: true });
  console.log(`building the default tree with supermin into ${tree} (once)`);
  const res = spawnSync('supermin', ['--build', '--format', 'chroot', SUPERMIN_D, '-o', partial], { stdio: 'inherit' });
  if (res.status !== 0) throw new Error(`supermin failed (${res.status})`);
  renameSync(partial, tree);
  return tree;
}

function main(): void {
  const at = process.argv.indexOf('--tree');
  const tree = at >= 0 ? resolve(process.argv[at + 1] ?? '') : defaultTree();
  const work = mkdtempSync(join(tmpdir(), 'bench-ext2-'));
  const image = join(work, 'image.img');
  const ours = (size?: number) => {
    rmSync(image, { force: true });
    return run(process.execPath, [CLI, 'mkext2', tree, image, '--json', ...(size ? ['--size', String(size)] : [])]);
  };
  const mke2fs = (size: number) => {
    rmSync(image, { force: true });
    return run('mke2fs', ['-q', '-t', 'ext2', '-d', tree, '-F', image, `${size / 1024}k`]);
  };
  try {
    // The warm-up run sizes the image; both writers then fill that same size.
    const sized = JSON.parse(ours().stdout) as { sizeBytes: number; blocksTotal: number; blocksFree: number; blockSize: number };
    const size = sized.sizeBytes;
    const check = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' });
    if (check.status !== 0) throw new Error(`e2fsck -fn on our image failed:\n${check.stdout}${check.stderr}`);
    mke2fs(size);
    const usedMiB = ((sized.blocksTotal - sized.blocksFree) * sized.blockSize) / 2 ** 20;
    console.log(`tree ${tree}: image ${(size / 2 ** 20).toFixed(1)} MiB (${usedMiB.toFixed(1)} MiB used); ${RUNS} runs each after a warm-up, alternating`);

    const oursRuns: Run[] = [];
    const theirs: Run[] = [];
    for (let i = 0; i < RUNS; i++) {
      oursRuns.push(ours(size));
      theirs.push(mke2fs(size));
    }
    const a = median(oursRuns.map((r) => r.ms));
    const b = median(theirs.map((r) => r.ms));
    const peak = Math.max(...oursRuns.map((r) => r.rssKb));
    console.log(`ours   (appliance mkext2): median ${a.toFixed(0)} ms  [${oursRuns.map((r) => r.ms.toFixed(0)).join(' ')}]`);
    console.log(`mke2fs -d:                 median ${b.toFixed(0)} ms  [${theirs.map((r) => r.ms.toFixed(0)).join(' ')}]`);
    console.log(`ratio ours/mke2fs: ${(a / b).toFixed(2)} (target <= 1.0, aim 0.6)`);
    console.log(`peak RSS: ours ${(peak / 1024).toFixed(0)} MiB (target < 200), mke2fs ${(Math.max(...theirs.map((r) => r.rssKb)) / 1024).toFixed(0)} MiB`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main();
