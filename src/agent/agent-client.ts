/**
 * Host side of the guest agent: runs commands in the guest, moves files in and out,
 * powers it off. One channel carries any number of requests at once (channel.ts).
 */
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { ApplianceError } from '../errors.js';
import { Channel } from './channel.js';
import { AgentError } from './results.js';
import { FrameFlag, FrameType } from '../guest/contract.js';
import { DEFAULT_MAX_BUFFER, Exec, frameChunks, type ExecOptions, type ExecStream, type Input } from './exec.js';
import type { ExecResult } from './results.js';
import { encodeFrame, encodeReadFile, encodeWriteFile, unexpectedFrame, type Hello } from './protocol.js';

export { AgentError, type ExecResult, type SpawnError } from './results.js';
export type { ExecOptions, ExecStream, Input } from './exec.js';
export type { Hello } from './protocol.js';

export interface ReadFileStreamOptions {
  /** Destroy the stream with EABORTED when this aborts; the agent stops reading the file. */
  signal?: AbortSignal;
  /** How errors name the read (default: "reading guest file PATH"). */
  label?: string;
}

export interface ReadFileOptions extends ReadFileStreamOptions {
  /**
   * The most bytes to take (default 256 MiB): past it, readFile rejects with ETOOBIG and the
   * agent stops reading. The whole file is held in memory, twice while it is joined: a
   * bigger file is for readFileStream. Infinity for no limit.
   */
  maxBytes?: number;
}

/** readFile's default maxBytes. */
export const DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024;

/** Chunks kept up to `limit` bytes; add() says whether the chunk fit whole. */
function collector(limit: number) {
  const chunks: Buffer[] = [];
  let size = 0;
  return {
    add(chunk: Buffer): boolean {
      const room = limit - size;
      const kept = chunk.length <= room ? chunk : chunk.subarray(0, room);
      if (kept.length) chunks.push(kept);
      size += kept.length;
      return kept === chunk;
    },
    take: (): Buffer => Buffer.concat(chunks, size),
  };
}

export class AgentClient {
  private constructor(private readonly channel: Channel) {}

  /** Waits for the agent's HELLO on a connected socket. */
  static async connect(socket: Socket): Promise<AgentClient> {
    return new AgentClient(await Channel.connect(socket));
  }

  /** The agent's greeting: protocol version and guest boot times. */
  get hello(): Hello {
    return this.channel.hello;
  }

  /** Settles when the channel has closed. */
  get closed(): Promise<void> {
    return this.channel.closed;
  }

  /** Runs a command to completion and returns its whole output (up to `maxBuffer` bytes a stream). */
  exec(argv: (string | Buffer)[], opts: ExecOptions = {}): Promise<ExecResult> {
    const limit = opts.maxBuffer ?? DEFAULT_MAX_BUFFER;
    const stdout = collector(limit);
    const stderr = collector(limit);
    return new Exec(this.channel, argv, opts, {
      out: (c) => stdout.add(c),
      err: (c) => stderr.add(c),
      end: () => {},
      collected: () => ({ stdout: stdout.take(), stderr: stderr.take() }),
      limit,
    }).result;
  }

  /**
   * Runs a command with its output streamed as it comes. A stream whose reader is behind
   * holds up the command (it blocks on its full pipe, as a child of Node's does): read
   * both, or it never ends; other calls go on meanwhile. Bad arguments reject `result`
   * and end both streams.
   */
  execStream(argv: (string | Buffer)[], opts: ExecOptions = {}): ExecStream {
    const stdout = this.channel.readable();
    const stderr = this.channel.readable();
    let ended = false;
    const run = new Exec(this.channel, argv, opts, {
      // No limit: the reader's pace bounds what is held.
      out: (c) => (this.channel.push(stdout, c), true),
      err: (c) => (this.channel.push(stderr, c), true),
      end: () => {
        ended = true;
        stdout.push(null);
        stderr.push(null);
      },
      collected: () => ({ stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) }),
    });
    this.channel.bind(stdout, run.id, FrameType.STDOUT);
    this.channel.bind(stderr, run.id, FrameType.STDERR);
    // A reader that destroys stdout before its end is a closed pipe: the command gets SIGPIPE,
    // as a child of Node's would on its next write, instead of running on unread.
    stdout.once('close', () => {
      if (!ended) run.kill('SIGPIPE');
    });
    // The streams are what a caller reads; a result it never awaits (the command cut short
    // by close()) must not end its process as an unhandled rejection. Awaited, it rejects.
    run.result.catch(() => {});
    return { stdout, stderr, result: run.result, kill: (sig) => run.kill(sig), resize: (rows, cols) => run.resize(rows, cols) };
  }

  /** Writes a guest file (created or truncated) with `mode`, streaming the data. */
  async writeFile(guestPath: string, data: Input, mode = 0o644): Promise<void> {
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777)
      throw new ApplianceError(
        'EINVAL',
        `mode ${typeof mode === 'number' ? (Number.isInteger(mode) && mode > 0 ? `0o${mode.toString(8)}` : mode) : JSON.stringify(mode)}: give permission bits from 0 to 0o7777, e.g. 0o644`,
      );
    const stream = data as { [Symbol.asyncIterator]?: unknown };
    if (typeof data !== 'string' && !(data instanceof Uint8Array) && typeof stream?.[Symbol.asyncIterator] !== 'function')
      throw new ApplianceError(
        'EINVAL',
        `the data for guest file ${guestPath} is a ${data === null ? 'null' : typeof data}: give a string, a Buffer or a readable stream`,
      );
    const id = this.channel.newId();
    let settled = false;
    const done = new Promise<void>((resolve, reject) => {
      this.channel.register(id, {
        onFrame: (f) => {
          if (f.type !== FrameType.OK && f.type !== FrameType.ERROR) throw unexpectedFrame(f, 'a file write');
          const err = f.type === FrameType.ERROR ? this.channel.guestError(f.payload, f.id) : undefined;
          settled = true;
          this.channel.unregister(id);
          if (err) reject(err);
          else resolve();
        },
        onGone: () => {
          settled = true;
          reject(this.channel.goneError(`writing guest file ${guestPath} failed`));
        },
      });
    });
    done.catch(() => {}); // awaited below; this only keeps an early failure from being "unhandled"
    let inputError: unknown;
    try {
      await this.channel.send(encodeFrame(FrameType.WRITE_FILE, id, encodeWriteFile(guestPath, mode)));
      for await (const chunk of frameChunks(data)) {
        if (settled) break;
        await this.channel.send(encodeFrame(FrameType.DATA, id, chunk));
      }
      if (!settled) await this.channel.send(encodeFrame(FrameType.DATA, id));
    } catch (err) {
      if (err instanceof AgentError) throw err;
      inputError = err;
      if (!settled) await this.channel.send(encodeFrame(FrameType.DATA, id, undefined, FrameFlag.ABORT)).catch(() => {});
    }
    if (inputError !== undefined) {
      await done.catch(() => {});
      throw new AgentError('EINPUT', `reading the data for guest file ${guestPath} failed: ${(inputError as Error)?.message ?? inputError}`, {
        cause: inputError,
      });
    }
    await done;
  }

  /**
   * A guest file's content as a stream; errors (ENOENT, EISDIR, ...) come as AgentError.
   * Destroying the stream, or aborting `signal`, tells the agent to stop reading.
   */
  readFileStream(guestPath: string, opts: ReadFileStreamOptions = {}): Readable {
    const stream = this.channel.readable();
    let payload: Buffer;
    try {
      payload = encodeReadFile(guestPath);
    } catch (err) {
      return stream.destroy(err as Error);
    }
    const { signal } = opts;
    const what = opts.label ?? `reading guest file ${guestPath}`;
    if (signal?.aborted) return stream.destroy(new AgentError('EABORTED', `${what} was aborted before it started`, { cause: signal.reason }));
    const id = this.channel.newId();
    this.channel.bind(stream, id, FrameType.DATA);
    let running = true;
    const onAbort = () => stream.destroy(new AgentError('EABORTED', `${what} was aborted`, { cause: signal?.reason }));
    const end = () => {
      running = false;
      this.channel.unregister(id);
      signal?.removeEventListener('abort', onAbort);
    };
    stream.once('close', () => {
      if (!running) return;
      end();
      // Given up before the end: else the agent would go on reading (/dev/zero: for ever).
      this.channel.sendNow(encodeFrame(FrameType.CANCEL, id));
    });
    signal?.addEventListener('abort', onAbort, { once: true });
    this.channel.register(id, {
      onFrame: (f) => {
        if (f.type === FrameType.DATA && f.payload.length > 0) return this.channel.push(stream, f.payload);
        if (f.type !== FrameType.DATA && f.type !== FrameType.ERROR) throw unexpectedFrame(f, 'a file read');
        const err = f.type === FrameType.ERROR ? this.channel.guestError(f.payload, f.id) : undefined;
        end();
        if (err) stream.destroy(err);
        else stream.push(null);
      },
      onGone: () => {
        end();
        stream.destroy(this.channel.goneError(`${what} failed`));
      },
    });
    this.channel.send(encodeFrame(FrameType.READ_FILE, id, payload)).catch((err: unknown) => {
      end();
      stream.destroy(err as Error);
    });
    return stream;
  }

  /** A guest file's content, up to `maxBytes`. */
  async readFile(guestPath: string, opts: ReadFileOptions = {}): Promise<Buffer> {
    const max = opts.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
    if (!(typeof max === 'number' && max >= 0)) throw new ApplianceError('EINVAL', `maxBytes must be a number of bytes, not ${max}`);
    const content = collector(max);
    for await (const chunk of this.readFileStream(guestPath, opts)) {
      // Leaving the loop destroys the stream, which cancels the read in the agent.
      if (!content.add(chunk as Buffer)) {
        throw new AgentError('ETOOBIG', `guest file ${guestPath} is larger than ${max} bytes (maxBytes): read it with readFileStream, or raise maxBytes`);
      }
    }
    return content.take();
  }

  /** Asks the guest to power off; resolves once the agent has acknowledged (or is gone). */
  async poweroff(): Promise<void> {
    if (this.channel.gone) return;
    this.channel.poweringOff = true;
    const id = this.channel.newId();
    await new Promise<void>((resolve) => {
      this.channel.register(id, {
        onFrame: (f) => {
          if (f.type !== FrameType.OK) throw unexpectedFrame(f, 'a poweroff');
          resolve();
        },
        onGone: () => resolve(),
      });
      this.channel.send(encodeFrame(FrameType.POWEROFF, id)).catch(() => resolve());
    });
  }

  /** Closes the channel; the agent then powers the guest off. Pending requests fail with EAGENTGONE. */
  close(): void {
    this.channel.close();
  }
}
