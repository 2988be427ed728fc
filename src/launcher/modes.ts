/**
 * How one qemu run goes, by mode (attempt.ts runs them):
 * - plain: boot the kernel (no snapshot point on the command line);
 * - cold: boot the kernel, and let the init past its snapshot point at once;
 * - save: boot with the RAM in the pending snapshot's file and placeholders for the user's
 *   disks (none of theirs is read before the snapshot point, and a format that blocks
 *   migration, vdi say, must not stop the save), and at the snapshot point save the guest
 *   and stop (outcome 'saved'); if it cannot be saved, stop too ('failed', saveError);
 * - restore: resume a snapshot (-incoming), then send the go line.
 */
import { openSync } from 'node:fs';
import type { PendingSnapshot, Snapshot } from '../cache/snapshots.js';
import { diskSlots, goLine, initLine } from '../guest/contract.js';
import type { QemuConfig } from './argv.js';
import type { ExitStatus, QemuProcess } from './process.js';
import type { Socket } from 'node:net';
import { DiskRefusedError } from '../errors.js';
import { checkBlockGraph } from './block-graph.js';
import { Qmp } from './qmp.js';
import { restoreState, saveState } from './snapshot.js';

/** What ends a run. */
export type RunEvent =
  | { kind: 'ready'; value: unknown }
  | { kind: 'not-ready'; err: unknown }
  | { kind: 'exited'; status: ExitStatus }
  | { kind: 'saved' }
  | { kind: 'failed'; detail: string }
  | { kind: 'timeout' | 'no-sign-of-life' }
  | { kind: 'aborted'; reason: unknown }
  | { kind: 'refused'; err: unknown };

/** What a mode's steps may see and do during their run. */
export interface Run {
  readonly proc: QemuProcess;
  /** qemu's monitor connection (modes with `monitor` only). */
  readonly monitor: Promise<Socket>;
  /** A socket path for the saved state's stream. */
  readonly stateSocket: string;
  readonly timing: boolean;
  /** The user disks of this boot (the go line tells the guest how many slots hold one). */
  readonly disks: number;
  /** The run's qemu configuration (the mode's, from the launch's). */
  readonly config: QemuConfig;
  /** Ends the run now. */
  end(event: RunEvent): void;
  /** The restored guest runs again (it runs: see `running`). */
  resumed(): void;
  /** A guest held stopped (`Mode.holds`) runs now: the caller's `ready` is waited for from here on. */
  running(): void;
  /** The snapshot could not be saved: the run ends ('failed', with saveError). */
  saveFailed(why: string, what: string): void;
}

export interface Mode {
  kind: 'plain' | 'cold' | 'save' | 'restore';
  /** The run's qemu configuration, from the launch's; `monitor` is the QMP socket when the mode uses one. */
  configure(base: QemuConfig, monitor: string): QemuConfig;
  /** This mode talks to qemu's monitor (QMP). */
  monitor: boolean;
  /** A file qemu gets as its fd 3 (restore: the saved state), opened just before the spawn. */
  openFd3?(): number;
  /** Each console line of the guest. */
  onConsole?(line: string, run: Run): void;
  /** Right after the spawn. */
  started?(run: Run): void;
  /** A guest whose agent does not answer means this run failed (restore: a bad snapshot), not a bug. */
  readyFailureIsOutcome?: boolean;
  /**
   * qemu starts with the guest stopped, and the mode lets it run (`Run.running`): until then
   * the caller's `ready` is not asked (qemu dials the guest channel before the monitor, so a
   * `ready` that takes the channel alone would end the run before its monitor is there).
   */
  holds?: boolean;
}

const SNAPSHOT_LINE = initLine('snapshot');
const NO_SNAPSHOT_LINE = initLine('noSnapshot');

/** Watches the console for the init's snapshot point; `at` gets the refusal's reason, if the guest must not be saved. */
function atSnapshotPoint(line: string, at: (refusal?: string) => void): void {
  if (line.includes(SNAPSHOT_LINE)) at();
  else if (line.includes(NO_SNAPSHOT_LINE)) at(line.slice(line.indexOf(NO_SNAPSHOT_LINE) + NO_SNAPSHOT_LINE.length));
}

/**
 * A booted run starts with its CPU stopped, and runs once qemu's block graph holds only
 * what the command line made (block-graph.ts): no guest reads a file an image's header
 * named after it was checked.
 */
const checkedStart = {
  monitor: true,
  holds: true,
  configure: (c: QemuConfig, monitor: string): QemuConfig => ({ ...c, monitorSocket: monitor, paused: true }),
  started: (run: Run) => {
    void (async () => {
      const qmp = await Qmp.connect(await run.monitor);
      await checkBlockGraph(qmp, run.config);
      await qmp.execute('cont');
      run.running();
    })().catch((err: unknown) => run.end(refusedOrFailed(err, run)));
  },
};

/** A disk refused is the caller's error (no other boot would fare better); anything else a failed run. */
function refusedOrFailed(err: unknown, run: Run): RunEvent {
  if (err instanceof DiskRefusedError) return { kind: 'refused', err };
  // qemu's own words (a lock it could not take names the image) after ours.
  const said = run.proc.stderrTail().trim().split('\n').slice(-2).join(' / ');
  return { kind: 'failed', detail: `${(err as Error).message}${said ? `: ${said}` : ''}` };
}

export const plain: Mode = { kind: 'plain', ...checkedStart };

export const cold: Mode = {
  kind: 'cold',
  ...checkedStart,
  onConsole: (line, run) => atSnapshotPoint(line, () => run.proc.writeConsole(goLine(run.timing, run.disks))),
};

export function save(pending: PendingSnapshot): Mode {
  const saveAt = async (run: Run, refusal?: string) => {
    if (refusal) return run.saveFailed(refusal, 'the guest must not be saved');
    try {
      await saveState(await Qmp.connect(await run.monitor), pending, run.stateSocket);
      run.end({ kind: 'saved' });
    } catch (err) {
      run.saveFailed((err as Error).message, 'cannot save a snapshot');
    }
  };
  return {
    kind: 'save',
    monitor: true,
    configure: (c, monitor) => ({
      ...c,
      ramFile: { path: pending.ram, shared: true },
      monitorSocket: monitor,
      placeholderDisks: true,
      diskSlots: diskSlots(c.disks.length),
    }),
    onConsole: (line, run) => atSnapshotPoint(line, (refusal) => void saveAt(run, refusal)),
  };
}

export function restore(snapshot: Snapshot): Mode {
  return {
    kind: 'restore',
    monitor: true,
    holds: true,
    readyFailureIsOutcome: true,
    configure: (c, monitor) => ({
      ...c,
      boot: 'incoming',
      ramFile: { path: snapshot.ram, shared: false },
      monitorSocket: monitor,
      diskSlots: diskSlots(c.disks.length),
    }),
    openFd3: () => openSync(snapshot.state, 'r'),
    started: (run) => {
      void (async () => {
        const qmp = await Qmp.connect(await run.monitor);
        await checkBlockGraph(qmp, run.config);
        await restoreState(qmp, 3);
        run.resumed();
        run.proc.writeConsole(goLine(run.timing, run.disks));
      })().catch((err: unknown) => run.end(refusedOrFailed(err, run)));
    },
  };
}
