import { stat } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { basename } from 'node:path';
import { cacheRootPath, ensureCacheRoot } from '../cache/dir.js';
import { ApplianceError } from '../errors.js';
import { sha256File } from '../files.js';
import { describeAccel, planAccel, type Accel, type AccelChoice } from './accel.js';
import { attempt, type AttemptMode, type AttemptOutcome, type AttemptResult } from './attempt.js';
import { kernelCmdline, type KernelBoot, type QemuConfig } from './argv.js';
import { resolveDisk, type DiskSpec } from './disks.js';
import { findQemu } from './binary.js';
import { machineCandidates, machineProfile, type MachineName } from './machine.js';
import type { ExitStatus } from './process.js';
import { findSnapshot, markUnusable, prepareSnapshot, removeSnapshot, snapshotKey, SNAPSHOT_PARAM, unusableReason } from './snapshot.js';
import { hostTscKhz } from './tsc.js';
import { pvhKernel } from '../kernel/pvh.js';

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
  /** The KVM device whose access decides whether KVM is tried (default /dev/kvm). */
  kvmDevice?: string;
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

export interface ReadyContext {
  /** qemu's connection to the guest channel; rejects if this attempt ends first. */
  channel: Promise<Socket>;
  /** Aborted when this attempt is abandoned (timeout, exit, fallback). */
  signal: AbortSignal;
  accel: AccelChoice;
  machine: MachineName;
}


export interface Attempt {
  accel: AccelChoice;
  machine: MachineName;
  /** plain or cold: the kernel booted; save: booted to save a snapshot; restore: a snapshot resumed. */
  mode: AttemptMode['kind'];
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
  /** restored: from a snapshot; created: from a snapshot this launch saved first; none: booted. */
  snapshot: 'restored' | 'created' | 'none';
  /** The qemu command line that booted, binary first. */
  argv: string[];
  /** What `ready` resolved to. */
  ready: T;
  consoleTail(): string[];
  exited: Promise<ExitStatus>;
  kill(): Promise<ExitStatus>;
  /** ms since launch() was called; resumedAt: when a restored guest ran again. */
  timings: { spawnedAt: number; aliveAt?: number; resumedAt?: number; readyAt: number };
  /** Every boot tried, the successful one last. */
  attempts: Attempt[];
}

/** A boot that failed: the last console lines come with it. */
export class BootError extends ApplianceError {
  /** What went wrong, in one line (the message adds the console lines). */
  readonly reason: string;
  readonly consoleTail: string[];
  readonly attempts: Attempt[];
  constructor(code: string, reason: string, consoleTail: string[], attempts: Attempt[]) {
    const tail = consoleTail.length ? `\nlast console lines:\n${consoleTail.map((l) => `  ${l}`).join('\n')}` : '\n(no console output)';
    super(code, reason + tail);
    this.reason = reason;
    this.consoleTail = consoleTail;
    this.attempts = attempts;
  }
}

const DEFAULTS = { memoryMb: 512, cpus: 1, bootDeadlineMs: 20_000, signOfLifeMs: 3000 };

/**
 * Boots the appliance: picks the accelerator (falling back from KVM to TCG when KVM
 * exits or shows no sign of life) and the machine (falling back when qemu rejects
 * one), catches a boot that hangs with a deadline and retries it once (on the next
 * machine when the machine is 'auto'), and returns once `ready` has resolved. With
 * `snapshot`, each boot restores the snapshot of its shape, making it first if needed
 * (snapshot.ts).
 */
export async function launch<T>(opts: LaunchOptions<T>): Promise<Launched<T>> {
  const t0 = performance.now();
  const since = () => Math.round(performance.now() - t0);
  const log = opts.log ?? (() => {});
  const qemu = findQemu(opts.qemu);
  const disks = await Promise.all((opts.disks ?? []).map(resolveDisk));
  const cacheRoot = await ensureCacheRoot(opts.cacheDir ?? cacheRootPath());
  const plan = await planAccel(opts.accel ?? 'auto', { qemu, cacheRoot, kvmDevice: opts.kvmDevice });
  log(`accelerators: ${plan.candidates.map(describeAccel).join(', then ')} (${plan.reason})`);
  const tscKhz = hostTscKhz();
  if (opts.machine === 'microvm' && !tscKhz && plan.candidates.some((c) => c.accel === 'tcg')) {
    log('microvm under TCG without the host TSC frequency: the guest may hang calibrating its clock (see machine.ts)');
  }
  const vmlinux = await pvhKernel(opts.kernel, cacheRoot, log, opts.kernelSha256);
  const kernelKind = vmlinux ? 'vmlinux' : 'bzImage';
  const deadlineMs = opts.bootDeadlineMs ?? DEFAULTS.bootDeadlineMs;
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
  const initParams = [...(opts.cmdline ?? []), ...(snapshotIds ? [SNAPSHOT_PARAM] : opts.consoleTiming ? ['appliance.timing=1'] : [])];

  const attempts: Attempt[] = [];
  let last: AttemptResult | undefined;
  for (const [ai, accel] of plan.candidates.entries()) {
    const fallbackAccel = ai < plan.candidates.length - 1;
    const machines = machineCandidates(opts.machine ?? 'auto', accel.accel, tscKhz);
    let timeouts = 0;
    for (let mi = 0; mi < machines.length; ) {
      const machine = machineProfile(machines[mi]!);
      const boot: KernelBoot = { kernel: vmlinux ?? opts.kernel, initrd: opts.initrd, cmdline: kernelCmdline(accel, tscKhz, initParams) };
      const config: QemuConfig = {
        machine,
        accel,
        memoryMb: opts.memoryMb ?? DEFAULTS.memoryMb,
        cpus: opts.cpus ?? DEFAULTS.cpus,
        boot,
        root: opts.root,
        disks,
        channelSocket: opts.channelSocket,
      };
      const run = (mode: AttemptMode) => {
        const spawnedAt = since();
        return attempt(qemu, config, mode, opts, {
          accel,
          machine: machine.name,
          kernelKind,
          deadlineMs,
          signOfLifeMs: fallbackAccel ? (opts.signOfLifeMs ?? DEFAULTS.signOfLifeMs) : undefined,
          number: attempts.length + 1,
        }).then((r) => {
          const ms = since() - spawnedAt;
          attempts.push({ accel, machine: machine.name, mode: mode.kind, outcome: r.outcome, ms, detail: r.detail });
          log(`boot ${attempts.length}: ${r.outcome} after ${ms} ms${r.detail ? ` (${r.detail})` : ''}`);
          return { ...r, spawnedAt };
        });
      };
      const r = snapshotIds
        ? await bootWithSnapshot(run, {
            qemu,
            cacheRoot,
            config: { ...config, boot: { ...boot, kernel: snapshotIds.kernel, initrd: snapshotIds.initrd }, root: snapshotIds.root },
            log,
          })
        : await run({ kind: 'plain' });
      if (r.outcome === 'ready') {
        await plan.remember?.(accel).catch((err: unknown) => log(`cannot save the accelerator verdict: ${(err as Error).message}`));
        return {
          pid: r.proc.pid,
          accel: accel.accel,
          cpu: accel.cpu,
          machine: machine.name,
          kernelKind,
          snapshot: r.snapshot ?? 'none',
          argv: [qemu, ...r.argv],
          ready: r.value as T,
          consoleTail: r.proc.consoleTail,
          exited: r.proc.exited,
          kill: r.proc.kill,
          timings: {
            spawnedAt: r.spawnedAt,
            aliveAt: r.aliveAt === undefined ? undefined : r.spawnedAt + r.aliveAt,
            resumedAt: r.resumedAt === undefined ? undefined : r.spawnedAt + r.resumedAt,
            readyAt: since(),
          },
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
  throw failure(qemu, last!, attempts, deadlineMs);
}

async function rootIdentity(root: string): Promise<string> {
  const st = await stat(root).catch((err: unknown) => {
    throw new ApplianceError('ENOENT', `cannot read the appliance's root image ${root}: ${(err as Error).message}`, { cause: err });
  });
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
}

/**
 * One boot of a shape that snapshots: restore its snapshot; if there is none (or it no
 * longer restores), boot cold, save it at the snapshot point, and restore that. A shape
 * whose snapshot cannot be saved or restored here is remembered as such, and boots cold.
 */
async function bootWithSnapshot(
  run: (mode: AttemptMode) => Promise<AttemptResult & { spawnedAt: number }>,
  s: { qemu: string; cacheRoot: string; config: QemuConfig; log: (message: string) => void },
): Promise<AttemptResult & { spawnedAt: number }> {
  const key = await snapshotKey(s.qemu, s.config);
  const unusable = await unusableReason(s.cacheRoot, key);
  if (unusable) {
    s.log(`snapshot ${key}: not used, it did not work here before (${unusable})`);
    return run({ kind: 'cold' });
  }
  const existing = await findSnapshot(s.cacheRoot, key);
  if (existing) {
    const r = await run({ kind: 'restore', snapshot: existing });
    if (r.outcome === 'ready') return { ...r, snapshot: 'restored' };
    s.log(`snapshot ${key}: did not restore, deleting it`);
    await removeSnapshot(s.cacheRoot, key);
    if (r.outcome === 'no-sign-of-life') return r; // a hanging accelerator: the launcher falls back
  }
  // What does not work is remembered where the cache can say so; a read-only cache only costs time.
  const unusableFrom = (why: string) => markUnusable(s.cacheRoot, key, why).catch((err: unknown) => s.log(`snapshot ${key}: cannot note it as unusable: ${(err as Error).message}`));
  const pending = await prepareSnapshot(s.cacheRoot, key).catch((err: unknown) => {
    s.log(`snapshot ${key}: cannot make one in the cache (${(err as Error).message}): booting without`);
  });
  if (!pending) return run({ kind: 'cold' });
  const saved = await run({ kind: 'save', pending }).catch(async (err: unknown) => {
    await pending.discard();
    throw err;
  });
  if (saved.outcome !== 'saved') {
    await pending.discard();
    if (saved.saveError) await unusableFrom(saved.saveError);
    if (saved.outcome !== 'exited' || saved.status?.code === 0) return saved;
    // qemu refused to start: perhaps only with its RAM in a file (the cache's file system?), not the machine.
    const cold = await run({ kind: 'cold' });
    if (cold.outcome === 'ready') await unusableFrom(`qemu did not start with its RAM in a file: ${saved.detail}`);
    return cold;
  }
  const made = await pending.commit().catch(async (err: unknown) => {
    s.log(`snapshot ${key}: cannot keep it (${(err as Error).message}): booting without`);
    await pending.discard();
  });
  if (!made) return run({ kind: 'cold' });
  s.log(`snapshot ${key}: saved in ${made.dir}`);
  const r = await run({ kind: 'restore', snapshot: made });
  if (r.outcome === 'ready') return { ...r, snapshot: 'created' };
  const why = `a snapshot just made did not restore: ${r.outcome}${r.detail ? ` (${r.detail})` : ''}`;
  s.log(`snapshot ${key}: ${why}; booting without snapshots`);
  await removeSnapshot(s.cacheRoot, key);
  await unusableFrom(why);
  return run({ kind: 'cold' });
}

function failure(qemu: string, last: AttemptResult, attempts: Attempt[], deadlineMs: number): BootError {
  const tail = last.proc.consoleTail();
  const how = (a: Attempt) => (a.mode === 'save' ? ' saving a snapshot' : a.mode === 'restore' ? ' restoring a snapshot' : '');
  const tried = attempts.map((a) => `${describeAccel(a.accel)}/${a.machine}${how(a)}: ${a.outcome}`).join(', ');
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
    `qemu (${qemu}) failed to boot the appliance (tried ${tried}; ${attempts.at(-1)?.detail ?? 'no sign of life'}): ` +
      `check the qemu installation, or pick another machine or accelerator`,
    tail,
    attempts,
  );
}
