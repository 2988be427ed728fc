import type { Readable } from 'node:stream';
import { buildAppliance, modulesHeld, type Appliance, type BuildOptions } from '../appliance/index.js';
import { PRELOADED_MODULES } from '../appliance/default.js';
import {
  AgentClient,
  type ExecOptions,
  type ExecResult,
  type ExecStream,
  type Input,
  type ReadFileOptions,
  type ReadFileStreamOptions,
} from '../agent/agent-client.js';
import { AGENT_PATH, diskGuestPath, diskSerial, param, ROOT_SERIAL } from '../guest/contract.js';
import { ApplianceError } from '../errors.js';
import {
  abortError,
  BOOT_LIMITS,
  checkNumber,
  closeDisks,
  launch,
  diskSpecs,
  openDisks,
  type Accel,
  type Attempt,
  type DiskSpec,
  type Launched,
  type LaunchOptions,
  type MachineName,
} from '../launcher/index.js';
import { ACCEL_CHOICES, MACHINE_CHOICES } from './choices.js';
import { GuestDeath } from './guest-death.js';

export interface BootOptions {
  /** User disks (a path alone is `{ path }`), attached read-only by default, in the guest as `Vm.disks[i].guestPath`. */
  disks?: (string | DiskSpec)[];
  memoryMb?: number;
  cpus?: number;
  accel?: 'auto' | Accel;
  machine?: 'auto' | MachineName;
  qemu?: string;
  /** How long the boot may take to become ready (default 20 s), counted by the CPU qemu gets: up to 4 times as long on a busy host. */
  bootTimeoutMs?: number;
  /**
   * Cancels boot() (building, waiting for another process's snapshot save, booting): qemu is
   * ended, nothing is left behind, and boot() rejects with EABORTED.
   */
  signal?: AbortSignal;
  /** A bound on the whole of boot(), in ms: past it, as `signal`, with ETIMEDOUT. */
  timeoutMs?: number;
  /** An appliance already built, or how to build one (default: the default appliance, cached). */
  appliance?: Appliance | BuildOptions;
  cacheDir?: string;
  /**
   * Resume a snapshot of the booted appliance instead of booting it (default true): the
   * first boot of a shape (memory, CPUs, disk count…) saves it, later ones are ready in
   * ~0.3 s instead of ~1.7 s under TCG (see launcher/snapshot.ts).
   */
  snapshot?: boolean;
  /**
   * Modules of the appliance's root to load before the guest is ready (filesystems,
   * device-mapper…): with snapshots they are loaded once, in the snapshot of this shape,
   * instead of at each use (about a second each under TCG). Names the root does not hold
   * (built into the kernel, or not in it) are left out, and `log` says so. Default:
   * PRELOADED_MODULES, the set inspect() uses (so that both resume one snapshot).
   */
  modules?: readonly string[];
  /** Every console line of the guest (kernel and init messages). */
  onConsole?: (line: string) => void;
  /** What was decided and why (--verbose). */
  log?: (message: string) => void;
}

export interface VmDisk {
  /** The host image. */
  path: string;
  /** A stable name for it inside the guest. */
  guestPath: string;
  serial: string;
}

/** Milliseconds of each boot stage; the guest's figures come from its own clock. */
export interface BootTimings {
  /** restored: from a snapshot; created: a snapshot was saved first, then restored; none: the kernel booted. */
  snapshot: 'restored' | 'created' | 'none';
  /** Finding or building the appliance (a cache hit costs a few ms). */
  buildMs: number;
  /** From boot() to the start of the qemu that came up (accelerator choice, kernel preparation, earlier attempts). */
  qemuStartMs: number;
  /** From that qemu's start until the restored guest ran again (snapshots only). */
  restoreMs?: number;
  /** Guest clock: kernel start to the init's start (0 when restored: the snapshot holds the booted kernel). */
  kernelMs: number;
  /** Guest clock: the init's start, or its resumption from a snapshot, to the agent's greeting. */
  initMs: number;
  /** From boot() until the agent answered: the whole wait. */
  readyMs: number;
}

function isAppliance(a: Appliance | BuildOptions | undefined): a is Appliance {
  return a !== undefined && typeof (a as Appliance).root === 'string' && typeof (a as Appliance).initrd === 'string';
}

/** A booted appliance: run commands in it, move files in and out, close it. */
export class Vm {
  private closing?: Promise<void>;

  private constructor(
    private readonly launched: Launched<AgentClient>,
    private readonly agent: AgentClient,
    private readonly death: GuestDeath,
    readonly appliance: Appliance,
    readonly disks: VmDisk[],
    readonly timings: BootTimings,
    /** Whether any user disk is attached read-write. */
    private readonly writable: boolean,
  ) {}

  /** @internal */
  static async start(opts: BootOptions = {}): Promise<Vm> {
    const t0 = performance.now();
    checkBootOptions(opts);
    const signal = callSignal(opts);
    if (signal?.aborted) throw abortError(signal.reason);
    // The disks first: a missing or refused image is said at once, not after a build.
    const specs = diskSpecs(opts.disks ?? []);
    const opened = await openDisks(specs);
    const appliance = isAppliance(opts.appliance)
      ? opts.appliance
      : await buildAppliance({ cacheDir: opts.cacheDir, log: opts.log, ...opts.appliance }).catch(async (err: unknown) => {
          await closeDisks(opened);
          throw err;
        });
    const buildMs = performance.now() - t0;
    const modules = modulesHeld(appliance, opts.modules ?? PRELOADED_MODULES);
    if (modules.absent.length) opts.log?.(`modules not loaded before the snapshot point: ${modules.absent.join(' ')} (built into the kernel, or not in it)`);
    const death = new GuestDeath();
    if (signal?.aborted) {
      await closeDisks(opened);
      throw abortError(signal.reason);
    }
    const launched = await launch({ ...launchOptions(appliance, opts, modules.held), opened, signal });
    const agent = launched.ready;
    const disks = specs.map((d, i) => ({
      path: d.path,
      serial: diskSerial(i),
      guestPath: diskGuestPath(i),
    }));
    const timings = timingsOf(launched, buildMs, performance.now() - t0);
    const vm = new Vm(
      launched,
      agent,
      death,
      appliance,
      disks,
      timings,
      specs.some((d) => d.readonly === false),
    );
    // The guest dying (or qemu) must not leave callers waiting: its requests fail with EGUESTDIED.
    death.watch(launched, () => vm.closing !== undefined);
    void launched.exited.then(() => vm.agent.close());
    // A channel that breaks (the guest broke the protocol: EPROTO) ends the VM: nothing more can be asked of it.
    void agent.closed.then(() => (vm.closing === undefined ? launched.kill() : undefined));
    return vm;
  }

  get pid(): number {
    return this.launched.pid;
  }
  get accel(): Accel {
    return this.launched.accel;
  }
  get machine(): MachineName {
    return this.launched.machine;
  }
  /** Every boot tried, the one that came up last (a KVM that hung, then TCG, say). */
  get attempts(): Attempt[] {
    return this.launched.attempts;
  }
  /** The last lines the guest printed on its console. */
  consoleTail(): string[] {
    return this.launched.consoleTail();
  }

  exec(argv: (string | Buffer)[], opts?: ExecOptions): Promise<ExecResult> {
    return this.death.guard(this.agent.exec(argv, opts));
  }
  /**
   * Runs a command with its output as streams. A stream whose reader is behind holds up
   * that command (it blocks on its full pipe, as a child of Node's does) and nothing else:
   * read both, or it never ends.
   */
  execStream(argv: (string | Buffer)[], opts?: ExecOptions): ExecStream {
    const s = this.agent.execStream(argv, opts);
    const result = this.death.guard(s.result);
    result.catch(() => {}); // see AgentClient.execStream: awaited, it still rejects
    return { ...s, result };
  }
  writeFile(guestPath: string, data: Input, mode?: number): Promise<void> {
    return this.death.guard(this.agent.writeFile(guestPath, data, mode));
  }
  readFile(guestPath: string, opts?: ReadFileOptions): Promise<Buffer> {
    return this.death.guard(this.agent.readFile(guestPath, opts));
  }
  readFileStream(guestPath: string, opts?: ReadFileStreamOptions): Readable {
    return this.death.stream(this.agent.readFileStream(guestPath, opts));
  }

  /**
   * Ends the VM. With a read-write disk, the agent first ends the guest's processes and
   * syncs, then qemu is told to stop (it flushes and closes the disks as it exits); qemu
   * is killed if that takes over 3 s. With every disk read-only there is nothing to
   * flush, so qemu is killed at once (saves ~50 ms under TCG: an inspection's every call
   * pays it). Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        if (this.writable) await Promise.race([this.agent.poweroff().then(() => this.launched.stop()), delay(3000)]);
      } catch {
        // The agent is gone already: qemu is stopped below either way.
      } finally {
        this.agent.close();
        await this.launched.kill();
      }
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * Boots an appliance (the default one, built and cached on first use) and returns once
 * its agent answers. User disks are attached read-only unless a disk says otherwise.
 */
export function boot(opts?: BootOptions): Promise<Vm> {
  return Vm.start(opts);
}

/** What the launcher needs of a boot: the appliance's files, the caller's machine, the agent's hand-over. */
function launchOptions(appliance: Appliance, opts: BootOptions, modules: string[]): LaunchOptions<AgentClient> {
  return {
    kernel: appliance.kernel,
    kernelSha256: appliance.manifest.kernel.sha256,
    initrd: appliance.initrd,
    root: appliance.root,
    memoryMb: opts.memoryMb,
    cpus: opts.cpus,
    accel: opts.accel,
    machine: opts.machine,
    qemu: opts.qemu,
    cacheDir: opts.cacheDir,
    bootDeadlineMs: opts.bootTimeoutMs,
    // The init hands over to the agent, which serves the channel as the guest's PID 1.
    cmdline: [param('root', ROOT_SERIAL), param('init', AGENT_PATH), ...(modules.length ? [param('modules', modules.join(','))] : [])],
    snapshot: opts.snapshot ?? true,
    consoleTiming: Boolean(opts.log),
    ready: async (ctx) => AgentClient.connect(await ctx.channel),
    onConsole: opts.onConsole,
    log: opts.log,
  };
}

/** Where a boot's time went, from the host's clock and the guest's own report (its hello). */
function timingsOf(launched: Launched<AgentClient>, buildMs: number, readyMs: number): BootTimings {
  const { hello } = launched.ready;
  const resumed = launched.snapshot !== 'none';
  return {
    snapshot: launched.snapshot,
    buildMs: Math.round(buildMs),
    qemuStartMs: Math.round(buildMs + launched.timings.spawnedAt),
    restoreMs: launched.timings.resumedAt === undefined ? undefined : launched.timings.resumedAt - launched.timings.spawnedAt,
    kernelMs: resumed ? 0 : hello.initMs,
    initMs: hello.bootMs - (resumed ? hello.resumeMs : hello.initMs),
    readyMs: Math.round(readyMs),
  };
}

/**
 * boot()'s options as JavaScript may pass them, checked before anything is opened or built:
 * each wrong one is EINVAL naming it and what it takes (TypeScript's types say as much).
 */
function checkBootOptions(opts: BootOptions): void {
  if (typeof opts !== 'object' || opts === null) throw new ApplianceError('EINVAL', "boot() takes an object of options, e.g. { disks: ['disk.img'] }");
  const oneOf = (name: string, value: unknown, choices: readonly string[]) => {
    if (value !== undefined && !choices.includes(value as string))
      throw new ApplianceError('EINVAL', `${name} ${JSON.stringify(value)}: give one of ${choices.map((c) => `'${c}'`).join(', ')}`);
  };
  oneOf('accel', opts.accel, ACCEL_CHOICES);
  oneOf('machine', opts.machine, MACHINE_CHOICES);
  checkNumber('memoryMb', opts.memoryMb, ...BOOT_LIMITS.memoryMb);
  checkNumber('cpus', opts.cpus, ...BOOT_LIMITS.cpus);
  checkNumber('bootTimeoutMs', opts.bootTimeoutMs, ...BOOT_LIMITS.deadlineMs, false);
}

/** The caller's signal and timeoutMs as one signal (undefined when neither is given); EINVAL naming either given wrong. */
export function callSignal(opts: Pick<BootOptions, 'signal' | 'timeoutMs'>): AbortSignal | undefined {
  // setTimeout's longest delay: AbortSignal.timeout throws a RangeError past it.
  checkNumber('timeoutMs', opts.timeoutMs, 1, 2 ** 31 - 1, false);
  if (opts.signal !== undefined && !(opts.signal instanceof AbortSignal))
    throw new ApplianceError('EINVAL', "signal: give an AbortSignal (an AbortController's .signal)");
  const signals = [opts.signal, opts.timeoutMs !== undefined ? AbortSignal.timeout(opts.timeoutMs) : undefined].filter(
    (x): x is AbortSignal => x !== undefined,
  );
  return signals.length > 1 ? AbortSignal.any(signals) : signals[0];
}
