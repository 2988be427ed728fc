/** The boot deadline counts the CPU qemu could have had (launcher/deadline.ts), read from the real /proc. */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { counted, progressDeadline, readCpu, STRETCH_MAX } from '../src/launcher/deadline.js';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});
const start = (args: string[]) => {
  const c = spawn(process.execPath, args, { stdio: 'ignore' });
  children.push(c);
  return c;
};
const expiry = async (pid: number, ms: number, read?: Parameters<typeof progressDeadline>[2]) => {
  const d = progressDeadline(pid, ms, read);
  await d.expired;
  return d.wallMs();
};

describe('counted', () => {
  it('a moment counts whole when qemu used a CPU or the host had one idle; by what it could have had on a busy host; at least 1/STRETCH_MAX', () => {
    expect(counted(1000, 1000, 0)).toBe(1000);
    expect(counted(1000, 0, 1800)).toBe(1000); // an idle guest on an idle host: a hang, counted as before
    expect(counted(1000, 500, 0)).toBe(500); // half a CPU on a busy host
    expect(counted(1000, 0, 0)).toBe(1000 / STRETCH_MAX);
    expect(counted(1000, undefined, 0)).toBe(1000); // /proc did not say
    expect(counted(-5, 0, 0)).toBe(0);
  });
});

describe('progressDeadline', () => {
  it('meets a deadline in wall time when the process has its CPU, stretches when starved, never past STRETCH_MAX', async () => {
    let t = 0;
    const fed = () => ({ used: (t += 1000), idle: 0 }); // 1 s of CPU between any two reads: never starved
    expect(await expiry(1, 300, fed)).toBeLessThan(300 + 200);
    const starved = () => ({ used: 0, idle: 0 });
    const ms = await expiry(1, 300, starved);
    expect(ms).toBeGreaterThanOrEqual(300 * STRETCH_MAX - 50);
    expect(ms).toBeLessThan(300 * STRETCH_MAX + 300);
  });

  it('reads the real /proc: a busy process uses CPU, the host has idle time; a process starved by a loaded host gets longer', async () => {
    const busy = start(['-e', 'for (;;) {}']);
    const before = readCpu(busy.pid!);
    await new Promise((r) => setTimeout(r, 600));
    const after = readCpu(busy.pid!);
    expect(after.used! - before.used!).toBeGreaterThan(300);
    expect(after.idle).toBeGreaterThan(0);

    // A sleeping process while every core is kept busy: it could have had no CPU, so its deadline stretches.
    const sleeper = start(['-e', 'setTimeout(() => {}, 60_000)']);
    for (let i = 0; i < cpus().length + 1; i++) start(['-e', 'for (;;) {}']);
    await new Promise((r) => setTimeout(r, 300));
    const ms = await expiry(sleeper.pid!, 500);
    expect(ms).toBeGreaterThan(1000);
    expect(ms).toBeLessThan(500 * STRETCH_MAX + 500);
  });
});
