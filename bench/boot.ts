/**
 * `npm run bench:boot`: `appliance boot -- true` with a cached appliance against
 * libguestfs's `guestfish -a /dev/null run`, same accelerator (TCG: see DEVELOPERS.md),
 * alternating, median of RUNS after a warm-up each. Peak memory is the largest sum of
 * the resident sets of the whole process tree (our node + qemu; guestfish + its qemu),
 * sampled from /proc. Then, on one booted VM: the round trip of one exec and stdout
 * throughput.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { boot } from '../src/vm/vm.js';
import { median } from './stats.js';

const CLI = resolve('dist/src/cli.js');
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const LIBGUESTFS_ENV = { ...process.env, LIBGUESTFS_BACKEND: 'direct', LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' };

interface Sample {
  ms: number;
  peakRssKb: number;
  stderr: string;
}

/** The pids below `root` (inclusive), from /proc's parent links. */
function tree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    out.push(pid);
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

function rssKb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Sample> {
  return new Promise((resolvePromise, reject) => {
    const t = performance.now();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, tree(child.pid!).reduce((sum, pid) => sum + rssKb(pid), 0));
    }, 25);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearInterval(sampler);
      const ms = performance.now() - t;
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}:\n${stderr}`));
      else resolvePromise({ ms, peakRssKb: peak, stderr });
    });
  });
}

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const mib = (kb: number) => `${(kb / 1024).toFixed(0)} MiB`;

async function main(): Promise<void> {
  const ours = () => run(process.execPath, [CLI, 'boot', '--accel', 'tcg', '--', 'true']);
  const guestfish = () => run('guestfish', ['-a', '/dev/null', 'run'], LIBGUESTFS_ENV);
  const breakdown = () => run(process.execPath, [CLI, 'boot', '--accel', 'tcg', '--verbose', '--', 'true']);

  console.log(`boot to a finished command, ${RUNS} runs each after a warm-up, alternating (TCG for both)`);
  await ours(); // builds the default appliance on a fresh cache
  await guestfish(); // builds libguestfs's cached appliance
  const a: Sample[] = [];
  const b: Sample[] = [];
  for (let i = 0; i < RUNS; i++) {
    a.push(await ours());
    b.push(await guestfish());
  }
  const oursMs = median(a.map((x) => x.ms));
  const gfMs = median(b.map((x) => x.ms));
  console.log(`appliance boot -- true     median ${s(oursMs)}  (runs: ${a.map((x) => s(x.ms)).join(', ')})`);
  console.log(`guestfish -a /dev/null run median ${s(gfMs)}  (runs: ${b.map((x) => s(x.ms)).join(', ')})`);
  console.log(`speed-up over libguestfs: ${(gfMs / oursMs).toFixed(1)}x (target: at least 6x; at most 1.5 s on the reference machine)`);
  const oursRss = median(a.map((x) => x.peakRssKb));
  const gfRss = median(b.map((x) => x.peakRssKb));
  console.log(`peak RSS, whole process tree: ours ${mib(oursRss)}, libguestfs ${mib(gfRss)} (ratio ${(oursRss / gfRss).toFixed(2)}, target: at most 0.5)`);

  const stages = (await breakdown()).stderr.split('\n').find((l) => l.includes('booted with'));
  console.log(`boot stages: ${stages?.replace(/^appliance: /, '') ?? '(not reported)'}`);

  const vm = await boot({ accel: 'tcg' });
  try {
    const trips: number[] = [];
    for (let i = 0; i < 21; i++) {
      const t = performance.now();
      await vm.exec(['true']);
      trips.push(performance.now() - t);
    }
    console.log(`exec round trip (true): median ${median(trips.slice(1)).toFixed(1)} ms over 20`);
    const bytes = 64 << 20;
    const t = performance.now();
    const r = await vm.exec(['head', '-c', String(bytes), '/dev/zero']);
    const sec = (performance.now() - t) / 1000;
    if (r.stdout.length !== bytes) throw new Error(`expected ${bytes} bytes of stdout, got ${r.stdout.length}`);
    console.log(`stdout throughput: ${(bytes / 2 ** 20 / sec).toFixed(1)} MiB/s (${bytes >> 20} MiB in ${sec.toFixed(2)} s)`);
  } finally {
    await vm.close();
  }
}

await main();
