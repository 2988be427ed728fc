/**
 * The launcher's retry order, as data: what to try next after an attempt that did not
 * come up, by how it failed. launch.ts walks it.
 */
import type { AttemptResult } from './attempt.js';

export type Failure = 'no-sign-of-life' | 'powered-off' | 'qemu-exited' | 'disk-refused' | 'timeout';
export type Next = 'next-accelerator' | 'next-machine' | 'retry' | 'give-up';

/**
 * While another accelerator remains, any failure but a refused disk moves on to it: KVM
 * that hangs or aborts (nested virtualization) ends on TCG.
 */
export const WITH_FALLBACK: Next = 'next-accelerator';

/** On the last accelerator: */
export const AFTER: Record<Failure, Next> = {
  // Only given while a fallback remains (see WITH_FALLBACK).
  'no-sign-of-life': 'next-accelerator',
  // The guest stopped itself (powered off, panicked, rebooted): booting it again would do the same.
  'powered-off': 'give-up',
  // qemu refused this machine (or an option of it).
  'qemu-exited': 'next-machine',
  // qemu cannot open a user disk: every machine and accelerator would say the same.
  'disk-refused': 'give-up',
  // A hung boot: once more, on the next machine when the machine is 'auto', else the same.
  timeout: 'retry',
};

/** Hung boots tolerated in one launch before giving up. */
export const MAX_TIMEOUTS = 2;

export function failureOf(r: AttemptResult): Failure {
  if (r.diskFault !== undefined) return 'disk-refused';
  if (r.outcome === 'exited') return r.status?.code === 0 ? 'powered-off' : 'qemu-exited';
  return r.outcome === 'no-sign-of-life' ? 'no-sign-of-life' : 'timeout';
}

/** Where the walk is: which accelerator and machine, and how many boots hung. */
export interface Position {
  accel: number;
  machine: number;
  timeouts: number;
}

/** The position after a failed attempt, or undefined to give up. */
export function advance(p: Position, failure: Failure, counts: { accels: number; machines: number }): Position | undefined {
  const next = p.accel < counts.accels - 1 && failure !== 'disk-refused' ? WITH_FALLBACK : AFTER[failure];
  switch (next) {
    case 'next-accelerator':
      return p.accel + 1 < counts.accels ? { accel: p.accel + 1, machine: 0, timeouts: 0 } : undefined;
    case 'next-machine':
      return p.machine + 1 < counts.machines ? { ...p, machine: p.machine + 1 } : undefined;
    case 'retry': {
      if (p.timeouts + 1 >= MAX_TIMEOUTS) return undefined;
      const machine = counts.machines > 1 ? p.machine + 1 : p.machine;
      return machine < counts.machines ? { ...p, machine, timeouts: p.timeouts + 1 } : undefined;
    }
    case 'give-up':
      return undefined;
  }
}
