/**
 * Host side of the guest channel: runs commands in the guest through its agent, moves
 * files in and out, powers it off. One socket carries any number of requests at once,
 * told apart by request id (see src/init-c/protocol.h for the frames).
 */
import type { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { Readable } from 'node:stream';
import { ApplianceError } from '../errors.js';
import {
  decodeError,
  decodeExit,
  decodeHello,
  encodeExec,
  encodeFrame,
  encodeReadFile,
  encodeResize,
  encodeU32,
  encodeWriteFile,
  FrameFlag,
  type Frame,
  FrameDecoder,
  type Hello,
  type ExitStatus,
  MAX_PAYLOAD,
  PROTOCOL_VERSION,
  STDIN_WINDOW,
  FrameType,
} from './protocol.js';

export type { Hello } from './protocol.js';

/** Why a command could not start (it then has exit code 127 or 126, as in a shell). */
export interface SpawnError {
  errno: number;
  /** The errno's name, e.g. ENOENT. */
  code: string;
  message: string;
}

export interface ExecResult {
  exitCode: number | null;
  /** Name of the signal that killed the command (e.g. SIGKILL), else null. */
  signal: string | null;
  /** Empty for execStream, whose output went to the streams. */
  stdout: Buffer;
  stderr: Buffer;
  durationMs: number;
  spawnError?: SpawnError;
}

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

/** Errors of the guest channel. `code`: EAGENTGONE, ETIMEDOUT, EABORTED, EINPUT, EPROTO, or a guest errno name. */
export class AgentError extends ApplianceError {
  /** The guest's errno, for file errors. */
  readonly errno?: number;
  /** What a command that timed out, was aborted or lost its agent had done so far. */
  result?: ExecResult;
  constructor(code: string, message: string, extra: { errno?: number; cause?: unknown } = {}) {
    super(code, message, { cause: extra.cause });
    this.errno = extra.errno;
  }
}

/** Grace after a SIGKILL for the EXIT to come back before giving up on it. */
const KILL_GRACE_MS = 5000;

function reverse(table: Record<string, number>): Map<number, string> {
  const map = new Map<number, string>();
  // First name wins: SIGABRT before its alias SIGIOT.
  for (const [name, num] of Object.entries(table)) if (!map.has(num)) map.set(num, name);
  return map;
}
const signalNames = reverse(osConstants.signals as Record<string, number>);
const errnoNames = reverse(osConstants.errno as Record<string, number>);

function signalNumber(sig: NodeJS.Signals | number): number {
  if (typeof sig === 'number') return sig;
  const num = (osConstants.signals as Record<string, number | undefined>)[sig];
  if (num === undefined) throw new ApplianceError('EINVAL', `unknown signal ${sig}`);
  return num;
}

/** The input as chunks that each fit in one frame. */
async function* frameChunks(input: Input): AsyncGenerator<Buffer> {
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

interface Pending {
  onFrame(frame: Frame): void;
  /** The channel closed: `reason` says how. */
  onGone(reason: string, cause?: unknown): void;
}

interface Sink {
  out(chunk: Buffer): void;
  err(chunk: Buffer): void;
  end(): void;
  collected(): { stdout: Buffer; stderr: Buffer };
}

export class AgentClient {
  /** The agent's greeting: protocol version and guest boot times. */
  hello!: Hello;
  /** Settles when the channel has closed. */
  readonly closed: Promise<void>;
  private readonly socket: Socket;
  private readonly requests = new Map<number, Pending>();
  private nextId = 1;
  private gone: string | undefined;
  private goneCause: unknown;
  private closing = false;
  private poweringOff = false;
  private drained: Promise<void> | undefined;
  /** Streams whose reader is behind: the socket stays paused while there are any. */
  private readonly fullStreams = new Set<Readable>();

  private constructor(socket: Socket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  /** Waits for the agent's HELLO on a connected socket. */
  static connect(socket: Socket): Promise<AgentClient> {
    const client = new AgentClient(socket);
    return new Promise((resolve, reject) => {
      const decoder = new FrameDecoder();
      let ready = false;
      socket.on('data', (chunk: Buffer) => {
        let frames: Frame[];
        try {
          frames = decoder.push(chunk);
        } catch (err) {
          socket.destroy(err as Error);
          return;
        }
        for (const f of frames) {
          if (ready) {
            client.requests.get(f.id)?.onFrame(f);
          } else if (f.type === FrameType.HELLO) {
            try {
              client.hello = decodeHello(f.payload);
            } catch (err) {
              socket.destroy(err as Error);
              return;
            }
            if (client.hello.version !== PROTOCOL_VERSION) {
              socket.destroy(
                new ApplianceError(
                  'EPROTO',
                  `the guest agent speaks protocol version ${client.hello.version}, this host speaks ` +
                    `${PROTOCOL_VERSION}: rebuild the appliance so its agent matches`,
                ),
              );
              return;
            }
            ready = true;
            resolve(client);
          }
        }
      });
      socket.on('error', (err) => {
        client.goneCause ??= err;
      });
      socket.once('close', () => {
        const cause = client.goneCause;
        client.gone = client.closing
          ? 'the channel was closed on the host'
          : client.poweringOff
            ? 'the guest was powered off'
            : `the guest channel closed${cause ? ` (${(cause as Error).message})` : ''}: did the VM crash or power off? Its console log tells`;
        if (!ready) {
          reject(new AgentError('EAGENTGONE', `the guest agent did not say hello: ${client.gone}`, { cause }));
        }
        for (const [, p] of client.requests) p.onGone(client.gone, cause);
        client.requests.clear();
      });
    });
  }

  /** Runs a command to completion and returns its whole output. */
  exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    return this.start(argv, opts, {
      out: (c) => stdout.push(c),
      err: (c) => stderr.push(c),
      end: () => {},
      collected: () => ({ stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr) }),
    }).result;
  }

  /**
   * Runs a command with its output streamed as it comes. Read both streams: while one
   * is full the whole channel pauses, so the guest stops too (no output is lost).
   */
  execStream(argv: string[], opts: ExecOptions = {}): ExecStream {
    const stdout = this.readable();
    const stderr = this.readable();
    const run = this.start(argv, opts, {
      out: (c) => this.pushTo(stdout, c),
      err: (c) => this.pushTo(stderr, c),
      end: () => {
        stdout.push(null);
        stderr.push(null);
      },
      collected: () => ({ stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) }),
    });
    return { stdout, stderr, ...run };
  }

  /** Writes a guest file (created or truncated) with `mode`, streaming the data. */
  async writeFile(guestPath: string, data: Input, mode = 0o644): Promise<void> {
    const id = this.newId();
    let settled = false;
    const done = new Promise<void>((resolve, reject) => {
      this.requests.set(id, {
        onFrame: (f) => {
          if (f.type !== FrameType.OK && f.type !== FrameType.ERROR) return;
          settled = true;
          this.requests.delete(id);
          if (f.type === FrameType.OK) resolve();
          else reject(this.guestError(f.payload));
        },
        onGone: (reason, cause) => {
          settled = true;
          reject(new AgentError('EAGENTGONE', `writing guest file ${guestPath} failed: ${reason}`, { cause }));
        },
      });
    });
    done.catch(() => {}); // awaited below; this only keeps an early failure from being "unhandled"
    let inputError: unknown;
    try {
      await this.send(encodeFrame(FrameType.WRITE_FILE, id, encodeWriteFile(guestPath, mode)));
      for await (const chunk of frameChunks(data)) {
        if (settled) break;
        await this.send(encodeFrame(FrameType.DATA, id, chunk));
      }
      if (!settled) await this.send(encodeFrame(FrameType.DATA, id));
    } catch (err) {
      if (err instanceof AgentError) throw err;
      inputError = err;
      if (!settled) await this.send(encodeFrame(FrameType.DATA, id, undefined, FrameFlag.ABORT)).catch(() => {});
    }
    if (inputError !== undefined) {
      await done.catch(() => {});
      throw new AgentError(
        'EINPUT',
        `reading the data for guest file ${guestPath} failed: ${(inputError as Error)?.message ?? inputError}`,
        { cause: inputError },
      );
    }
    await done;
  }

  /** A guest file's content as a stream; errors (ENOENT, EISDIR, ...) come as AgentError. */
  readFileStream(guestPath: string): Readable {
    const id = this.newId();
    const stream = this.readable();
    this.requests.set(id, {
      onFrame: (f) => {
        if (f.type === FrameType.DATA && f.payload.length > 0) {
          this.pushTo(stream, f.payload);
        } else if (f.type === FrameType.DATA) {
          this.requests.delete(id);
          stream.push(null);
        } else if (f.type === FrameType.ERROR) {
          this.requests.delete(id);
          stream.destroy(this.guestError(f.payload));
        }
      },
      onGone: (reason, cause) =>
        stream.destroy(new AgentError('EAGENTGONE', `reading guest file ${guestPath} failed: ${reason}`, { cause })),
    });
    this.send(encodeFrame(FrameType.READ_FILE, id, encodeReadFile(guestPath))).catch((err: unknown) => {
      this.requests.delete(id);
      stream.destroy(err as Error);
    });
    return stream;
  }

  async readFile(guestPath: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of this.readFileStream(guestPath)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  /** Asks the guest to power off; resolves once the agent has acknowledged (or is gone). */
  async poweroff(): Promise<void> {
    if (this.gone) return;
    this.poweringOff = true;
    const id = this.newId();
    await new Promise<void>((resolve) => {
      this.requests.set(id, {
        onFrame: (f) => {
          if (f.type === FrameType.OK) resolve();
        },
        onGone: () => resolve(),
      });
      this.send(encodeFrame(FrameType.POWEROFF, id)).catch(() => resolve());
    });
  }

  /** Closes the channel; the agent then powers the guest off. Pending requests fail with EAGENTGONE. */
  close(): void {
    this.closing = true;
    this.socket.destroy();
  }

  private newId(): number {
    const id = this.nextId;
    this.nextId = id >= 0xffffffff ? 1 : id + 1;
    return id;
  }

  private goneError(what: string): AgentError {
    return new AgentError('EAGENTGONE', `${what}: ${this.gone}`, { cause: this.goneCause });
  }

  /** Writes a frame, waiting while the socket's buffer is full. */
  private async send(frame: Buffer): Promise<void> {
    if (this.gone) throw this.goneError('cannot send to the guest agent');
    if (this.socket.write(frame)) return;
    this.drained ??= new Promise<void>((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        this.drained = undefined;
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
    await this.drained;
    if (this.gone) throw this.goneError('cannot send to the guest agent');
  }

  private guestError(payload: Buffer): AgentError {
    const { errno, message } = decodeError(payload);
    return new AgentError(errnoNames.get(errno) ?? 'EGUEST', `in the guest: ${message}`, { errno });
  }

  private readable(): Readable {
    const stream: Readable = new Readable({ read: () => this.unblock(stream) });
    stream.once('close', () => this.unblock(stream));
    return stream;
  }

  private pushTo(stream: Readable, chunk: Buffer): void {
    if (stream.destroyed) return;
    if (!stream.push(chunk)) {
      this.fullStreams.add(stream);
      this.socket.pause();
    }
  }

  private unblock(stream: Readable): void {
    if (this.fullStreams.delete(stream) && this.fullStreams.size === 0) this.socket.resume();
  }

  private start(argv: string[], opts: ExecOptions, sink: Sink): Omit<ExecStream, 'stdout' | 'stderr'> {
    const id = this.newId();
    const what = describe(argv);
    const pty = opts.pty === true ? { rows: 0, cols: 0 } : opts.pty || undefined;
    const payload = encodeExec({ argv, env: opts.env, cwd: opts.cwd, rows: pty?.rows, cols: pty?.cols });
    let finished = false;
    let failure: AgentError | undefined;
    let spawnError: SpawnError | undefined;
    let inflight = 0;
    let creditWaiter: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    let grace: NodeJS.Timeout | undefined;

    const kill = (sig: NodeJS.Signals | number = 'SIGTERM') => {
      if (!finished && !this.gone) this.socket.write(encodeFrame(FrameType.SIGNAL, id, encodeU32(signalNumber(sig))));
    };
    const killFor = (err: AgentError) => {
      if (finished || failure) return;
      failure = err;
      kill('SIGKILL');
      // Its process group is gone now; if something outside it holds its output open, stop waiting.
      grace = setTimeout(() => finish(undefined), KILL_GRACE_MS);
    };

    let finish: (status: ExitStatus | undefined, err?: AgentError) => void = () => {};
    const result = new Promise<ExecResult>((resolve, reject) => {
      finish = (status, err) => {
        if (finished) return;
        finished = true;
        this.requests.delete(id);
        clearTimeout(timer);
        clearTimeout(grace);
        opts.signal?.removeEventListener('abort', onAbort);
        creditWaiter?.();
        sink.end();
        const res: ExecResult = {
          exitCode: status?.exitCode ?? null,
          signal: status?.signal ? (signalNames.get(status.signal) ?? `SIG${status.signal}`) : null,
          ...sink.collected(),
          durationMs: status?.durationMs ?? 0,
          ...(spawnError ? { spawnError } : {}),
        };
        const error = err ?? failure;
        if (error) {
          error.result = res;
          reject(error);
        } else {
          resolve(res);
        }
      };
    });
    const onAbort = () =>
      killFor(new AgentError('EABORTED', `${what} was aborted: killed it (SIGKILL)`, { cause: opts.signal?.reason }));

    this.requests.set(id, {
      onFrame: (f) => {
        switch (f.type) {
          case FrameType.STDOUT:
            sink.out(f.payload);
            break;
          case FrameType.STDERR:
            sink.err(f.payload);
            break;
          case FrameType.STDIN_ACK: {
            inflight -= f.payload.readUInt32LE(0);
            const wake = creditWaiter;
            creditWaiter = undefined;
            wake?.();
            break;
          }
          case FrameType.ERROR: {
            const { errno, message } = decodeError(f.payload);
            spawnError = { errno, code: errnoNames.get(errno) ?? 'EGUEST', message };
            break;
          }
          case FrameType.EXIT:
            finish(decodeExit(f.payload));
            break;
        }
      },
      onGone: (reason, cause) =>
        finish(undefined, new AgentError('EAGENTGONE', `${what} did not finish: ${reason}`, { cause })),
    });

    if (opts.signal?.aborted) {
      this.requests.delete(id);
      finished = true;
      const err = new AgentError('EABORTED', `${what} was aborted before it started`, { cause: opts.signal.reason });
      return { result: Promise.reject(err), kill, resize: () => {} };
    }
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(
        () => killFor(new AgentError('ETIMEDOUT', `${what} did not finish within ${opts.timeoutMs} ms: killed it (SIGKILL)`)),
        opts.timeoutMs,
      );
    }

    const pumpInput = async (input: Input) => {
      try {
        for await (const chunk of frameChunks(input)) {
          while (!finished && inflight + chunk.length > STDIN_WINDOW) {
            await new Promise<void>((resolve) => (creditWaiter = resolve));
          }
          if (finished) return;
          inflight += chunk.length;
          await this.send(encodeFrame(FrameType.STDIN, id, chunk));
        }
        if (!finished) await this.send(encodeFrame(FrameType.STDIN, id));
      } catch (err) {
        // A closed channel is reported by onGone; anything else is the input's fault.
        if (!finished && !this.gone) {
          killFor(new AgentError('EINPUT', `reading the input of ${what} failed: ${(err as Error)?.message ?? err}`, { cause: err }));
        }
      }
    };

    const flags = (opts.input !== undefined ? FrameFlag.STDIN : 0) | (pty ? FrameFlag.PTY : 0);
    this.send(encodeFrame(FrameType.EXEC, id, payload, flags)).then(
      () => (opts.input !== undefined ? pumpInput(opts.input) : undefined),
      () => {}, // a closed channel is reported by onGone
    );
    if (this.gone) finish(undefined, this.goneError(`${what} could not start`));

    return {
      result,
      kill,
      resize: (rows, cols) => {
        if (!finished && !this.gone) this.socket.write(encodeFrame(FrameType.RESIZE, id, encodeResize(rows, cols)));
      },
    };
  }
}
