/**
 * Runs a command to its end for the benchmarks: wall time, its stdout, and the peak
 * memory of its whole process tree (the sum of resident sets of it and every
 * descendant, e.g. node + qemu, or a virt tool + its qemu), sampled from /proc.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface Sample {
  ms: number;
  peakRssKb: number;
  stdout: string;
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

/** Runs `cmd`; rejects with its stderr unless it exits 0. */
export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Sample> {
  return new Promise((resolvePromise, reject) => {
    const t = performance.now();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(
        peak,
        tree(child.pid!).reduce((sum, pid) => sum + rssKb(pid), 0),
      );
    }, 25);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(sampler);
      const ms = performance.now() - t;
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}:\n${stderr}`));
      else resolvePromise({ ms, peakRssKb: peak, stdout: Buffer.concat(out).toString(), stderr });
    });
  });
}

/** libguestfs with the same accelerator as ours (the direct backend, TCG forced). */
export const LIBGUESTFS_ENV = { ...process.env, LIBGUESTFS_BACKEND: 'direct', LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' };

export const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
