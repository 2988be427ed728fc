/**
 * One qemu run of the launcher (launch.ts decides which runs to make): the guest
 * channel's and the monitor's sockets, the spawn, the snapshot steps of the run's mode,
 * and the race between ready, exit, the deadline and the sign of life.
 */
import { closeSync, openSync } from 'node:fs';
import { acceptOne } from './sockets.js';
import { describeAccel, type AccelChoice } from './accel.js';
import { qemuArgv, type QemuConfig } from './argv.js';
import type { LaunchOptions } from './launch.js';
import type { MachineName } from './machine.js';
import { spawnQemu, type ExitStatus, type QemuProcess } from './process.js';
import { Qmp } from './qmp.js';
import { goLine, NO_SNAPSHOT_MARKER, restoreState, saveState, SNAPSHOT_MARKER, type PendingSnapshot, type Snapshot } from './snapshot.js';

export type AttemptOutcome = 'ready' | 'exited' | 'no-sign-of-life' | 'timeout' | 'saved';

export interface AttemptContext {
  accel: AccelChoice;
  machine: MachineName;
  kernelKind: string;
  deadlineMs: number;
  /** Given when another accelerator remains to fall back to. */
  signOfLifeMs?: number;
  /** This run's number in the launch, for the log. */
  number: number;
}

/**
 * How one qemu runs: 'plain' boots the kernel; 'cold' too, and lets the init past its
 * snapshot point; 'save' stops the guest there and saves it (outcome 'saved', or a cold
 * boot if saving fails); 'restore' resumes a snapshot.
 */
export type AttemptMode =
  | { kind: 'plain' }
  | { kind: 'cold' }
  | { kind: 'save'; pending: PendingSnapshot }
  | { kind: 'restore'; snapshot: Snapshot };

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
  /** Why a 'save' boot could not save (it then went on as a cold boot). */
  saveError?: string;
  snapshot?: 'restored' | 'created';
}

/** One qemu boot, until it is ready or given up (then qemu is dead and the sockets gone). */
export async function attempt(
  qemu: string,
  base: QemuConfig,
  mode: AttemptMode,
  opts: LaunchOptions<unknown>,
  a: AttemptContext,
): Promise<AttemptResult> {
  const monitorSocket = mode.kind === 'save' || mode.kind === 'restore' ? `${opts.channelSocket}.qmp` : undefined;
  const config: QemuConfig =
    mode.kind === 'save'
      ? { ...base, ramFile: { path: mode.pending.ram, shared: true }, monitorSocket }
      : mode.kind === 'restore'
        ? { ...base, boot: 'incoming', ramFile: { path: mode.snapshot.ram, shared: false }, monitorSocket }
        : base;
  const argv = qemuArgv(config);
  const what = mode.kind === 'restore' ? 'restoring a snapshot' : mode.kind === 'save' ? 'booting to save a snapshot' : `booting (${a.kernelKind})`;
  opts.log?.(`boot ${a.number}: ${describeAccel(a.accel)} on ${a.machine}, ${what}: ${qemu} ${argv.join(' ')}`);

  const abort = new AbortController();
  const channel = await acceptOne(opts.channelSocket, abort.signal);
  const monitor = monitorSocket ? await acceptOne(monitorSocket, abort.signal).catch((err: unknown) => channel.close(true).then(() => Promise.reject(err))) : undefined;
  const stateFd = mode.kind === 'restore' ? openSync(mode.snapshot.state, 'r') : undefined;

  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  type Event =
    | { kind: 'ready'; value: unknown }
    | { kind: 'not-ready'; err: unknown }
    | { kind: 'exited'; status: ExitStatus }
    | { kind: 'saved' }
    | { kind: 'timeout' | 'no-sign-of-life' };
  let snapshotStep: (ev: Event) => void = () => {};
  const snapshotEvent = new Promise<Event>((resolve) => (snapshotStep = resolve));
  let saveError: string | undefined;
  let resumedAt: number | undefined;
  const timing = opts.consoleTiming ?? false;

  let proc: QemuProcess;
  const onMarker = async (refusal?: string) => {
    if (mode.kind === 'save' && refusal) {
      saveError = refusal;
      opts.log?.(`boot ${a.number}: the guest must not be saved (${refusal}): going on without a snapshot`);
    } else if (mode.kind === 'save') {
      let qmp: Qmp | undefined;
      try {
        qmp = await Qmp.connect(await monitor!.connection);
        await saveState(qmp, mode.pending, `${opts.channelSocket}.state`);
        snapshotStep({ kind: 'saved' });
        return;
      } catch (err) {
        saveError = (err as Error).message;
        opts.log?.(`boot ${a.number}: cannot save a snapshot (${saveError}): going on without`);
        await qmp?.execute('cont').catch(() => {});
      }
    }
    proc.writeConsole(goLine(timing));
  };
  try {
    proc = spawnQemu(qemu, argv, {
      fd3: stateFd,
      onConsole: (line) => {
        if (mode.kind === 'cold' || mode.kind === 'save') {
          if (line.includes(SNAPSHOT_MARKER)) void onMarker();
          else if (line.includes(NO_SNAPSHOT_MARKER)) void onMarker(line.slice(line.indexOf(NO_SNAPSHOT_MARKER) + NO_SNAPSHOT_MARKER.length));
        }
        opts.onConsole?.(line);
      },
    });
  } finally {
    if (stateFd !== undefined) closeSync(stateFd);
  }
  if (mode.kind === 'restore') {
    void (async () => {
      const qmp = await Qmp.connect(await monitor!.connection);
      await restoreState(qmp, 3);
      resumedAt = elapsed();
      proc.writeConsole(goLine(timing));
    })().catch((err: unknown) => snapshotStep({ kind: 'not-ready', err }));
  }
  let aliveAt: number | undefined;
  void proc.firstOutput.then(() => (aliveAt = elapsed()));
  const timers: NodeJS.Timeout[] = [];
  const after = <R>(ms: number, value: R) => new Promise<R>((resolve) => timers.push(setTimeout(() => resolve(value), ms)));

  const ready: Promise<Event> = opts
    .ready({ channel: channel.connection, signal: abort.signal, accel: a.accel, machine: a.machine })
    .then((value) => ({ kind: 'ready' as const, value }), (err: unknown) => ({ kind: 'not-ready' as const, err }));
  const exited: Promise<Event> = proc.exited.then((status) => ({ kind: 'exited' as const, status }));
  const events: Promise<Event>[] = [ready, exited, snapshotEvent, after(a.deadlineMs, { kind: 'timeout' as const })];
  if (a.signOfLifeMs !== undefined) {
    const alive = Promise.race([proc.firstOutput, ready]).then(() => new Promise<Event>(() => {}));
    events.push(Promise.race([alive, after(a.signOfLifeMs, { kind: 'no-sign-of-life' as const })]));
  }

  const result = (outcome: AttemptOutcome, more: Partial<AttemptResult> = {}): AttemptResult => ({ outcome, proc, argv, aliveAt, resumedAt, saveError, ...more });
  let up = false;
  try {
    let ev = await Promise.race(events);
    // `ready` failing is most often the channel closing as qemu exits: report the exit.
    if (ev.kind === 'not-ready') ev = await Promise.race([exited, after(500, ev)]);
    if (ev.kind === 'ready') {
      up = true;
      return result('ready', { value: ev.value });
    }
    abort.abort();
    await proc.kill();
    if (ev.kind === 'saved') return result('saved');
    if (ev.kind === 'not-ready') {
      if (mode.kind === 'restore') return result('exited', { detail: (ev.err as Error).message });
      throw ev.err;
    }
    if (ev.kind === 'exited') return result('exited', { status: ev.status, detail: exitDetail(ev.status, proc) });
    return result(ev.kind);
  } finally {
    for (const t of timers) clearTimeout(t);
    abort.abort();
    await Promise.all([channel.close(!up), monitor?.close(true)]);
  }
}

function exitDetail(status: ExitStatus, proc: QemuProcess): string {
  const how = status.signal ? `signal ${status.signal}` : `code ${status.code}`;
  const err = proc.stderrTail();
  return err ? `${how}: ${err.split('\n').slice(-3).join(' / ')}` : how;
}
