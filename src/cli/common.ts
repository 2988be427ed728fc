import type { Command, CommanderError } from 'commander';
import { ApplianceError, ImageFileError } from '../errors.js';
import { escapeControls } from '../printable.js';
import { EXIT, exitStatus } from './exit-status.js';

export interface ActionOptions<A extends unknown[]> {
  /** The exit status of failures the table does not name (default 1; `boot` says 125). */
  failure?: number;
  /** The line to print for an error (default: its summary), given the action's arguments. */
  describe?: (err: ApplianceError, ...args: A) => string;
}

/**
 * Wraps a command's action: an ApplianceError becomes one line on stderr and the exit
 * status of its code; anything else (a bug) keeps its stack so it can be reported.
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void>, opts: ActionOptions<A> = {}) {
  return async (...args: A): Promise<void> => {
    try {
      const code = await fn(...args);
      // A reader gone meanwhile (watchStdout) decides the status: what we said it did not read.
      if (typeof code === 'number' && !brokenPipe.signal.aborted) process.exitCode = code;
    } catch (err) {
      if (brokenPipe.signal.aborted || (err as NodeJS.ErrnoException | undefined)?.code === 'EPIPE') {
        // The reader of our stdout went away (`… | head`): what failed after is its doing.
        process.exitCode = EXIT.brokenPipe;
        brokenPipe.abort();
      } else if (err instanceof ApplianceError) {
        const verbose = args.some((a) => typeof a === 'object' && a !== null && (a as { verbose?: unknown }).verbose === true);
        process.exitCode = report(err, verbose, opts.describe?.(err, ...args), opts.failure);
      } else {
        process.stderr.write(`appliance: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
        process.exitCode = EXIT.internal;
      }
    }
  };
}

/**
 * Says an error on stderr, as a command's last word or as one of several (a path of many
 * that could not be read): its line, and the exit status it gives. --verbose: the whole
 * message (a mount's kernel log, say); else its first line, bounded.
 */
export function report(err: ApplianceError, verbose: boolean, line = verbose ? err.message : err.summary, failure: number = EXIT.failure): number {
  // What an image or a guest wrote may be in it (a label, a header's file name): control characters escaped, line by line.
  process.stderr.write(`${verbose ? `appliance: ${line.split('\n').map(escapeControls).join('\n')}` : bounded(`appliance: ${line}`)}\n`);
  return exitStatus(err, failure);
}

/**
 * One of several paths of a command: `work`, or its error said (report) when it is about
 * that path alone (a file of the image missing or unreadable), so that the others go on;
 * its exit status then, 0 when it went well. Anything else (no such filesystem, a guest
 * gone, a reader of stdout gone) ends the command as ever.
 */
export async function eachPath(verbose: boolean, work: () => Promise<void>): Promise<number> {
  try {
    await work();
    return 0;
  } catch (err) {
    if (!(err instanceof ImageFileError) || brokenPipe.signal.aborted) throw err;
    return report(err, verbose);
  }
}

/** Longest problem line printed; what comes from a guest (a kernel's log, a path 4 KB deep) can be any length. --verbose says it all. */
const LINE_MAX = 300;
/**
 * A problem's line, at most LINE_MAX characters: its long words (paths, which an image makes
 * any length) cut in their middle, longest first, so that the image and the reason around
 * them stay whole; the line's own middle only when that is not enough.
 */
export function bounded(line: string): string {
  // A path or a label of the image in it may hold control characters: escaped, so it stays one line and prints as text.
  const words = escapeControls(line).split(' ');
  const length = () => words.reduce((n, w) => n + w.length, words.length - 1);
  while (length() > LINE_MAX) {
    const i = words.reduce((best, w, j) => (w.length > words[best]!.length ? j : best), 0);
    const w = words[i]!;
    const keep = Math.max(WORD_KEPT, w.length - (length() - LINE_MAX) - 1);
    if (keep >= w.length - 1) break;
    words[i] = `${w.slice(0, Math.ceil(keep / 2))}…${w.slice(w.length - Math.floor(keep / 2))}`;
  }
  const out = words.join(' ');
  return out.length > LINE_MAX ? `${out.slice(0, 120)} … ${out.slice(out.length - (LINE_MAX - 123))}` : out;
}
/** The least of a long word that bounded() keeps: its two ends. */
const WORD_KEPT = 24;

/** A mistake in the command line: one line on stderr and exit status 2. */
export function usageError(message: string): ApplianceError {
  return new ApplianceError('EUSAGE', message);
}

/**
 * Mistakes commander finds itself (an unknown option or command, a missing value) get
 * the same treatment as ours: one line, a pointer to --help, exit status 2. Applied to
 * every command once all are registered, so each names its own --help.
 */
export function oneLineUsageErrors(program: Command): void {
  const visit = (cmd: Command, path: string) => {
    cmd.exitOverride();
    cmd.configureOutput({
      outputError: (text, write) =>
        write(
          `appliance: ${text
            .trim()
            .replace(/^error: /, '')
            .replace(/\s*\n\s*/g, ' ')} (see ${path} --help)\n`,
        ),
    });
    for (const sub of cmd.commands) visit(sub, `${path} ${sub.name()}`);
  };
  visit(program, program.name());
}

/** Runs the program; commander's own exits (help, version, usage errors) become exit statuses. */
export async function run(program: Command, argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (err) {
    // commander's own exits (with exitOverride) throw a CommanderError; a value import of
    // commander here would cost start-up time for nothing, so it is known by its code.
    const code = (err as Partial<CommanderError>).code;
    if (typeof code !== 'string' || !code.startsWith('commander.')) throw err;
    process.exitCode = (err as CommanderError).exitCode === 0 ? 0 : EXIT.usage;
  }
}

const brokenPipe = new AbortController();
/** Aborts when the reader of our stdout has gone away (see watchStdout). */
export const stdoutGone: AbortSignal = brokenPipe.signal;

/**
 * A reader that stops early (`appliance cache ls | head -1`) closes our stdout: the next
 * write fails with EPIPE, which Node throws from an event handler. The CLI stops writing
 * instead and exits as a program killed by SIGPIPE does in a pipeline (128 + 13).
 */
export function watchStdout(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exitCode = EXIT.brokenPipe;
    brokenPipe.abort();
  });
}

/** Progress goes to stderr only when a person is watching it. */
export function progressEnabled(): boolean {
  return Boolean(process.stderr.isTTY);
}

/** --cache-dir, as every command that uses the cache takes it. */
export const CACHE_DIR_OPTION = ['--cache-dir <dir>', 'cache folder (default: $APPLIANCE_CACHE_DIR, $XDG_CACHE_HOME/appliance or ~/.cache/appliance)'] as const;

/** --accel, as boot and prepare take it. */
export const ACCEL_OPTION = ['--accel <auto|kvm|tcg>', 'accelerator: auto tries KVM with a watchdog, falls back to TCG and remembers', 'auto'] as const;
