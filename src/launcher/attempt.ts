/**
 * One qemu run of the launcher (launch.ts decides which runs to make, modes.ts how each
 * goes): the guest channel's and the monitor's sockets, the spawn, and the race between
 * ready, exit, the deadline and the sign of life. When it ends without the guest ready,
 * qemu is dead and the sockets are gone.
 */
import { ApplianceError } from '../errors.js';
import { closeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { describeAccel, type AccelChoice } from './accel.js';
import { progressDeadline } from './deadline.js';
import { qemuArgv, type QemuConfig } from './argv.js';
import type { MachineName } from './machine.js';
import type { Mode, Run, RunEvent } from './modes.js';
import { spawnQemu, type ExitStatus, type QemuProcess } from './process.js';
import { acceptOne } from './sockets.js';

/** saved: a snapshot was saved (the run then ends); unsaved: it could not be (saveError says why). */
export type AttemptOutcome = 'ready' | 'exited' | 'no-sign-of-life' | 'timeout' | 'saved' | 'unsaved';

export interface ReadyContext {
  /** qemu's connection to the guest channel; rejects if this attempt ends first. */
  channel: Promise<Socket>;
  /** Aborted when this attempt is abandoned (timeout, exit, fallback). */
  signal: AbortSignal;
  accel: AccelChoice;
  machine: MachineName;
}

export interface AttemptContext<T> {
  accel: AccelChoice;
  machine: MachineName;
  kernelKind: string;
  deadlineMs: number;
  /** Given when another accelerator remains to fall back to. */
  signOfLifeMs?: number;
  /** The caller's: aborting it ends the run (qemu killed) and the launch with EABORTED or ETIMEDOUT. */
  signal?: AbortSignal;
  /** This run's number in the launch, for the log. */
  number: number;
  /** Where to listen for qemu's guest-channel connection; the monitor's and the state's sockets go beside it. */
  channelSocket: string;
  /** Our descriptors of the user disks, in order: qemu inherits them (argv.ts DISK_FD); undefined leaves a slot empty. */
  diskFds: (number | undefined)[];
  /** The init prints its boot timeline (sent in the go line). */
  timing: boolean;
  ready: (ctx: ReadyContext) => Promise<T>;
  onConsole?: (line: string) => void;
  log: (message: string) => void;
}

export interface AttemptResult {
  outcome: AttemptOutcome;
  proc: QemuProcess;
  argv: string[];
  value?: unknown;
  status?: ExitStatus;
  /** Why it ended, when it did not come up: qemu's exit status and last words, or the failed step. */
  detail?: string;
  /** ms from spawn to the first console byte */
  aliveAt?: number;
  /** ms from spawn until a restored guest ran again */
  resumedAt?: number;
  /** Why a 'save' run could not save. */
  saveError?: string;
  /** The user disk (its index) qemu named when it refused to start: the disk's fault, not the boot's. */
  diskFault?: number;
  snapshot?: 'restored' | 'created';
}

/** One qemu boot in `mode`, until it is ready or given up. */
// long because one run reads best as its steps in order: sockets, spawn, the race, the teardown
export async function attempt<T>(qemu: string, base: QemuConfig, mode: Mode, a: AttemptContext<T>): Promise<AttemptResult> {
  const monitorSocket = `${a.channelSocket}.qmp`;
  const config = mode.configure(base, monitorSocket);
  const argv = qemuArgv(config);
  const what = mode.kind === 'restore' ? 'restoring a snapshot' : mode.kind === 'save' ? 'booting to save a snapshot' : `booting (${a.kernelKind})`;
  a.log(`boot ${a.number}: ${describeAccel(a.accel)} on ${a.machine}, ${what}: ${qemu} ${argv.join(' ')}`);

  const abort = new AbortController();
  const channel = await acceptOne(a.channelSocket, abort.signal);
  const monitor = mode.monitor
    ? await acceptOne(monitorSocket, abort.signal).catch((err: unknown) => channel.close(true).then(() => Promise.reject(err)))
    : undefined;
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const state: { aliveAt?: number; resumedAt?: number; saveError?: string; diskFault?: number } = {};
  let end: (ev: RunEvent) => void = () => {};
  let running: () => void = () => {};
  const runs = new Promise<void>((resolve) => (running = resolve));
  const ended = new Promise<RunEvent>((resolve) => (end = resolve));

  const proc = spawn(qemu, argv, mode, a, () => run);
  const run: Run = {
    proc,
    monitor: monitor?.connection ?? Promise.reject(new Error('this run has no monitor')),
    stateSocket: `${a.channelSocket}.state`,
    timing: a.timing,
    disks: base.disks.length,
    config,
    end,
    resumed: () => {
      state.resumedAt = elapsed();
      running();
    },
    running: () => running(),
    saveFailed: (why, whatFailed) => {
      state.saveError = why;
      a.log(`boot ${a.number}: ${whatFailed} (${why})`);
      end({ kind: 'failed', detail: `${whatFailed}: ${why}` });
    },
  };
  run.monitor.catch(() => {});
  mode.started?.(run);
  void proc.firstOutput.then(() => (state.aliveAt = elapsed()));

  const result = (outcome: AttemptOutcome, more: Partial<AttemptResult> = {}): AttemptResult => ({ outcome, proc, argv, ...state, ...more });
  const ready = (mode.holds ? runs : Promise.resolve()).then(() =>
    a.ready({ channel: channel.connection, signal: abort.signal, accel: a.accel, machine: a.machine }),
  );
  let up = false;
  try {
    const ev = await race(proc, ready, ended, a);
    if (ev.kind === 'ready') {
      up = true;
      return result('ready', { value: ev.value });
    }
    abort.abort();
    await proc.kill();
    // Whatever ended the run, qemu may have said first that it cannot open a user disk.
    state.diskFault = diskNamed(proc.stderrTail());
    return failed(ev, mode, proc, result, state.saveError !== undefined);
  } finally {
    abort.abort();
    await Promise.all([channel.close(!up), monitor?.close(true)]);
  }
}

/** The caller's abort as our error: its own timeout (timeoutMs) is ETIMEDOUT, anything else EABORTED. */
export function abortError(reason: unknown): ApplianceError {
  if (reason instanceof ApplianceError) return reason;
  if ((reason as Error | undefined)?.name === 'TimeoutError')
    return new ApplianceError('ETIMEDOUT', 'the boot did not finish within its timeoutMs', { cause: reason });
  return new ApplianceError('EABORTED', 'the boot was aborted (its signal)', { cause: reason });
}

/** How a run that did not come up ended. */
function failed(
  ev: Exclude<RunEvent, { kind: 'ready' }>,
  mode: Mode,
  proc: QemuProcess,
  result: (o: AttemptOutcome, more?: Partial<AttemptResult>) => AttemptResult,
  unsaved: boolean,
): AttemptResult {
  switch (ev.kind) {
    case 'not-ready':
      if (mode.readyFailureIsOutcome) return result('exited', { detail: (ev.err as Error).message });
      throw ev.err;
    case 'failed':
      return result(unsaved ? 'unsaved' : 'exited', { detail: ev.detail });
    case 'aborted':
      throw abortError(ev.reason);
    case 'refused':
      throw ev.err;
    case 'exited':
      return result('exited', { status: ev.status, detail: exitDetail(ev.status, proc) });
    default:
      return result(ev.kind);
  }
}

/** qemu, with the mode's fd 3 and its console going to the mode (through `run`, once there is one) and the caller. */
function spawn<T>(qemu: string, argv: string[], mode: Mode, a: AttemptContext<T>, run: () => Run): QemuProcess {
  const fd3 = mode.openFd3?.();
  try {
    return spawnQemu(qemu, argv, {
      // fd 3 is the mode's (a snapshot's state), then the user disks from DISK_FD on (argv.ts).
      fds: [fd3, ...a.diskFds],
      onConsole: (line) => {
        mode.onConsole?.(line, run());
        a.onConsole?.(line);
      },
    });
  } finally {
    if (fd3 !== undefined) closeSync(fd3);
  }
}

/** The first of: ready, qemu's exit, the mode's own end, the deadline (by progress, deadline.ts), no sign of life in time. */
async function race<T>(proc: QemuProcess, ready: Promise<T>, ended: Promise<RunEvent>, a: AttemptContext<T>): Promise<RunEvent> {
  const timers: NodeJS.Timeout[] = [];
  const after = <R>(ms: number, value: R) => new Promise<R>((resolve) => timers.push(setTimeout(() => resolve(value), ms)));
  const readyEvent: Promise<RunEvent> = ready.then(
    (value) => ({ kind: 'ready', value }),
    (err: unknown) => ({ kind: 'not-ready', err }),
  );
  const exited: Promise<RunEvent> = proc.exited.then((status) => ({ kind: 'exited', status }));
  const deadline = progressDeadline(proc.pid, a.deadlineMs);
  const events = [readyEvent, exited, ended, deadline.expired.then((): RunEvent => ({ kind: 'timeout' }))];
  const signal = a.signal;
  let onAbort = () => {};
  if (signal) events.push(new Promise<RunEvent>((resolve) => (onAbort = () => resolve({ kind: 'aborted', reason: signal.reason }))));
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  if (a.signOfLifeMs !== undefined) {
    const alive = Promise.race([proc.firstOutput, ready]).then(() => new Promise<RunEvent>(() => {}));
    events.push(Promise.race([alive, after<RunEvent>(a.signOfLifeMs, { kind: 'no-sign-of-life' })]));
  }
  try {
    const ev = await Promise.race(events);
    // `ready` failing is most often the channel closing as qemu exits: report the exit.
    return ev.kind === 'not-ready' ? await Promise.race([exited, after(500, ev)]) : ev;
  } finally {
    for (const t of timers) clearTimeout(t);
    deadline.cancel();
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * The user disk qemu's error names, if any: qemu prefixes an option's error with the
 * option, and a user disk's -blockdev holds its node name (argv.ts).
 */
function diskNamed(stderr: string): number | undefined {
  const node = /-blockdev \{[^\n]*"node-name":"disk(\d+)"[^\n]*\}: /.exec(stderr) ?? /-device [^\n]*drive=disk(\d+)\b[^\n]*: /.exec(stderr);
  if (node) return Number(node[1]);
  // A lock qemu cannot take when a restored guest's disks are activated: named by its fd set (disk i is set i + 1, argv.ts).
  const set = /Failed to get (?:shared )?"\w+" lock[^]*?image \[\/dev\/fdset\/(\d+)\]/.exec(stderr);
  return set ? Number(set[1]) - 1 : undefined;
}

function exitDetail(status: ExitStatus, proc: QemuProcess): string {
  const how = status.signal ? `signal ${status.signal}` : `code ${status.code}`;
  const err = proc.stderrTail();
  return err ? `${how}: ${err.split('\n').slice(-3).join(' / ')}` : how;
}
