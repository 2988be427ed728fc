/**
 * One command run by the agent (an EXEC request): its output to a sink, its stdin sent
 * within the agent's credit window, its timeout, abort and kill, and its result.
 */
import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import { ApplianceError } from '../errors.js';
import { FrameFlag, FrameType, MAX_PAYLOAD, STDIN_WINDOW } from './contract.js';
import { errnoCode, signalNames, type Channel } from './channel.js';
import { AgentError, type ExecResult, type SpawnError } from './results.js';
import { decodeError, decodeExit, encodeExec, encodeFrame, encodeResize, encodeU32, type ExitStatus, type Frame } from './protocol.js';

export type Input = Uint8Array | string | NodeJS.ReadableStream;

export interface ExecOptions {
  /** The command's stdin; without it the command reads /dev/null. */
  input?: Input;
  /** Laid over the guest's base environment (PATH, HOME, TERM). */
  env?: Record<string, string>;
  cwd?: string;
  /** Kill the command (SIGKILL to its process group) and reject with ETIMEDOUT. */
  timeoutMs?: number;
  /** Kill the command and reject with EABORTED when this aborts. */
  signal?: AbortSignal;
  /** Run on a pseudo-terminal (all output comes on stdout), optionally of this size. */
  pty?: boolean | { rows: number; cols: number };
}

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
  out(chunk: Buffer): void;
  err(chunk: Buffer): void;
  end(): void;
  collected(): { stdout: Buffer; stderr: Buffer };
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

function describe(argv: string[]): string {
  const text = argv.join(' ');
  return `"${text.length > 80 ? `${text.slice(0, 77)}...` : text}"`;
}

export class Exec {
  readonly result: Promise<ExecResult>;
  private readonly id: number;
  private readonly what: string;
  private finished = false;
  private failure: AgentError | undefined;
  private spawnError: SpawnError | undefined;
  private inflight = 0;
  private creditWaiter: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private grace: NodeJS.Timeout | undefined;
  private settle!: { resolve: (r: ExecResult) => void; reject: (e: AgentError) => void };
  private readonly onAbort = () =>
    this.killFor(new AgentError('EABORTED', `${this.what} was aborted: killed it (SIGKILL)`, { cause: this.opts.signal?.reason }));

  /** Starts `argv` in the guest. Bad arguments (NUL bytes, too long) throw before anything is sent. */
  constructor(
    private readonly channel: Channel,
    argv: string[],
    private readonly opts: ExecOptions,
    private readonly sink: Sink,
  ) {
    this.id = channel.newId();
    this.what = describe(argv);
    const pty = opts.pty === true ? { rows: 0, cols: 0 } : opts.pty || undefined;
    const payload = encodeExec({ argv, env: opts.env, cwd: opts.cwd, rows: pty?.rows, cols: pty?.cols });
    this.result = new Promise<ExecResult>((resolve, reject) => (this.settle = { resolve, reject }));
    if (opts.signal?.aborted) {
      this.finished = true;
      this.settle.reject(new AgentError('EABORTED', `${this.what} was aborted before it started`, { cause: opts.signal.reason }));
      return;
    }
    channel.register(this.id, { onFrame: (f) => this.onFrame(f), onGone: (reason, cause) => this.finish(undefined, new AgentError('EAGENTGONE', `${this.what} did not finish: ${reason}`, { cause })) });
    opts.signal?.addEventListener('abort', this.onAbort, { once: true });
    if (opts.timeoutMs !== undefined) {
      this.timer = setTimeout(
        () => this.killFor(new AgentError('ETIMEDOUT', `${this.what} did not finish within ${opts.timeoutMs} ms: killed it (SIGKILL)`)),
        opts.timeoutMs,
      );
    }
    const flags = (opts.input !== undefined ? FrameFlag.STDIN : 0) | (pty ? FrameFlag.PTY : 0);
    channel.send(encodeFrame(FrameType.EXEC, this.id, payload, flags)).then(
      () => (opts.input !== undefined ? this.pumpInput(opts.input) : undefined),
      () => {}, // a closed channel is reported by onGone
    );
    if (channel.gone) this.finish(undefined, channel.goneError(`${this.what} could not start`));
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
        this.sink.out(f.payload);
        break;
      case FrameType.STDERR:
        this.sink.err(f.payload);
        break;
      case FrameType.STDIN_ACK: {
        this.inflight -= f.payload.readUInt32LE(0);
        const wake = this.creditWaiter;
        this.creditWaiter = undefined;
        wake?.();
        break;
      }
      case FrameType.ERROR: {
        const { errno, message } = decodeError(f.payload);
        this.spawnError = { errno, code: errnoCode(errno), message };
        break;
      }
      case FrameType.EXIT:
        this.finish(decodeExit(f.payload));
        break;
    }
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
