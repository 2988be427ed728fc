/**
 * A boot's deadline judged by the progress qemu could make, not by wall time alone. Under
 * TCG a guest advances only while qemu has a CPU: on a busy host (test workers started
 * together on two cores) it gets a share of one and boots that much slower without
 * anything being wrong. So each moment counts by the CPU qemu could have had in it: what
 * it used (/proc/PID/stat) plus what the host left idle (/proc/stat), at most the whole
 * moment and at least 1/STRETCH_MAX of it. A guest hung while the host has CPU to spare,
 * spinning or idle, meets the deadline as before; one starved by a busy host gets up to
 * STRETCH_MAX times as long. Where /proc does not say, wall time counts.
 */
import { readFileSync } from 'node:fs';

/** The most a deadline stretches on a host that gives qemu little CPU. */
export const STRETCH_MAX = 4;
const TICK_MS = 250;
/** Linux's USER_HZ, the unit of /proc/PID/stat's times (100 on every architecture Linux has). */
const TICKS_PER_SECOND = 100;

/** CPU ms so far: `used` by the process (user + system, all threads, a KVM guest's time included), `idle` of the whole host. */
export interface CpuReading {
  used?: number;
  idle?: number;
}

const ms = (ticks: number) => (Number.isFinite(ticks) ? (ticks * 1000) / TICKS_PER_SECOND : undefined);

export function readCpu(pid: number): CpuReading {
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  };
  const stat = read(`/proc/${pid}/stat`);
  // The command name, in parentheses, may hold spaces: the fields follow its last ')'.
  const fields = stat?.slice(stat.lastIndexOf(')') + 2).split(' ');
  const host = read('/proc/stat')?.split('\n', 1)[0]?.split(/\s+/); // cpu user nice system idle iowait …
  return {
    used: fields ? ms(Number(fields[11]) + Number(fields[12])) : undefined, // utime, stime (fields 14 and 15)
    idle: host ? ms(Number(host[4]) + Number(host[5])) : undefined,
  };
}

/** How much of `wallMs` counts toward a deadline when the process used `used` ms of CPU in it and the host left `idle` ms. */
export function counted(wallMs: number, used: number | undefined, idle: number | undefined): number {
  if (used === undefined || idle === undefined || wallMs <= 0) return Math.max(wallMs, 0);
  const share = Math.min(1, Math.max(1 / STRETCH_MAX, (used + idle) / wallMs));
  return wallMs * share;
}

export interface Deadline {
  /** Resolves once `deadlineMs` of progress is counted. */
  expired: Promise<void>;
  /** Wall ms it took, when it expired. */
  wallMs(): number;
  cancel(): void;
}

/** A deadline of `deadlineMs` for process `pid`, counted as above. */
export function progressDeadline(pid: number, deadlineMs: number, read: (pid: number) => CpuReading = readCpu): Deadline {
  const started = performance.now();
  let last = { at: started, ...read(pid) };
  let used = 0;
  let timer: NodeJS.Timeout | undefined;
  const delta = (now?: number, then?: number) => (now === undefined || then === undefined ? undefined : now - then);
  const expired = new Promise<void>((resolve) => {
    const tick = () => {
      const now = { at: performance.now(), ...read(pid) };
      used += counted(now.at - last.at, delta(now.used, last.used), delta(now.idle, last.idle));
      last = now;
      if (used >= deadlineMs) return resolve();
      // Never past the deadline at full speed, nor past STRETCH_MAX times it.
      timer = setTimeout(tick, Math.max(1, Math.min(TICK_MS, deadlineMs - used)));
    };
    timer = setTimeout(tick, Math.max(1, Math.min(TICK_MS, deadlineMs)));
  });
  return {
    expired,
    wallMs: () => Math.round(performance.now() - started),
    cancel: () => clearTimeout(timer),
  };
}
