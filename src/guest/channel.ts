/**
 * The host end of the guest channel: one socket, frames told apart by request id. It
 * greets the agent, hands each frame to the request it belongs to, keeps backpressure
 * (the socket pauses while a reader is behind, so the guest stops too and nothing is
 * lost), and tells every pending request when the channel closes.
 */
import type { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { Readable } from 'node:stream';
import { ApplianceError, type ErrorCode } from '../errors.js';
import { AgentError } from './results.js';
import { FrameType, PROTOCOL_VERSION } from './contract.js';
import { decodeError, decodeHello, FrameDecoder, type Frame, type Hello } from './protocol.js';

/** What a request does with its frames, and with the channel closing under it. */
export interface Pending {
  onFrame(frame: Frame): void;
  /** The channel closed: `reason` says how. */
  onGone(reason: string, cause?: unknown): void;
}

function reverse(table: Record<string, number>): Map<number, string> {
  const map = new Map<number, string>();
  // First name wins: SIGABRT before its alias SIGIOT.
  for (const [name, num] of Object.entries(table)) if (!map.has(num)) map.set(num, name);
  return map;
}
export const signalNames = reverse(osConstants.signals as Record<string, number>);
const errnoNames = reverse(osConstants.errno as Record<string, number>);

/** The guest's errno as our error code: its name (ENOENT…), or EGUEST for a number we do not know. */
export function errnoCode(errno: number): ErrorCode {
  return (errnoNames.get(errno) ?? 'EGUEST') as ErrorCode;
}

export class Channel {
  /** The agent's greeting: protocol version and guest boot times. */
  hello!: Hello;
  /** Settles when the channel has closed. */
  readonly closed: Promise<void>;
  /** Why the channel is gone, once it is. */
  gone: string | undefined;
  goneCause: unknown;
  closing = false;
  poweringOff = false;
  private readonly requests = new Map<number, Pending>();
  private nextId = 1;
  private drained: Promise<void> | undefined;
  /** Streams whose reader is behind: the socket stays paused while there are any. */
  private readonly fullStreams = new Set<Readable>();

  private constructor(private readonly socket: Socket) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  /** Waits for the agent's HELLO on a connected socket. */
  static connect(socket: Socket): Promise<Channel> {
    const channel = new Channel(socket);
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
          if (ready) channel.requests.get(f.id)?.onFrame(f);
          else if (f.type === FrameType.HELLO && (ready = channel.greet(f))) resolve(channel);
          if (socket.destroyed) return;
        }
      });
      socket.on('error', (err) => {
        channel.goneCause ??= err;
      });
      socket.once('close', () => {
        channel.onClose();
        if (!ready) reject(new AgentError('EAGENTGONE', `the guest agent did not say hello: ${channel.gone}`, { cause: channel.goneCause }));
      });
    });
  }

  /** Takes the HELLO; false (and the channel closed) when it cannot be used. */
  private greet(f: Frame): boolean {
    try {
      this.hello = decodeHello(f.payload);
    } catch (err) {
      this.socket.destroy(err as Error);
      return false;
    }
    if (this.hello.version === PROTOCOL_VERSION) return true;
    this.socket.destroy(
      new ApplianceError(
        'EPROTO',
        `the guest agent speaks protocol version ${this.hello.version}, this host speaks ${PROTOCOL_VERSION}: rebuild the appliance so its agent matches`,
      ),
    );
    return false;
  }

  private onClose(): void {
    const cause = this.goneCause;
    this.gone = this.closing
      ? 'the channel was closed on the host'
      : this.poweringOff
        ? 'the guest was powered off'
        : `the guest channel closed${cause ? ` (${(cause as Error).message})` : ''}: did the VM crash or power off? Its console log tells`;
    for (const [, p] of this.requests) p.onGone(this.gone, cause);
    this.requests.clear();
  }

  newId(): number {
    const id = this.nextId;
    this.nextId = id >= 0xffffffff ? 1 : id + 1;
    return id;
  }

  register(id: number, pending: Pending): void {
    this.requests.set(id, pending);
  }

  unregister(id: number): void {
    this.requests.delete(id);
  }

  goneError(what: string): AgentError {
    return new AgentError('EAGENTGONE', `${what}: ${this.gone}`, { cause: this.goneCause });
  }

  /** Writes a frame, waiting while the socket's buffer is full. */
  async send(frame: Buffer): Promise<void> {
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

  /** Writes a small control frame (a signal, a resize) without waiting; nothing if the channel is gone. */
  sendNow(frame: Buffer): void {
    if (!this.gone) this.socket.write(frame);
  }

  guestError(payload: Buffer): AgentError {
    const { errno, message } = decodeError(payload);
    return new AgentError(errnoCode(errno), `in the guest: ${message}`, { errno });
  }

  /** A stream for data from the guest: while its reader is behind, the whole channel waits. */
  readable(): Readable {
    const stream: Readable = new Readable({ read: () => this.unblock(stream) });
    stream.once('close', () => this.unblock(stream));
    return stream;
  }

  push(stream: Readable, chunk: Buffer): void {
    if (stream.destroyed) return;
    if (!stream.push(chunk)) {
      this.fullStreams.add(stream);
      this.socket.pause();
    }
  }

  private unblock(stream: Readable): void {
    if (this.fullStreams.delete(stream) && this.fullStreams.size === 0) this.socket.resume();
  }

  /** Closes the channel; the agent then powers the guest off. Pending requests fail with EAGENTGONE. */
  close(): void {
    this.closing = true;
    this.socket.destroy();
  }
}
