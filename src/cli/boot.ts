import type { Command } from 'commander';
import { constants as osConstants } from 'node:os';
import { ApplianceError, DiskRefusedError, type DiskWords } from '../errors.js';
import type { BootOptions, DiskSpec, Vm } from '../vm/index.js';
import { DISK_FORMAT_CHOICES, isDiskFormat } from '../disk-formats.js';
import { ACCEL_CHOICES, MACHINE_CHOICES } from '../vm/choices.js';
import { ACCEL_OPTION, action, CACHE_DIR_OPTION, stdoutGone, usageError } from './common.js';
import { EXIT } from './exit-status.js';

interface BootCliOptions {
  disk: string[];
  memory?: string;
  cpus?: string;
  accel: string;
  machine: string;
  timeout?: string;
  bootTimeout?: string;
  qemu?: string;
  stdin?: boolean;
  json?: boolean;
  verbose?: boolean;
  cacheDir?: string;
  snapshot: boolean;
}

/** Splits at single commas; ",," is a comma of the part. */
function splitOptions(spec: string): string[] {
  const parts = [''];
  for (let i = 0; i < spec.length; i++) {
    if (spec[i] !== ',') parts[parts.length - 1] += spec[i];
    else if (spec[i + 1] === ',') parts[parts.length - 1] += spec[i++];
    else parts.push('');
  }
  return parts;
}

/**
 * `PATH[,format=F][,rw][,backing]`: without a format, raw unless the header names another
 * (refused, see DiskSpec). A comma in PATH is written twice, as qemu's own options have it.
 */
export function parseDisk(spec: string): DiskSpec {
  const [path, ...opts] = splitOptions(spec);
  if (!path) throw usageError(`--disk "${spec}": write PATH[,format=F][,rw][,backing] (a comma in PATH twice)`);
  const disk: DiskSpec = { path };
  for (const opt of opts) {
    const [key, value] = opt.split('=', 2);
    if (key === 'format' && value && isDiskFormat(value)) disk.format = value;
    else if (key === 'rw' && value === undefined) disk.readonly = false;
    else if (key === 'backing' && value === undefined) disk.allowBackingFile = true;
    else throw usageError(`--disk "${spec}": unknown option "${opt}" (use format=${DISK_FORMAT_CHOICES.join('|')}, rw, backing)`);
  }
  return disk;
}

/** A refused disk's remedy in --disk's words. */
const DISK_WORDS: DiskWords = {
  format: (disk, format) => `--disk ${disk.replaceAll(',', ',,')},format=${format}`,
  backing: (disk) => `--disk ${disk.replaceAll(',', ',,')},backing`,
};

function positiveNumber(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw usageError(`${name} "${text}": give a positive number`);
  return n;
}

function positiveInteger(name: string, text: string | undefined): number | undefined {
  const n = positiveNumber(name, text);
  if (n !== undefined && !Number.isInteger(n)) throw usageError(`${name} "${text}": give a whole number`);
  return n;
}

function statusOf(r: { exitCode: number | null; signal: string | null }): number {
  if (r.exitCode !== null) return r.exitCode;
  const num = r.signal ? (osConstants.signals as Record<string, number | undefined>)[r.signal] : undefined;
  return 128 + (num ?? 0);
}

export function register(program: Command): void {
  program
    .command('boot')
    .description('Boot the appliance (built and cached on first use) and run a command in it; with no command and a terminal, a shell')
    .argument('[command...]', 'the command and its arguments (put them after --)')
    .option(
      '--disk <path[,format=F][,rw][,backing]>',
      "attach a disk image, read-only unless rw; without format=, raw (an image with another format's header is refused); backing allows the files its header names; a comma in the path written twice (repeatable)",
      (v, prev: string[]) => [...prev, v],
      [],
    )
    .option('--memory <MB>', 'guest memory in MiB (default 512)')
    .option('--cpus <N>', 'guest CPUs (default 1)')
    .option(...ACCEL_OPTION)
    .option('--machine <auto|microvm|q35|pc>', 'qemu machine (auto: the fastest that works)', 'auto')
    .option('--timeout <seconds>', `kill the command after this long (exit ${EXIT.timeout})`)
    .option('--boot-timeout <seconds>', 'give up on a boot that is not ready after this long (default 20)')
    .option('--qemu <path>', 'the qemu-system-x86_64 binary to use')
    .option('--no-snapshot', 'boot the kernel instead of resuming the saved snapshot of a booted one (nor save one)')
    .option('-i, --stdin', 'pass our standard input to the command')
    .option(...CACHE_DIR_OPTION)
    .option('--json', 'print {exitCode, signal, stdout, stderr, durationMs, boot} as JSON instead of streaming (up to 64 MiB of each)')
    .option('--verbose', 'show the guest console, each decision and a boot-time breakdown on stderr')
    .addHelpText(
      'after',
      `\nExit status: the command's own; 128+N when a signal N killed it; ${EXIT.timeout} when --timeout expired;\n` +
        `${EXIT.bootFailed} when the appliance could not be built or booted; 2 for a usage error.\n\n` +
        'Disks appear in the guest as /dev/disk/by-id/virtio-disk0, -disk1, … in the order given.\n\n' +
        'Example: appliance boot --disk disk.img -- sh -c "mount -o ro /dev/disk/by-id/virtio-disk0 /mnt && ls /mnt"',
    )
    .action(
      action(bootAction, {
        failure: EXIT.bootFailed,
        // The console's last lines stay on the error for library callers; --verbose shows them live.
        describe: (err, _command, opts) => {
          if (err instanceof DiskRefusedError) return err.inWords(DISK_WORDS);
          return 'consoleTail' in err && !opts.verbose ? `${err.summary} (--verbose shows the guest console)` : err.summary;
        },
      }),
    );
}

/** The library's boot options from the command line's. */
function bootOptions(opts: BootCliOptions, verbose: (line: string) => void): BootOptions {
  return {
    disks: opts.disk.map(parseDisk),
    memoryMb: positiveInteger('--memory', opts.memory),
    cpus: positiveInteger('--cpus', opts.cpus),
    accel: oneOf('--accel', opts.accel, ACCEL_CHOICES),
    machine: oneOf('--machine', opts.machine, MACHINE_CHOICES),
    bootTimeoutMs: secondsToMs(positiveNumber('--boot-timeout', opts.bootTimeout)),
    qemu: opts.qemu,
    cacheDir: opts.cacheDir,
    snapshot: opts.snapshot,
    log: opts.verbose ? verbose : undefined,
    onConsole: opts.verbose ? (line) => process.stderr.write(`console: ${line}\n`) : undefined,
  };
}

/** --verbose's line on where the boot's time went. */
function bootTimeLine(vm: Vm): string {
  const t = vm.timings;
  const guest =
    t.snapshot === 'none'
      ? `kernel ${t.kernelMs} ms, init+agent ${t.initMs} ms (guest clock)`
      : `snapshot ${t.snapshot === 'created' ? 'saved, then ' : ''}restored in ${t.restoreMs} ms, init+agent ${t.initMs} ms (guest clock)`;
  return `booted with ${vm.accel} on ${vm.machine} in ${t.readyMs} ms: appliance ${t.buildMs} ms, qemu start at ${t.qemuStartMs} ms, ${guest}`;
}

async function bootAction(command: string[], opts: BootCliOptions): Promise<number> {
  const verbose = (line: string) => process.stderr.write(`appliance: ${line}\n`);
  const bootOpts = bootOptions(opts, verbose);
  const timeoutMs = secondsToMs(positiveNumber('--timeout', opts.timeout));
  const { boot } = await import('../vm/vm.js');
  const vm = await boot(bootOpts);
  try {
    if (opts.verbose) verbose(bootTimeLine(vm));
    const interactive = command.length === 0 && Boolean(process.stdin.isTTY && process.stdout.isTTY);
    const argv = command.length ? command : ['sh'];
    return await run(vm, argv, {
      interactive,
      stdin: Boolean(opts.stdin) || (command.length === 0 && !interactive),
      timeoutMs,
      json: opts.json,
      verbose: opts.verbose ? verbose : undefined,
    });
  } catch (err) {
    if (err instanceof ApplianceError && err.code === 'ETIMEDOUT') {
      throw new ApplianceError('ETIMEDOUT', `the command did not finish within ${opts.timeout} s and was killed`);
    }
    if (err instanceof ApplianceError && err.code === 'ETOOBIG') {
      throw new ApplianceError('ETOOBIG', `${err.summary}: --json holds the output in memory; without --json it streams, whatever its size`);
    }
    throw err;
  } finally {
    await vm.close();
  }
}

export function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw usageError(`${name} "${value}": use one of ${allowed.join(', ')}`);
  return value as T;
}

function secondsToMs(s: number | undefined): number | undefined {
  return s === undefined ? undefined : Math.round(s * 1000);
}

interface RunOptions {
  interactive: boolean;
  stdin: boolean;
  timeoutMs?: number;
  json?: boolean;
  verbose?: (line: string) => void;
}

/** Runs one command: streamed to our stdout/stderr, or collected into JSON; returns our exit status. */
async function run(vm: Vm, argv: string[], o: RunOptions): Promise<number> {
  const input = o.stdin ? process.stdin : undefined;
  if (o.json) {
    const r = await vm.exec(argv, { input, timeoutMs: o.timeoutMs });
    const out = {
      exitCode: r.exitCode,
      signal: r.signal,
      stdout: r.stdout.toString('utf8'),
      stderr: r.stderr.toString('utf8'),
      durationMs: r.durationMs,
      boot: { accel: vm.accel, machine: vm.machine, ...vm.timings },
    };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return statusOf(r);
  }
  if (o.interactive) return interactiveShell(vm, argv);
  const s = vm.execStream(argv, { input, timeoutMs: o.timeoutMs });
  s.stdout.pipe(process.stdout, { end: false });
  s.stderr.pipe(process.stderr, { end: false });
  // Our reader went away (`| head -1`): the command gets the SIGPIPE it would get in a
  // pipeline, and its output is dropped, so that the channel does not wait for a reader.
  const onGone = () => {
    s.kill('SIGPIPE');
    s.stdout.resume();
  };
  if (stdoutGone.aborted) onGone();
  else stdoutGone.addEventListener('abort', onGone, { once: true });
  // A command may finish before our stdin ends (`head -1`): stop reading it, or the
  // open stdin would keep this process alive.
  const r = await s.result.finally(() => input?.destroy());
  o.verbose?.(`command finished in ${r.durationMs} ms with ${r.signal ?? `status ${r.exitCode}`}`);
  return statusOf(r);
}

/** A shell on a guest pseudo-terminal, our terminal in raw mode, window size passed on. */
async function interactiveShell(vm: Vm, argv: string[]): Promise<number> {
  const stdin = process.stdin;
  const size = () => ({ rows: process.stdout.rows || 24, cols: process.stdout.columns || 80 });
  const s = vm.execStream(argv, { input: stdin, pty: size() });
  const onResize = () => s.resize(size().rows, size().cols);
  process.stdout.on('resize', onResize);
  stdin.setRawMode(true);
  s.stdout.pipe(process.stdout, { end: false });
  try {
    return statusOf(await s.result);
  } finally {
    stdin.setRawMode(false);
    // The shell is gone; a pending read of the terminal would keep us alive.
    stdin.destroy();
    process.stdout.off('resize', onResize);
  }
}
