import { ApplianceError, type ErrorCode } from '../errors.js';
import { describeAccel, type AccelChoice } from './accel.js';
import type { AttemptOutcome, AttemptResult } from './attempt.js';
import type { MachineName } from './machine.js';
import type { Mode } from './modes.js';

/** One qemu run of a launch, as `Vm.attempts` reports it. */
export interface Attempt {
  accel: AccelChoice;
  machine: MachineName;
  /** plain or cold: the kernel booted; save: booted to save a snapshot; restore: a snapshot resumed. */
  mode: Mode['kind'];
  outcome: AttemptOutcome;
  /** From this attempt's spawn to its outcome. */
  ms: number;
  detail?: string;
}

/** A boot that failed: the last console lines and every attempt come with it. */
export class BootError extends ApplianceError {
  /** What went wrong, in one line (the message adds the console lines). */
  readonly reason: string;
  readonly consoleTail: string[];
  readonly attempts: Attempt[];
  constructor(code: ErrorCode, reason: string, consoleTail: string[], attempts: Attempt[]) {
    const tail = consoleTail.length ? `\nlast console lines:\n${consoleTail.map((l) => `  ${l}`).join('\n')}` : '\n(no console output)';
    super(code, reason + tail);
    this.reason = reason;
    this.consoleTail = consoleTail;
    this.attempts = attempts;
  }
}

/** The error for a launch whose every attempt failed, `last` being the last one; `disks` are the user disks' paths. */
export function bootFailure(qemu: string, last: AttemptResult, attempts: Attempt[], deadlineMs: number, disks: string[]): BootError {
  const tail = last.proc.consoleTail();
  if (last.diskFault !== undefined) {
    const stderr = last.proc.stderrTail();
    const said = /-blockdev \{[^\n]*\}: (.*)$/m.exec(stderr)?.[1] ?? last.detail;
    // A lock: another qemu has the image open, and read-write needs it alone; a reader
    // ("shared": that nobody writes while it reads) finds another VM writing it.
    const lock = /Failed to get (shared )?"\w+" lock/.exec(stderr);
    const fix = !lock
      ? 'check the image (qemu-img check) and its format'
      : lock[1]
        ? 'another VM has this image open read-write (what it writes would be read half-done): close that one first'
        : 'another VM has this image open (a read-write disk must be its only user): attach it read-only, or close the other one';
    return new BootError('EDISKOPEN', `qemu cannot open disk ${disks[last.diskFault]}: ${lock ? 'its lock is held' : said}: ${fix}`, tail, attempts);
  }
  const how = (a: Attempt) => (a.mode === 'save' ? ' saving a snapshot' : a.mode === 'restore' ? ' restoring a snapshot' : '');
  // An attempt that qemu ended itself says how (its exit and first words: an aborting KVM, a
  // missing firmware), so that a later timeout is not all the caller is told.
  const outcome = (a: Attempt) =>
    a.outcome === 'exited' && a.detail ? `exited (${a.detail.length > 120 ? `${a.detail.slice(0, 117)}...` : a.detail})` : a.outcome;
  const tried = attempts.map((a) => `${describeAccel(a.accel)}/${a.machine}${how(a)}: ${outcome(a)}`).join(', ');
  if (last.outcome === 'timeout') {
    return new BootError(
      'EBOOTTIMEOUT',
      `the appliance did not become ready within ${deadlineMs} ms of qemu's time (tried ${tried}): ` +
        (attempts.every((a) => a.accel.accel === 'kvm')
          ? `KVM did not run the guest here (nested KVM can hang one): use accel 'auto' or 'tcg' (--accel on the command line)`
          : 'check the kernel and the initrd') +
        ', or allow more time (bootTimeoutMs)',
      tail,
      attempts,
    );
  }
  if (last.outcome === 'exited' && last.status?.code === 0) {
    const words = last.proc.lastWords();
    return new BootError(
      'EBOOTFAILED',
      `the appliance stopped (powered off, rebooted or panicked) before it was ready (tried ${tried})${words ? `: ${words}` : ': see its console'}`,
      tail,
      attempts,
    );
  }
  return new BootError(
    'EQEMU',
    `qemu (${qemu}) failed to boot the appliance (tried ${tried}; ${attempts.at(-1)?.detail ?? 'no sign of life'}): ` +
      `check the qemu installation, or pick another machine or accelerator`,
    tail,
    attempts,
  );
}
