/**
 * Host side of the guest agent: runs commands in the guest, moves files in and out,
 * powers it off. One channel carries any number of requests at once (channel.ts).
 */
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { Channel } from './channel.js';
import { AgentError } from './results.js';
import { FrameFlag, FrameType } from './contract.js';
import { Exec, frameChunks, type ExecOptions, type ExecStream, type Input } from './exec.js';
import type { ExecResult } from './results.js';
import { encodeFrame, encodeReadFile, encodeWriteFile, type Hello } from './protocol.js';

export { AgentError, type ExecResult, type SpawnError } from './results.js';
export type { ExecOptions, ExecStream, Input } from './exec.js';
export type { Hello } from './protocol.js';

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

  /** Runs a command to completion and returns its whole output. */
  exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    return new Exec(this.channel, argv, opts, {
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
    const stdout = this.channel.readable();
    const stderr = this.channel.readable();
    const run = new Exec(this.channel, argv, opts, {
      out: (c) => this.channel.push(stdout, c),
      err: (c) => this.channel.push(stderr, c),
      end: () => {
        stdout.push(null);
        stderr.push(null);
      },
      collected: () => ({ stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) }),
    });
    return { stdout, stderr, result: run.result, kill: (sig) => run.kill(sig), resize: (rows, cols) => run.resize(rows, cols) };
  }

  /** Writes a guest file (created or truncated) with `mode`, streaming the data. */
  async writeFile(guestPath: string, data: Input, mode = 0o644): Promise<void> {
    const id = this.channel.newId();
    let settled = false;
    const done = new Promise<void>((resolve, reject) => {
      this.channel.register(id, {
        onFrame: (f) => {
          if (f.type !== FrameType.OK && f.type !== FrameType.ERROR) return;
          settled = true;
          this.channel.unregister(id);
          if (f.type === FrameType.OK) resolve();
          else reject(this.channel.guestError(f.payload));
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

  /** A guest file's content as a stream; errors (ENOENT, EISDIR, ...) come as AgentError. */
  readFileStream(guestPath: string): Readable {
    const id = this.channel.newId();
    const stream = this.channel.readable();
    this.channel.register(id, {
      onFrame: (f) => {
        if (f.type === FrameType.DATA && f.payload.length > 0) {
          this.channel.push(stream, f.payload);
        } else if (f.type === FrameType.DATA) {
          this.channel.unregister(id);
          stream.push(null);
        } else if (f.type === FrameType.ERROR) {
          this.channel.unregister(id);
          stream.destroy(this.channel.guestError(f.payload));
        }
      },
      onGone: (reason, cause) => stream.destroy(new AgentError('EAGENTGONE', `reading guest file ${guestPath} failed: ${reason}`, { cause })),
    });
    this.channel.send(encodeFrame(FrameType.READ_FILE, id, encodeReadFile(guestPath))).catch((err: unknown) => {
      this.channel.unregister(id);
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
    if (this.channel.gone) return;
    this.channel.poweringOff = true;
    const id = this.channel.newId();
    await new Promise<void>((resolve) => {
      this.channel.register(id, {
        onFrame: (f) => {
          if (f.type === FrameType.OK) resolve();
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
