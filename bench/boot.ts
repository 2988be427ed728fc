/**
 * `npm run bench:boot`: `appliance boot -- true` with a cached appliance against
 * libguestfs's `guestfish -a /dev/null run`, same accelerator (TCG: see DEVELOPERS.md),
 * alternating, median of RUNS after a warm-up each. Peak memory is the largest sum of
 * the resident sets of the whole process tree (our node + qemu; guestfish + its qemu),
 * sampled from /proc. Then, on one booted VM: the round trip of one exec and stdout
 * throughput.
 */
import { resolve } from 'node:path';
import { boot } from '../src/vm/vm.js';
import { LIBGUESTFS_ENV, run, seconds as s, type Sample } from './run.js';
import { median } from './stats.js';

const CLI = resolve('dist/src/bin.cjs');
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

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
