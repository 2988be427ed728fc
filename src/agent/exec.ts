/**
 * One command run by the agent (an EXEC request): its output to a sink, its stdin sent
 * within the agent's credit window, its timeout, abort and kill, and its result.
 */
import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import { ApplianceError } from '../errors.js';
import { FrameFlag, FrameType, MAX_PAYLOAD, STDIN_WINDOW } from '../guest/contract.js';
import { errnoCode, signalNames } from '../errno.js';
import type { Channel } from './channel.js';
import { AgentError, type ExecResult, type SpawnError } from './results.js';
import {
  decodeAck,
  decodeError,
  decodeExit,
  encodeExec,
  encodeFrame,
  encodeResize,
  encodeU32,
  protocolError,
  unexpectedFrame,
  type ExitStatus,
  type Frame,
} from './protocol.js';

export type Input = Uint8Array | string | NodeJS.ReadableStream;

export interface ExecOptions {
  /** The command's stdin; without it the command reads /dev/null. */
  input?: Input;
  /** Laid over the guest's base environment (PATH, HOME, TERM). */
  env?: Record<string, string>;
  cwd?: string;
  /** Kill the command (SIGKILL to its process group) and reject with ETIMEDOUT: 1 to 2^31-1 ms. */
  timeoutMs?: number;
  /** Kill the command and reject with EABORTED when this aborts. */
  signal?: AbortSignal;
  /** Run on a pseudo-terminal (all output comes on stdout), optionally of this size. */
  pty?: boolean | { rows: number; cols: number };
  /** How errors name the command (default: its argv, quoted): a caller's own words for what it runs. */
  label?: string;
  /**
   * exec() only: the most bytes of stdout, and of stderr, it keeps (default 64 MiB each;
   * Infinity for no limit). Past it the command is killed and exec() rejects with ETOOBIG,
   * the error's `result` holding what fit. execStream()'s output is bounded by its reader.
   */
  maxBuffer?: number;
}

/** exec()'s default maxBuffer: ample for what one collects in memory, far below what hurts a host. */
export const DEFAULT_MAX_BUFFER = 64 * 1024 * 1024;
/** setTimeout's longest delay (a longer one fires at once). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export interface ExecStream {
  stdout: Readable;
  stderr: Readable;
  result: Promise<ExecResult>;
  /** Sends a signal to the command's process group. */
  kill(signal?: NodeJS.Signals | number): void;
  /** New terminal size of a `pty` command. */
  resize(rows: number, cols: number): void;
}

/** Where a command's output goes: collected (exec) or streamed (execStream). */
export interface Sink {
  /** Takes a chunk of stdout; false once stdout is over `limit` (the command is then killed). */
  out(chunk: Buffer): boolean;
  err(chunk: Buffer): boolean;
  end(): void;
  collected(): { stdout: Buffer; stderr: Buffer };
  /** Bytes kept of each stream, when collected. */
  readonly limit?: number;
}

/** Grace after a SIGKILL for the EXIT to come back before giving up on it. */
const KILL_GRACE_MS = 5000;

function signalNumber(sig: NodeJS.Signals | number): number {
  if (typeof sig === 'number') return sig;
  const num = (osConstants.signals as Record<string, number | undefined>)[sig];
  if (num === undefined) throw new ApplianceError('EINVAL', `unknown signal ${sig}`);
  return num;
}

/** The input as chunks that each fit in one frame. */
export async function* frameChunks(input: Input): AsyncGenerator<Buffer> {
  const split = function* (b: Buffer) {
    for (let off = 0; off < b.length; off += MAX_PAYLOAD) yield b.subarray(off, off + MAX_PAYLOAD);
  };
  if (typeof input === 'string') yield* split(Buffer.from(input));
  else if (input instanceof Uint8Array) yield* split(Buffer.from(input.buffer, input.byteOffset, input.byteLength));
  else for await (const c of input as AsyncIterable<Buffer | string>) yield* split(typeof c === 'string' ? Buffer.from(c) : c);
}

function checkOptions(opts: ExecOptions): void {
  const { timeoutMs, maxBuffer } = opts;
  if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && timeoutMs >= 1 && timeoutMs <= MAX_TIMEOUT_MS)) {
    throw new ApplianceError('EINVAL', `timeoutMs must be from 1 to ${MAX_TIMEOUT_MS} ms, not ${timeoutMs}`);
  }
  if (maxBuffer !== undefined && !(typeof maxBuffer === 'number' && maxBuffer >= 1)) {
    throw new ApplianceError('EINVAL', `maxBuffer must be a positive number of bytes, not ${maxBuffer}`);
  }
}

function describe(argv: (string | Buffer)[]): string {
  // Not a list (JavaScript can pass one string): encodeExec refuses it, in words that need this.
  const text = Array.isArray(argv) ? argv.join(' ') : String(argv);
  return `"${text.length > 80 ? `${text.slice(0, 77)}...` : text}"`;
}

export class Exec {
  readonly result: Promise<ExecResult>;
  readonly id: number;
  private readonly what: string;
  private finished = false;
  private failure: AgentError | undefined;
  private spawnError: SpawnError | undefined;
  private inflight = 0;
  private creditWaiter: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private grace: NodeJS.Timeout | undefined;
  private settle!: { resolve: (r: ExecResult) => void; reject: (e: ApplianceError) => void };
  private readonly onAbort = () =>
    this.killFor(new AgentError('EABORTED', `${this.what} was aborted: killed it (SIGKILL)`, { cause: this.opts.signal?.reason }));

  /** Starts `argv` in the guest. Bad arguments or options (NUL bytes, too long) reject `result` before anything is sent. */
  constructor(
    private readonly channel: Channel,
    argv: (string | Buffer)[],
    private readonly opts: ExecOptions,
    private readonly sink: Sink,
  ) {
    this.id = channel.newId();
    this.what = opts.label ?? describe(argv);
    this.result = new Promise<ExecResult>((resolve, reject) => (this.settle = { resolve, reject }));
    const pty = opts.pty === true ? { rows: 0, cols: 0 } : opts.pty || undefined;
    let payload: Buffer;
    try {
      checkOptions(opts);
      payload = encodeExec({ argv, env: opts.env, cwd: opts.cwd, rows: pty?.rows, cols: pty?.cols });
    } catch (err) {
      this.refuse(err as ApplianceError);
      return;
    }
    if (opts.signal?.aborted) {
      this.refuse(new AgentError('EABORTED', `${this.what} was aborted before it started`, { cause: opts.signal.reason }));
      return;
    }
    this.start(payload, (opts.input !== undefined ? FrameFlag.STDIN : 0) | (pty ? FrameFlag.PTY : 0));
  }

  private start(payload: Buffer, flags: number): void {
    const { channel, opts } = this;
    channel.register(this.id, { onFrame: (f) => this.onFrame(f), onGone: () => this.finish(undefined, channel.goneError(`${this.what} did not finish`)) });
    opts.signal?.addEventListener('abort', this.onAbort, { once: true });
    if (opts.timeoutMs !== undefined) {
      this.timer = setTimeout(
        () => this.killFor(new AgentError('ETIMEDOUT', `${this.what} did not finish within ${opts.timeoutMs} ms: killed it (SIGKILL)`)),
        opts.timeoutMs,
      );
    }
    channel.send(encodeFrame(FrameType.EXEC, this.id, payload, flags)).then(
      () => (opts.input !== undefined ? this.pumpInput(opts.input) : undefined),
      () => {}, // a closed channel is reported by onGone
    );
    if (channel.gone) this.finish(undefined, channel.goneError(`${this.what} could not start`));
  }

  /** Ends before anything was sent. */
  private refuse(err: ApplianceError): void {
    this.finished = true;
    this.sink.end();
    this.settle.reject(err);
  }

  /** Sends a signal to the command's process group. */
  kill(sig: NodeJS.Signals | number = 'SIGTERM'): void {
    if (!this.finished) this.channel.sendNow(encodeFrame(FrameType.SIGNAL, this.id, encodeU32(signalNumber(sig))));
  }

  resize(rows: number, cols: number): void {
    if (!this.finished) this.channel.sendNow(encodeFrame(FrameType.RESIZE, this.id, encodeResize(rows, cols)));
  }

  private onFrame(f: Frame): void {
    switch (f.type) {
      case FrameType.STDOUT:
        if (!this.sink.out(f.payload)) this.overflow('stdout');
        break;
      case FrameType.STDERR:
        if (!this.sink.err(f.payload)) this.overflow('stderr');
        break;
      case FrameType.STDIN_ACK:
        this.acknowledged(decodeAck(f.payload, f.id));
        break;
      case FrameType.ERROR: {
        if (this.spawnError) throw unexpectedFrame(f, 'a command that has already said why it could not start');
        const { errno, message } = decodeError(f.payload, f.id);
        this.spawnError = { errno, code: errnoCode(errno), message };
        break;
      }
      case FrameType.EXIT:
        this.finish(decodeExit(f.payload, f.id));
        break;
      default:
        throw unexpectedFrame(f, 'a command');
    }
  }

  /** The agent is done with `count` bytes of stdin: room for more. */
  private acknowledged(count: number): void {
    if (count > this.inflight) throw protocolError(`STDIN_ACK for request ${this.id} acknowledges ${count} bytes, only ${this.inflight} in flight`);
    this.inflight -= count;
    const wake = this.creditWaiter;
    this.creditWaiter = undefined;
    wake?.();
  }

  private overflow(stream: 'stdout' | 'stderr'): void {
    this.killFor(new AgentError('ETOOBIG', `${this.what} wrote more than ${this.sink.limit} bytes to ${stream} (maxBuffer): killed it (SIGKILL)`));
  }

  /** Kills the command, then ends with `err` once it has exited (or after a grace period). */
  private killFor(err: AgentError): void {
    if (this.finished || this.failure) return;
    this.failure = err;
    this.kill('SIGKILL');
    // Its process group is gone now; if something outside it holds its output open, stop waiting.
    this.grace = setTimeout(() => this.finish(undefined), KILL_GRACE_MS);
  }

  private finish(status: ExitStatus | undefined, err?: AgentError): void {
    if (this.finished) return;
    this.finished = true;
    this.channel.unregister(this.id);
    clearTimeout(this.timer);
    clearTimeout(this.grace);
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    this.creditWaiter?.();
    this.sink.end();
    const res: ExecResult = {
      exitCode: status?.exitCode ?? null,
      signal: status?.signal ? (signalNames.get(status.signal) ?? `SIG${status.signal}`) : null,
      ...this.sink.collected(),
      durationMs: status?.durationMs ?? 0,
      ...(this.spawnError ? { spawnError: this.spawnError } : {}),
    };
    const error = err ?? this.failure;
    if (!error) return this.settle.resolve(res);
    error.result = res;
    this.settle.reject(error);
  }

  /** Sends stdin, never more than STDIN_WINDOW bytes ahead of what the agent acknowledged. */
  private async pumpInput(input: Input): Promise<void> {
    try {
      for await (const chunk of frameChunks(input)) {
        while (!this.finished && this.inflight + chunk.length > STDIN_WINDOW) {
          await new Promise<void>((resolve) => (this.creditWaiter = resolve));
        }
        if (this.finished) return;
        this.inflight += chunk.length;
        await this.channel.send(encodeFrame(FrameType.STDIN, this.id, chunk));
      }
      if (!this.finished) await this.channel.send(encodeFrame(FrameType.STDIN, this.id));
    } catch (err) {
      // A closed channel is reported by onGone; anything else is the input's fault.
      if (!this.finished && !this.channel.gone) {
        this.killFor(new AgentError('EINPUT', `reading the input of ${this.what} failed: ${(err as Error)?.message ?? err}`, { cause: err }));
      }
    }
  }
}
