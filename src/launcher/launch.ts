/**
 * Boots the appliance: picks the accelerator (falling back from KVM to TCG when KVM
 * exits or shows no sign of life) and the machine (falling back when qemu rejects one),
 * catches a boot that hangs with a deadline and retries it once, in the order plan.ts
 * gives, and returns once `ready` has resolved. With `snapshot`, each boot restores the
 * snapshot of its shape, making it first if needed (snapshot-boot.ts).
 */
import { rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { cacheRootPath, ensureCacheRoot } from '../cache/dir.js';
import { ApplianceError } from '../errors.js';
import { sha256File } from '../files.js';
import { param } from '../guest/contract.js';
import { describeAccel, planAccel, type Accel, type AccelChoice, type AccelPlan } from './accel.js';
import { kernelCmdline, type QemuConfig } from './argv.js';
import { attempt, type AttemptResult, type ReadyContext } from './attempt.js';
import { findQemu } from './binary.js';
import { bootFailure, type Attempt } from './boot-error.js';
import { closeDisks, openDisks, type DiskSpec, type OpenDisk } from './disks.js';
import { pvhKernel } from './kernel.js';
import { machineCandidates, machineProfile, type MachineName } from './machine.js';
import { plain, type Mode } from './modes.js';
import { advance, failureOf, type Position } from './plan.js';
import type { ExitStatus } from './process.js';
import { bootWithSnapshot } from './snapshot-boot.js';
import { socketFolder } from './sockets.js';
import { hostTscKhz } from './tsc.js';

export type { ReadyContext } from './attempt.js';
export { BootError, type Attempt } from './boot-error.js';

export interface LaunchOptions<T> {
  /** bzImage (an ELF vmlinux with a PVH entry is used as is). */
  kernel: string;
  /** The kernel's sha256 when known (an appliance manifest has it): keys the extracted vmlinux without hashing the kernel again. */
  kernelSha256?: string;
  initrd: string;
  /** The appliance's root image (raw), attached read-only with the root serial. */
  root: string;
  /** User disks, attached as disk0, disk1, … in this order. */
  disks?: DiskSpec[];
  /** The same disks opened and checked already (openDisks): the launch takes them over and closes them. */
  opened?: OpenDisk[];
  /** Default 512: boots as fast as 256 under TCG, and memory the guest does not touch costs the host nothing. */
  memoryMb?: number;
  /** Default 1. */
  cpus?: number;
  /** Default 'auto': KVM when it works on this host (remembered for 7 days), else TCG. */
  accel?: 'auto' | Accel;
  /** The KVM device whose access decides whether KVM is tried (default /dev/kvm). */
  kvmDevice?: string;
  /** Default 'auto': the fastest machine that works (microvm, then q35, then pc). */
  machine?: 'auto' | MachineName;
  /** Kernel parameters added after the base ones (e.g. appliance.root=…). */
  cmdline?: string[];
  /** The qemu binary (--qemu); default qemu-system-x86_64 from $PATH. */
  qemu?: string;
  /** The cache root (default: cache/dir.ts's): the accelerator verdict, extracted kernels and snapshots live there. */
  cacheDir?: string;
  /**
   * How long one boot may take to become ready, from qemu's start (default 20 000 ms), counted
   * by the CPU qemu gets: on a busy host up to STRETCH_MAX times as long (deadline.ts).
   */
  bootDeadlineMs?: number;
  /**
   * How long a boot may show no sign of life (no console byte, not ready) while another
   * accelerator remains to fall back to (default 3000 ms): how a hanging KVM is caught.
   */
  signOfLifeMs?: number;
  /** Ends the launch (qemu killed, nothing left behind) with EABORTED, or ETIMEDOUT for an AbortSignal.timeout. */
  signal?: AbortSignal;
  /**
   * Restore the snapshot of this boot's shape, saving it on first use (snapshot.ts); the
   * init must stop at its snapshot point on appliance.snapshot=1 (ours does). Default false.
   */
  snapshot?: boolean;
  /** Ask the init (and the agent) to print the boot timeline on the console. */
  consoleTiming?: boolean;
  /** Resolves when the guest is up, with what the caller wants back (e.g. the agent client after its HELLO). */
  ready: (ctx: ReadyContext) => Promise<T>;
  /** Each console line of every attempt. */
  onConsole?: (line: string) => void;
  /** Verbose log: what was tried and why. */
  log?: (message: string) => void;
}

export interface Launched<T> {
  pid: number;
  accel: Accel;
  cpu?: string;
  machine: MachineName;
  /** vmlinux: the kernel's PVH entry (extracted ELF); bzImage: the usual boot. */
  kernelKind: 'vmlinux' | 'bzImage';
  /** restored: from a snapshot; created: from a snapshot this launch saved first; none: booted. */
  snapshot: 'restored' | 'created' | 'none';
  /** The qemu command line that booted, binary first. */
  argv: string[];
  /** What `ready` resolved to. */
  ready: T;
  consoleTail(): string[];
  /** The kernel's last words, if it died (see process.ts). */
  lastWords(): string | undefined;
  exited: Promise<ExitStatus>;
  kill(): Promise<ExitStatus>;
  stop(): Promise<ExitStatus>;
  /** ms since launch() was called; resumedAt: when a restored guest ran again. */
  timings: { spawnedAt: number; aliveAt?: number; resumedAt?: number; readyAt: number };
  /** Every boot tried, the successful one last. */
  attempts: Attempt[];
}

const DEFAULTS = { memoryMb: 512, cpus: 1, bootDeadlineMs: 20_000, signOfLifeMs: 3000 };

/** What every attempt of one launch shares, worked out once. */
interface Prepared {
  qemu: string;
  cacheRoot: string;
  /** Open until the launch ends: every qemu of it inherits them. */
  disks: OpenDisk[];
  /** The launch's private folder for the sockets qemu dials (sockets.ts); removed when it ends. */
  socketDir: string;
  plan: AccelPlan;
  tscKhz?: number;
  vmlinux?: string;
  /** For the snapshot key: the kernel and the initrd by content, the root image by identity. */
  snapshotIds?: { kernel: string; initrd: string; root: string };
  initParams: string[];
  deadlineMs: number;
  /** Work that goes on after the caller gave up (a snapshot's save). */
  outliving: Promise<unknown>[];
}

type Result = AttemptResult & { spawnedAt: number };

export async function launch<T>(opts: LaunchOptions<T>): Promise<Launched<T>> {
  const t0 = performance.now();
  const since = () => Math.round(performance.now() - t0);
  const log = opts.log ?? (() => {});
  const p = await prepare(opts, log).catch(async (err: unknown) => {
    if (opts.opened) await closeDisks(opts.opened);
    throw err;
  });
  try {
    return await walk(opts, p, log, since);
  } finally {
    await closeDisks(p.disks);
    const removeSockets = () => rm(p.socketDir, { recursive: true, force: true });
    // A snapshot's save that outlives its caller still listens for its state's stream there.
    if (p.outliving.length) void Promise.allSettled(p.outliving).then(removeSockets);
    else await removeSockets();
  }
}

/** Tries one attempt after another in the order plan.ts gives, until one is ready. */
async function walk<T>(opts: LaunchOptions<T>, p: Prepared, log: (message: string) => void, since: () => number): Promise<Launched<T>> {
  const attempts: Attempt[] = [];
  let at: Position | undefined = { accel: 0, machine: 0, timeouts: 0 };
  let last: Result | undefined;
  while (at) {
    const accel = p.plan.candidates[at.accel]!;
    const machines = machineCandidates(opts.machine ?? 'auto', accel.accel, p.tscKhz);
    const config = qemuConfig(opts, p, accel, machines[at.machine]!);
    const fallback = at.accel < p.plan.candidates.length - 1;
    const run = (mode: Mode, how?: { outlivesCaller?: boolean }): Promise<Result> => {
      const spawnedAt = since();
      return attempt(p.qemu, config, mode, {
        accel,
        machine: config.machine.name,
        kernelKind: p.vmlinux ? 'vmlinux' : 'bzImage',
        deadlineMs: p.deadlineMs,
        signOfLifeMs: fallback ? (opts.signOfLifeMs ?? DEFAULTS.signOfLifeMs) : undefined,
        signal: how?.outlivesCaller ? undefined : opts.signal,
        number: attempts.length + 1,
        channelSocket: join(p.socketDir, 'agent.sock'),
        diskFds: p.disks.flatMap((d) => [d.fd, d.readHandle?.fd]), // FDS_PER_DISK each, argv.ts
        timing: opts.consoleTiming ?? false,
        ready: opts.ready,
        onConsole: opts.onConsole,
        log,
      }).then((r) => {
        const ms = since() - spawnedAt;
        attempts.push({ accel, machine: config.machine.name, mode: mode.kind, outcome: r.outcome, ms, detail: r.detail });
        log(`boot ${attempts.length}: ${r.outcome} after ${ms} ms${r.detail ? ` (${r.detail})` : ''}`);
        return { ...r, spawnedAt };
      });
    };
    const r = p.snapshotIds
      ? await bootWithSnapshot(run, {
          qemu: p.qemu,
          cacheRoot: p.cacheRoot,
          config: snapshotShape(config, p.snapshotIds),
          log,
          signal: opts.signal,
          outlive: (w) => p.outliving.push(w),
        })
      : await run(plain);
    if (r.outcome === 'ready') {
      await p.plan.remember?.(accel).catch((err: unknown) => log(`cannot save the accelerator verdict: ${(err as Error).message}`));
      return launched<T>(r, { p, accel, machine: config.machine.name, attempts, readyAt: since() });
    }
    last = r;
    at = advance(at, failureOf(r), { accels: p.plan.candidates.length, machines: machines.length });
  }
  throw bootFailure(
    p.qemu,
    last!,
    attempts,
    p.deadlineMs,
    p.disks.map((d) => d.path),
  );
}

/** Everything a launch works out before its first qemu: the binary, the disks, the accelerators, the kernel, the snapshot's ids. */
async function prepare<T>(opts: LaunchOptions<T>, log: (message: string) => void): Promise<Prepared> {
  checkSizes(opts);
  const qemu = findQemu(opts.qemu);
  const cacheRoot = await ensureCacheRoot(opts.cacheDir ?? cacheRootPath());
  const plan = await planAccel(opts.accel ?? 'auto', { qemu, cacheRoot, kvmDevice: opts.kvmDevice });
  log(`accelerators: ${plan.candidates.map(describeAccel).join(', then ')} (${plan.reason})`);
  const tscKhz = hostTscKhz();
  if (opts.machine === 'microvm' && !tscKhz && plan.candidates.some((c) => c.accel === 'tcg')) {
    log('microvm under TCG without the host TSC frequency: the guest may hang calibrating its clock (see machine.ts)');
  }
  const vmlinux = await pvhKernel(opts.kernel, cacheRoot, log, opts.kernelSha256);
  // The snapshot key names the kernel and the initrd by content (the vmlinux's name is its bzImage's hash).
  // The root image by identity: hashing it would cost more than the boot (a cache entry's never changes).
  const snapshotIds = opts.snapshot
    ? {
        kernel: vmlinux ? basename(vmlinux) : (opts.kernelSha256 ?? (await sha256File(opts.kernel))),
        initrd: await sha256File(opts.initrd), // 0.4 MB: ~2 ms, and always the file that boots
        root: await rootIdentity(opts.root),
      }
    : undefined;
  // With snapshots the timing flag travels in the go line, so that it is not part of the snapshot's key.
  const initParams = [...(opts.cmdline ?? []), ...(snapshotIds ? [param('snapshot', 1)] : opts.consoleTiming ? [param('timing', 1)] : [])];
  // Last: once open, the disks must be closed and the folder removed whatever happens (launch() does).
  const disks = opts.opened ?? (await openDisks(opts.disks ?? []));
  const socketDir = await socketFolder().catch(async (err: unknown) => {
    await closeDisks(disks);
    throw err;
  });
  return {
    socketDir,
    qemu,
    cacheRoot,
    disks,
    plan,
    tscKhz,
    vmlinux,
    snapshotIds,
    initParams,
    deadlineMs: opts.bootDeadlineMs ?? DEFAULTS.bootDeadlineMs,
    outliving: [],
  };
}

/** An option's number, if given, within [min, max] (and whole unless `integer` is false): EINVAL naming it otherwise. */
export function checkNumber(name: string, value: unknown, min: number, max: number, integer = true): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
    throw new ApplianceError(
      'EINVAL',
      `${name} ${typeof value === 'number' ? value : JSON.stringify(value)}: give ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}`,
    );
  }
}

/** The bounds of memory, CPUs and a boot's deadline: what qemu and a boot can take. */
export const BOOT_LIMITS = { memoryMb: [128, 1 << 20], cpus: [1, 255], deadlineMs: [1, 3_600_000] } as const;

/** Memory, CPUs and the deadline as qemu and a boot can take them: whole, positive, in range. */
function checkSizes<T>(opts: LaunchOptions<T>): void {
  checkNumber('memoryMb', opts.memoryMb, ...BOOT_LIMITS.memoryMb);
  checkNumber('cpus', opts.cpus, ...BOOT_LIMITS.cpus);
  checkNumber('bootDeadlineMs', opts.bootDeadlineMs, ...BOOT_LIMITS.deadlineMs, false);
}

function qemuConfig<T>(opts: LaunchOptions<T>, p: Prepared, accel: AccelChoice, machine: MachineName): QemuConfig {
  return {
    machine: machineProfile(machine),
    accel,
    memoryMb: opts.memoryMb ?? DEFAULTS.memoryMb,
    cpus: opts.cpus ?? DEFAULTS.cpus,
    boot: { kernel: p.vmlinux ?? opts.kernel, initrd: opts.initrd, cmdline: kernelCmdline(accel, p.tscKhz, p.initParams) },
    root: resolve(opts.root),
    disks: p.disks,
    channelSocket: join(p.socketDir, 'agent.sock'),
  };
}

/** The configuration a snapshot's key hashes: the files named by what identifies them, not by path. */
function snapshotShape(config: QemuConfig, ids: { kernel: string; initrd: string; root: string }): QemuConfig {
  if (config.boot === 'incoming') return config;
  return { ...config, boot: { ...config.boot, kernel: ids.kernel, initrd: ids.initrd }, root: ids.root };
}

function launched<T>(r: Result, o: { p: Prepared; accel: AccelChoice; machine: MachineName; attempts: Attempt[]; readyAt: number }): Launched<T> {
  return {
    pid: r.proc.pid,
    accel: o.accel.accel,
    cpu: o.accel.cpu,
    machine: o.machine,
    kernelKind: o.p.vmlinux ? 'vmlinux' : 'bzImage',
    snapshot: r.snapshot ?? 'none',
    argv: [o.p.qemu, ...r.argv],
    ready: r.value as T,
    consoleTail: r.proc.consoleTail,
    lastWords: r.proc.lastWords,
    exited: r.proc.exited,
    kill: r.proc.kill,
    stop: r.proc.stop,
    timings: {
      spawnedAt: r.spawnedAt,
      aliveAt: r.aliveAt === undefined ? undefined : r.spawnedAt + r.aliveAt,
      resumedAt: r.resumedAt === undefined ? undefined : r.spawnedAt + r.resumedAt,
      readyAt: o.readyAt,
    },
    attempts: o.attempts,
  };
}

async function rootIdentity(root: string): Promise<string> {
  const st = await stat(root).catch((err: unknown) => {
    throw new ApplianceError('ENOENT', `cannot read the appliance's root image ${root}: ${(err as Error).message}`, { cause: err });
  });
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
}
