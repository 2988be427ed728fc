import { rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { cacheRootPath, ensureCacheRoot } from '../cache/dir.js';
import { ApplianceError } from '../errors.js';
import { describeAccel, planAccel, type Accel, type AccelChoice } from './accel.js';
import { kernelCmdline, qemuArgv } from './argv.js';
import { resolveDisk, type DiskSpec } from './disk.js';
import { findQemu } from './find.js';
import { machineCandidates, machineProfile, type MachineName } from './machine.js';
import { spawnQemu, type ExitStatus, type QemuProcess } from './process.js';
import { hostTscKhz } from './tsc.js';
import { pvhKernel } from './vmlinux.js';

export interface LaunchOptions<T> {
  /** bzImage (an ELF vmlinux with a PVH entry is used as is). */
  kernel: string;
  /** The kernel's sha256 when known (an appliance manifest has it): keys the extracted vmlinux without hashing the kernel again. */
  kernelSha256?: string;
  initrd: string;
  /** The appliance's root image (raw), attached read-only with serial appliance-root. */
  root: string;
  /** User disks, attached as disk0, disk1, … in this order. */
  disks?: DiskSpec[];
  /** Default 512: boots as fast as 256 under TCG, and memory the guest does not touch costs the host nothing. */
  memoryMb?: number;
  /** Default 1. */
  cpus?: number;
  /** Default 'auto': KVM when it works on this host (remembered for 7 days), else TCG. */
  accel?: 'auto' | Accel;
  /** Default 'auto': the fastest machine that works (microvm, then q35, then pc). */
  machine?: 'auto' | MachineName;
  /** Kernel parameters added after the base ones (e.g. appliance.root=…). */
  cmdline?: string[];
  /** The qemu binary (--qemu); default qemu-system-x86_64 from $PATH. */
  qemu?: string;
  /** Where the launcher listens for qemu's guest-channel connection (a unix socket path it creates). */
  channelSocket: string;
  /** The cache root (default: cache/dir.ts's): the accelerator verdict and extracted kernels live there. */
  cacheDir?: string;
  /** How long one boot may take to become ready, from qemu's start (default 20 000 ms). */
  bootDeadlineMs?: number;
  /**
   * How long a boot may show no sign of life (no console byte, not ready) while another
   * accelerator remains to fall back to (default 3000 ms): how a hanging KVM is caught.
   */
  signOfLifeMs?: number;
  /** Resolves when the guest is up, with what the caller wants back (e.g. the agent client after its HELLO). */
  ready: (ctx: ReadyContext) => Promise<T>;
  /** Each console line of every attempt. */
  onConsole?: (line: string) => void;
  /** Verbose log: what was tried and why. */
  log?: (message: string) => void;
}

export interface ReadyContext {
  /** qemu's connection to the guest channel; rejects if this attempt ends first. */
  channel: Promise<Socket>;
  /** Aborted when this attempt is abandoned (timeout, exit, fallback). */
  signal: AbortSignal;
  accel: AccelChoice;
  machine: MachineName;
}

export type AttemptOutcome = 'ready' | 'exited' | 'no-sign-of-life' | 'timeout';

export interface Attempt {
  accel: AccelChoice;
  machine: MachineName;
  outcome: AttemptOutcome;
  /** From this attempt's spawn to its outcome. */
  ms: number;
  detail?: string;
}

export interface Launched<T> {
  pid: number;
  accel: Accel;
  cpu?: string;
  machine: MachineName;
  /** vmlinux: the kernel's PVH entry (extracted ELF); bzImage: the usual boot. */
  kernelKind: 'vmlinux' | 'bzImage';
  /** The qemu command line that booted, binary first. */
  argv: string[];
  /** What `ready` resolved to. */
  ready: T;
  consoleTail(): string[];
  exited: Promise<ExitStatus>;
  kill(): Promise<ExitStatus>;
  /** ms since launch() was called. */
  timings: { spawnedAt: number; aliveAt?: number; readyAt: number };
  /** Every boot tried, the successful one last. */
  attempts: Attempt[];
}

/** A boot that failed: the last console lines come with it. */
export class BootError extends ApplianceError {
  readonly consoleTail: string[];
  readonly attempts: Attempt[];
  constructor(code: string, message: string, consoleTail: string[], attempts: Attempt[]) {
    const tail = consoleTail.length ? `\nlast console lines:\n${consoleTail.map((l) => `  ${l}`).join('\n')}` : '\n(no console output)';
    super(code, message + tail);
    this.consoleTail = consoleTail;
    this.attempts = attempts;
  }
}

const DEFAULTS = { memoryMb: 512, cpus: 1, bootDeadlineMs: 20_000, signOfLifeMs: 3000 };

/**
 * Boots the appliance: picks the accelerator (falling back from KVM to TCG when KVM
 * exits or shows no sign of life) and the machine (falling back when qemu rejects
 * one), catches a boot that hangs with a deadline and retries it once (on the next
 * machine when the machine is 'auto'), and returns once `ready` has resolved.
 */
export async function launch<T>(opts: LaunchOptions<T>): Promise<Launched<T>> {
  const t0 = performance.now();
  const since = () => Math.round(performance.now() - t0);
  const log = opts.log ?? (() => {});
  const qemu = findQemu(opts.qemu);
  const disks = await Promise.all((opts.disks ?? []).map(resolveDisk));
  const cacheRoot = await ensureCacheRoot(opts.cacheDir ?? cacheRootPath());
  const plan = await planAccel(opts.accel ?? 'auto', { qemu, cacheRoot });
  log(`accelerators: ${plan.candidates.map(describeAccel).join(', then ')} (${plan.reason})`);
  const tscKhz = hostTscKhz();
  if (opts.machine === 'microvm' && !tscKhz && plan.candidates.some((c) => c.accel === 'tcg')) {
    log('microvm under TCG without the host TSC frequency: the guest may hang calibrating its clock (see machine.ts)');
  }
  const vmlinux = await pvhKernel(opts.kernel, cacheRoot, log, opts.kernelSha256);
  const kernelKind = vmlinux ? 'vmlinux' : 'bzImage';
  const deadlineMs = opts.bootDeadlineMs ?? DEFAULTS.bootDeadlineMs;

  const attempts: Attempt[] = [];
  let last: { proc: QemuProcess; outcome: AttemptOutcome; status?: ExitStatus } | undefined;
  for (const [ai, accel] of plan.candidates.entries()) {
    const fallbackAccel = ai < plan.candidates.length - 1;
    const machines = machineCandidates(opts.machine ?? 'auto', accel.accel, tscKhz);
    let timeouts = 0;
    for (let mi = 0; mi < machines.length; ) {
      const machine = machineProfile(machines[mi]!);
      const argv = qemuArgv({
        machine,
        accel,
        memoryMb: opts.memoryMb ?? DEFAULTS.memoryMb,
        cpus: opts.cpus ?? DEFAULTS.cpus,
        kernel: vmlinux ?? opts.kernel,
        initrd: opts.initrd,
        cmdline: kernelCmdline(accel, tscKhz, opts.cmdline),
        root: opts.root,
        disks,
        channelSocket: opts.channelSocket,
      });
      log(`boot ${attempts.length + 1}: ${describeAccel(accel)} on ${machine.name} (${kernelKind}): ${qemu} ${argv.join(' ')}`);
      const spawnedAt = since();
      const r = await attempt(qemu, argv, opts, {
        accel,
        machine: machine.name,
        deadlineMs,
        signOfLifeMs: fallbackAccel ? (opts.signOfLifeMs ?? DEFAULTS.signOfLifeMs) : undefined,
      });
      const ms = since() - spawnedAt;
      const detail = r.status ? exitDetail(r.status, r.proc) : undefined;
      attempts.push({ accel, machine: machine.name, outcome: r.outcome, ms, detail });
      log(`boot ${attempts.length}: ${r.outcome} after ${ms} ms${detail ? ` (${detail})` : ''}`);
      if (r.outcome === 'ready') {
        await plan.remember?.(accel).catch((err: unknown) => log(`cannot save the accelerator verdict: ${(err as Error).message}`));
        return {
          pid: r.proc.pid,
          accel: accel.accel,
          cpu: accel.cpu,
          machine: machine.name,
          kernelKind,
          argv: [qemu, ...argv],
          ready: r.value as T,
          consoleTail: r.proc.consoleTail,
          exited: r.proc.exited,
          kill: r.proc.kill,
          timings: { spawnedAt, aliveAt: r.aliveAt === undefined ? undefined : spawnedAt + r.aliveAt, readyAt: since() },
          attempts,
        };
      }
      last = r;
      if (fallbackAccel) break;
      if (r.outcome === 'exited' && r.status?.code === 0) break; // the guest powered off: booting again would do the same
      if (r.outcome === 'timeout' && ++timeouts === 2) break;
      // qemu refused this machine, or the boot hung once: the next machine if 'auto', else the same again.
      if (r.outcome === 'exited' || machines.length > 1) mi++;
    }
    if (!fallbackAccel) break;
  }
  throw failure(last!, attempts, deadlineMs);
}

interface AttemptResult {
  outcome: AttemptOutcome;
  proc: QemuProcess;
  value?: unknown;
  status?: ExitStatus;
  /** ms from spawn to the first console byte */
  aliveAt?: number;
}

/** One qemu boot, until it is ready or given up (then qemu is dead and the socket gone). */
async function attempt(
  qemu: string,
  argv: string[],
  opts: LaunchOptions<unknown>,
  a: { accel: AccelChoice; machine: MachineName; deadlineMs: number; signOfLifeMs?: number },
): Promise<AttemptResult> {
  const server = await listen(opts.channelSocket);
  const abort = new AbortController();
  let connection: Socket | undefined;
  const channel = new Promise<Socket>((resolve, reject) => {
    server.once('connection', (s) => {
      connection = s;
      // One connection per boot: nobody else may attach to the guest's channel.
      server.close();
      void rm(opts.channelSocket, { force: true });
      resolve(s);
    });
    abort.signal.addEventListener('abort', () => reject(new Error('the boot was abandoned before qemu connected')));
  });
  channel.catch(() => {});

  const started = performance.now();
  const proc = spawnQemu(qemu, argv, { onConsole: opts.onConsole });
  let aliveAt: number | undefined;
  void proc.firstOutput.then(() => (aliveAt = Math.round(performance.now() - started)));
  const timers: NodeJS.Timeout[] = [];
  const after = <R>(ms: number, value: R) => new Promise<R>((resolve) => timers.push(setTimeout(() => resolve(value), ms)));

  type Event = { kind: 'ready'; value: unknown } | { kind: 'not-ready'; err: unknown } | { kind: 'exited'; status: ExitStatus } | { kind: 'timeout' | 'no-sign-of-life' };
  const ready: Promise<Event> = opts
    .ready({ channel, signal: abort.signal, accel: a.accel, machine: a.machine })
    .then((value) => ({ kind: 'ready' as const, value }), (err: unknown) => ({ kind: 'not-ready' as const, err }));
  const exited: Promise<Event> = proc.exited.then((status) => ({ kind: 'exited' as const, status }));
  const events: Promise<Event>[] = [ready, exited, after(a.deadlineMs, { kind: 'timeout' as const })];
  if (a.signOfLifeMs !== undefined) {
    const alive = Promise.race([proc.firstOutput, ready]).then(() => new Promise<Event>(() => {}));
    events.push(Promise.race([alive, after(a.signOfLifeMs, { kind: 'no-sign-of-life' as const })]));
  }

  try {
    let ev = await Promise.race(events);
    // `ready` failing is most often the channel closing as qemu exits: report the exit.
    if (ev.kind === 'not-ready') ev = await Promise.race([exited, after(500, ev)]);
    if (ev.kind === 'ready') return { outcome: 'ready', proc, value: ev.value, aliveAt };
    abort.abort();
    connection?.destroy();
    await proc.kill();
    if (ev.kind === 'not-ready') throw ev.err;
    if (ev.kind === 'exited') return { outcome: 'exited', proc, status: ev.status, aliveAt };
    return { outcome: ev.kind, proc, aliveAt };
  } finally {
    for (const t of timers) clearTimeout(t);
    server.close();
    if (!connection) await rm(opts.channelSocket, { force: true });
  }
}

/** A fresh listening socket at `path` (a stale one from a dead run is replaced). */
async function listen(path: string): Promise<Server> {
  await rm(path, { force: true });
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(new ApplianceError('ECHANNEL', `cannot listen on the guest channel socket ${path}: ${err.message}`, { cause: err })),
    );
    server.listen(path, resolve);
  });
  return server;
}

function exitDetail(status: ExitStatus, proc: QemuProcess): string {
  const how = status.signal ? `signal ${status.signal}` : `code ${status.code}`;
  const err = proc.stderrTail();
  return err ? `${how}: ${err.split('\n').slice(-3).join(' / ')}` : how;
}

function failure(last: { proc: QemuProcess; outcome: AttemptOutcome; status?: ExitStatus }, attempts: Attempt[], deadlineMs: number): BootError {
  const tail = last.proc.consoleTail();
  const tried = attempts.map((a) => `${describeAccel(a.accel)}/${a.machine}: ${a.outcome}`).join(', ');
  if (last.outcome === 'timeout') {
    return new BootError(
      'EBOOTTIMEOUT',
      `the appliance did not become ready within ${deadlineMs} ms (tried ${tried}): check the kernel and the initrd, ` +
        `or allow more time if the host is very busy`,
      tail,
      attempts,
    );
  }
  if (last.outcome === 'exited' && last.status?.code === 0) {
    return new BootError('EBOOTFAILED', `the appliance stopped (powered off, rebooted or panicked) before it was ready (tried ${tried}): see its console`, tail, attempts);
  }
  return new BootError(
    'EQEMU',
    `qemu failed to boot the appliance (tried ${tried}; ${attempts.at(-1)?.detail ?? 'no sign of life'}): ` +
      `check the qemu installation, or pick another machine or accelerator`,
    tail,
    attempts,
  );
}
