/**
 * `npm run bench:stream`: bulk data from the guest to the host on one booted VM (TCG).
 *   stdout  `dd if=/dev/zero bs=1M count=N` streamed with execStream
 *   tmpfs   readFileStream of an N MiB file in the guest's /tmp (page cache: no disk)
 *   disk    readFileStream of an N MiB file of random bytes on an ext2 user disk, mounted
 *           read-only, with the guest's caches dropped before each run (copy-out's case)
 * Median of BENCH_RUNS (default 3) after a warm-up run of each (which also checks the
 * bytes: all zero, or the disk file's sha256). For each case: MiB/s end to end (request
 * to the last byte and, for commands, the EXIT), and the CPU that qemu's threads and this
 * process used per MiB, from /proc/PID/task/TID/stat: under TCG the vCPU thread runs the
 * guest (and the virtio notifications), which is what bounds the rate.
 * BENCH_MIB (default 200) sets N; BENCH_CASES (default stdout,tmpfs,disk) picks cases.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { mkext2 } from '../src/appliance/mkext2.js';
import { boot, type Vm } from '../src/vm/vm.js';
import { median } from './stats.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const MIB = Number(process.env.BENCH_MIB ?? 200);
const CASES = (process.env.BENCH_CASES ?? 'stdout,tmpfs,disk').split(',');
const BYTES = MIB * 2 ** 20;
/** Clock ticks per second of /proc's utime and stime (USER_HZ: 100 on Linux). */
const HZ = 100;

/**
 * CPU ticks (utime + stime) of each thread of a process, by thread id. qemu names its
 * threads only with `-name debug-threads=on`, so they are told apart by what they do:
 * the main loop is the thread whose id is the pid, and under TCG with one CPU the vCPU
 * thread is the busiest of the others (it runs the guest); the rest are qemu's helpers
 * (RCU, the block layer's worker pool).
 */
function threadTicks(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Fields 14 and 15 of stat (utime, stime), counted here from the state field (3).
      out.set(Number(tid), Number(f[11]) + Number(f[12]));
    } catch {
      // a thread that ended meanwhile
    }
  }
  return out;
}

/** Ticks each kind of qemu thread used between two readings. */
function qemuTicks(pid: number, before: Map<number, number>, after: Map<number, number>): { vcpu: number; main: number; other: number } {
  let vcpuTid = -1;
  for (const [tid, ticks] of after) if (tid !== pid && (vcpuTid < 0 || ticks > after.get(vcpuTid)!)) vcpuTid = tid;
  const res = { vcpu: 0, main: 0, other: 0 };
  for (const [tid, ticks] of after) {
    const d = ticks - (before.get(tid) ?? 0);
    if (tid === pid) res.main += d;
    else if (tid === vcpuTid) res.vcpu += d;
    else res.other += d;
  }
  return res;
}

interface Sample {
  mibs: number;
  /** CPU milliseconds per MiB: qemu's vCPU thread(s), its main loop, its other threads, this process. */
  vcpu: number;
  main: number;
  other: number;
  node: number;
}

type Check = (chunk: Buffer) => void;
const ZERO = Buffer.alloc(1 << 20);
const zeros: Check = (c) => {
  for (let off = 0; off < c.length; off += ZERO.length) {
    const part = c.subarray(off, off + ZERO.length);
    if (!part.equals(ZERO.subarray(0, part.length))) throw new Error('a byte that is not zero came');
  }
};

/** Reads a stream to its end; returns its length. */
async function drain(stream: Readable, check?: Check): Promise<number> {
  let n = 0;
  for await (const chunk of stream) {
    n += (chunk as Buffer).length;
    check?.(chunk as Buffer);
  }
  return n;
}

async function measure(vm: Vm, run: (check?: Check) => Promise<number>, check?: Check): Promise<Sample> {
  const before = threadTicks(vm.pid);
  const cpu = process.cpuUsage();
  const t = performance.now();
  const n = await run(check);
  const sec = (performance.now() - t) / 1000;
  const node = process.cpuUsage(cpu);
  const after = threadTicks(vm.pid);
  if (n !== BYTES) throw new Error(`expected ${BYTES} bytes, got ${n}`);
  const q = qemuTicks(vm.pid, before, after);
  const per = (ticks: number) => (ticks * (1000 / HZ)) / MIB;
  return { mibs: MIB / sec, vcpu: per(q.vcpu), main: per(q.main), other: per(q.other), node: (node.user + node.system) / 1000 / MIB };
}

function report(name: string, samples: Sample[]): void {
  const m = (k: keyof Sample) => median(samples.map((s) => s[k]));
  const runs = samples.map((s) => s.mibs.toFixed(1)).join(', ');
  console.log(
    `${name.padEnd(7)} ${m('mibs').toFixed(1).padStart(6)} MiB/s  (runs: ${runs})   CPU ms/MiB: qemu vCPU ${m('vcpu').toFixed(1)}, ` +
      `qemu main ${m('main').toFixed(1)}, qemu other ${m('other').toFixed(1)}, node ${m('node').toFixed(1)}`,
  );
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'bench-stream-'));
  try {
    // A disk with one file of random bytes (zeros would be holes: nothing to read).
    const tree = join(work, 'tree');
    mkdirSync(tree);
    const hash = createHash('sha256');
    const content = Buffer.allocUnsafe(BYTES);
    for (let off = 0; off < BYTES; off += 1 << 20) randomBytes(1 << 20).copy(content, off);
    hash.update(content);
    writeFileSync(join(tree, 'big'), content);
    const digest = hash.digest('hex');
    const img = join(work, 'disk.img');
    await mkext2(tree, img);
    rmSync(tree, { recursive: true });

    const vm = await boot({ accel: 'tcg', disks: [{ path: img }] });
    try {
      const disk = vm.disks[0]!.guestPath;
      const sh = async (script: string) => {
        const r = await vm.exec(['sh', '-c', script]);
        if (r.exitCode !== 0) throw new Error(`${script}: exit ${r.exitCode}: ${r.stderr.toString()}`);
      };
      await sh(`mkdir -p /tmp/disk && mount -t ext2 -o ro ${disk} /tmp/disk && dd if=/dev/zero of=/tmp/big bs=1M count=${MIB} 2>/dev/null`);
      console.log(`${MIB} MiB guest to host, median of ${RUNS} after a warm-up (TCG, ${vm.machine})`);

      const cases: Record<string, { run: (check?: Check) => Promise<number>; check: Check; before?: () => Promise<void> }> = {
        stdout: {
          run: async (check) => {
            const s = vm.execStream(['dd', 'if=/dev/zero', 'bs=1M', `count=${MIB}`]);
            const [n, , r] = await Promise.all([drain(s.stdout, check), drain(s.stderr), s.result]);
            if (r.exitCode !== 0) throw new Error(`dd exited with ${r.exitCode}`);
            return n;
          },
          check: zeros,
        },
        tmpfs: { run: (check) => drain(vm.readFileStream('/tmp/big'), check), check: zeros },
        disk: {
          run: (check) => drain(vm.readFileStream('/tmp/disk/big'), check),
          before: () => sh('sync; echo 3 > /proc/sys/vm/drop_caches'),
          check: (() => {
            const h = createHash('sha256');
            let n = 0;
            return (c: Buffer) => {
              h.update(c);
              n += c.length;
              if (n === BYTES && h.digest('hex') !== digest) throw new Error('the disk file came back different');
            };
          })(),
        },
      };
      for (const name of CASES) {
        const c = cases[name];
        if (!c) throw new Error(`unknown case ${name} (stdout, tmpfs, disk)`);
        await c.before?.();
        await measure(vm, c.run, c.check); // warm-up, checking the bytes
        const samples: Sample[] = [];
        for (let i = 0; i < RUNS; i++) {
          await c.before?.();
          samples.push(await measure(vm, c.run));
        }
        report(name, samples);
      }
    } finally {
      await vm.close();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
