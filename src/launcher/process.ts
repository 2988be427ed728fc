import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { executableSearchPath, findExecutable } from '../host/which.js';

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One running qemu, its serial console read line by line. */
export interface QemuProcess {
  pid: number;
  /** Resolves at the first byte on the serial console: the guest is running. */
  firstOutput: Promise<void>;
  /** Resolves when qemu has exited and its output is read; never rejects. */
  exited: Promise<ExitStatus>;
  /** The last console lines (the unfinished one included), for error reports. */
  consoleTail(): string[];
  /** The kernel's last line on its way down (a panic's reason, a restart…), however long its trace was. */
  lastWords(): string | undefined;
  /** The end of qemu's own stderr (its error messages). */
  stderrTail(): string;
  /** SIGKILL (an appliance has nothing to flush on the host side) and wait for the exit. */
  kill(): Promise<ExitStatus>;
  /** SIGTERM, on which qemu stops the guest, flushes and closes its disks and exits; wait for the exit. */
  stop(): Promise<ExitStatus>;
  /** Types on the serial console (the init reads its go line there, see snapshot.ts). */
  writeConsole(text: string): void;
}

export interface SpawnQemuOptions {
  /** Each complete console line, without its end of line. */
  onConsole?: (line: string) => void;
  /** How many console lines consoleTail keeps (default 40). */
  tailLines?: number;
  /** Open files qemu inherits as its fds 3, 4, …; undefined leaves that number unused. */
  fds?: (number | undefined)[];
}

const STDERR_KEEP = 4096;

let setprivPath: string | undefined | null = null;

/**
 * setpriv, when it has --pdeathsig (util-linux 2.33 and later); looked up once. The option
 * is known by its name in the program's usage text: reading the ~50 KB binary costs well
 * under a millisecond, running `setpriv --help` ~15 ms on every boot.
 */
function pdeathsigTool(): string | undefined {
  if (setprivPath === null) {
    const found = findExecutable('setpriv', executableSearchPath());
    setprivPath = found && readFileSync(found).includes('--pdeathsig') ? found : undefined;
  }
  return setprivPath;
}

/** Every qemu this process started and that still runs: killed when Node exits normally. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** How long the console's pipes may stay open after qemu's exit before they are cut. */
const CLOSE_GRACE_MS = 1000;

/**
 * SIGKILL to qemu's whole process group: a `--qemu` wrapper that runs qemu as its child
 * instead of exec'ing it would otherwise die alone, leaving qemu running and holding the
 * console's pipes open (so its exit would never be seen to complete).
 */
function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    child.kill(signal); // no group left (or never made): the process alone, if it still runs
  }
}

/**
 * Once what we started has exited, whatever it left in its group goes too, and pipes that
 * something outside the group still holds are cut after a grace, so that 'close' comes.
 */
function endGroupWith(child: ChildProcess): void {
  child.once('exit', () => {
    killGroup(child);
    const cut = setTimeout(() => {
      for (const s of [child.stdin, child.stdout, child.stderr]) s?.destroy();
    }, CLOSE_GRACE_MS);
    cut.unref();
    child.once('close', () => clearTimeout(cut));
  });
}

/**
 * Starts qemu so that it never outlives this process. Through setpriv (util-linux) it
 * gets PR_SET_PDEATHSIG=SIGKILL, so the kernel kills it when Node dies in any way,
 * SIGKILL included; the death signal follows the thread that spawned it, which is the
 * main thread for child_process (do not launch from a worker thread that may end first),
 * and reaches qemu itself only if a wrapper execs it. An 'exit' hook covers normal exits,
 * and hosts without setpriv. qemu gets its own process group, so a Ctrl-C in the terminal
 * reaches Node, which decides what to do with the guest; kills go to that whole group.
 */
export function spawnQemu(qemu: string, argv: string[], opts: SpawnQemuOptions = {}): QemuProcess {
  const setpriv = pdeathsigTool();
  const [file, args] = setpriv ? [setpriv, ['--pdeathsig', 'SIGKILL', '--', qemu, ...argv]] : [qemu, argv];
  const stdio: ('pipe' | 'ignore' | number)[] = ['pipe', 'pipe', 'pipe', ...(opts.fds ?? []).map((fd) => fd ?? 'ignore')];
  const child = spawn(file, args, { stdio, detached: true });
  child.stdin!.on('error', () => {}); // qemu gone: its exit is reported elsewhere
  endGroupWith(child);
  running.add(child);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of running) killGroup(c);
    });
  }

  const serial = consoleLines(opts.tailLines ?? 40, opts.onConsole);
  let stderr = '';
  let seen: () => void = () => {};
  const firstOutput = new Promise<void>((resolve) => (seen = resolve));
  child.stdout!.on('data', (chunk: Buffer) => {
    seen();
    serial.write(chunk);
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_KEEP);
  });

  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('error', (err) => {
      stderr += `cannot run ${file}: ${err.message}`;
      running.delete(child);
      resolve({ code: null, signal: null });
    });
    child.once('close', (code, signal) => {
      running.delete(child);
      serial.end();
      resolve({ code, signal });
    });
  });

  const end = (signal: NodeJS.Signals): Promise<ExitStatus> => {
    if (child.exitCode === null && child.signalCode === null) killGroup(child, signal);
    return exited;
  };

  return {
    pid: child.pid ?? -1,
    firstOutput,
    exited,
    consoleTail: serial.tail,
    lastWords: serial.lastWords,
    stderrTail: () => stderr.trim(),
    kill: () => end('SIGKILL'),
    stop: () => end('SIGTERM'),
    writeConsole: (text) => void child.stdin!.write(text),
  };
}

/** The kernel's lines on the way down: a panic's reason, a sysrq's action, a restart or power-off. */
const LAST_WORDS = /Kernel panic - not syncing|sysrq: (Resetting|Power Off)|reboot: /;
const TIMESTAMP = /^\[[\s\d.]+\]\s*/;

/** The longest console line passed on whole: a guest may print megabytes without a newline. */
export const CONSOLE_LINE_MAX = 1024;

/**
 * The serial console read as lines: each complete line to `onLine`, the last `keep` (and
 * the unfinished one) kept for reports. A line longer than CONSOLE_LINE_MAX goes on in
 * pieces of that length, so the work is linear in the output and the memory bounded.
 */
export function consoleLines(keep: number, onLine?: (line: string) => void) {
  const lines: string[] = [];
  let partial = '';
  const decoder = new StringDecoder('utf8');
  let lastWords: string | undefined;
  const emit = (line: string) => {
    if (LAST_WORDS.test(line)) lastWords = line.replace(TIMESTAMP, '');
    lines.push(line);
    if (lines.length > keep) lines.shift();
    onLine?.(line);
  };
  const onText = (text: string) => {
    for (let from = 0; from < text.length;) {
      const nl = text.indexOf('\n', from);
      const end = nl === -1 ? text.length : nl;
      while (partial.length + end - from > CONSOLE_LINE_MAX) {
        let cut = from + CONSOLE_LINE_MAX - partial.length;
        // A piece never ends between the two halves of a surrogate pair.
        if (cut > from && isHighSurrogate(text.charCodeAt(cut - 1))) cut--;
        emit(partial + text.slice(from, cut));
        partial = '';
        from = cut;
      }
      partial += text.slice(from, end);
      if (nl === -1) break;
      emit(partial.endsWith('\r') ? partial.slice(0, -1) : partial);
      partial = '';
      from = nl + 1;
    }
  };
  return {
    write: (chunk: Buffer) => onText(decoder.write(chunk)),
    end: () => onText(decoder.end()),
    tail: () => (partial ? [...lines, partial] : [...lines]),
    lastWords: () => lastWords,
  };
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}
