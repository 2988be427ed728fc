/**
 * The host end of the guest channel: one socket, frames told apart by request id. It
 * greets the agent, hands each frame to the request it belongs to, keeps backpressure
 * per stream (the agent sends a stream's output only while the host has room for it,
 * OUTPUT_WINDOW, given back as its reader takes it: a reader that is behind holds up its
 * own command, and every other request goes on), and tells every pending request when
 * the channel closes. The guest is not
 * trusted: a frame our agent would never send closes the channel, and every request
 * then fails with EPROTO and one line saying what came; nothing throws out of the
 * socket's handlers.
 */
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { ApplianceError } from '../errors.js';
import { errnoCode } from '../errno.js';
import { AgentError } from './results.js';
import { FrameType, OUTPUT_WINDOW } from '../guest/contract.js';
import {
  checkAgentFrame,
  decodeError,
  decodeHello,
  encodeCredit,
  encodeFrame,
  FrameDecoder,
  frameName,
  protocolError,
  type Frame,
  type Hello,
} from './protocol.js';

/** What a request does with its frames, and with the channel closing under it. */
export interface Pending {
  /** Takes a frame of this request; throws EPROTO (protocolError) for one it can never get. */
  onFrame(frame: Frame): void;
  /** The channel closed: goneError() says how. */
  onGone(): void;
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
  /** What the agent sent that it never would: the channel was closed for it. */
  private broken: string | undefined;
  /** What went wrong on the host handling a frame (a stream's listener that threw): the channel was closed for it. */
  private fault: string | undefined;
  private readonly requests = new Map<number, Pending>();
  private nextId = 1;
  /** Every id has been used once: any id may have a late frame. */
  private wrapped = false;
  private drained: Promise<void> | undefined;
  /** The output streams a reader takes (execStream's, a file's), by their request and stream. */
  private readonly flows = new Map<Readable, Flow>();
  private readonly streamed = new Set<string>();
  /** Room taken by collected output and not given back yet (given back by CREDIT_BATCH). */
  private readonly owed = new Map<string, number>();
  private readonly decoder = new FrameDecoder();
  private greeted: (() => void) | undefined;

  private constructor(private readonly socket: Socket) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  /** Waits for the agent's HELLO on a connected socket. */
  static connect(socket: Socket): Promise<Channel> {
    const channel = new Channel(socket);
    return new Promise((resolve, reject) => {
      channel.greeted = () => resolve(channel);
      socket.on('data', (chunk: Buffer) => channel.receive(chunk));
      socket.on('error', (err) => {
        channel.goneCause ??= err;
      });
      socket.once('close', () => {
        channel.onClose();
        if (channel.greeted) reject(channel.goneError('the guest agent did not say hello'));
      });
    });
  }

  /** Hands each frame of a chunk on; anything thrown on the way closes the channel instead. */
  private receive(chunk: Buffer): void {
    try {
      for (const f of this.decoder.push(chunk)) {
        if (this.socket.destroyed) return;
        this.dispatch(f);
      }
    } catch (err) {
      this.breakOff(err);
    }
  }

  private dispatch(f: Frame): void {
    checkAgentFrame(f);
    if (this.greeted) return this.greet(f);
    if (f.type === FrameType.HELLO) throw protocolError('a second HELLO');
    const pending = this.requests.get(f.id);
    if (pending) {
      pending.onFrame(f);
    } else {
      const issued = f.id !== 0 && (this.wrapped || f.id < this.nextId);
      if (!issued) throw protocolError(`${frameName(f.type)} frame for request ${f.id}, which the host never made`);
      // A late frame of a request the host has given up (cancelled, or killed and no longer
      // waited for): the agent had sent it before it knew. Dropped.
    }
    // Output no reader holds (collected, or dropped) is taken as it comes: its room goes back.
    const key = flowKey(f.id, f.type);
    if (OUTPUT_TYPES.has(f.type) && f.payload.length && !this.streamed.has(key)) {
      const owed = (this.owed.get(key) ?? 0) + f.payload.length;
      if (pending && owed < CREDIT_BATCH) {
        this.owed.set(key, owed);
      } else {
        this.credit(f.id, f.type, owed);
        this.owed.delete(key);
      }
    }
  }

  private greet(f: Frame): void {
    if (f.type !== FrameType.HELLO) throw protocolError(`${frameName(f.type)} frame for request ${f.id} before the HELLO`);
    if (f.id !== 0) throw protocolError(`HELLO for request ${f.id} (0 expected)`);
    this.hello = decodeHello(f.payload);
    const greeted = this.greeted!;
    this.greeted = undefined;
    greeted();
  }

  /** Closes the channel over a frame that could not be taken: a broken one (EPROTO), or a fault of ours. */
  private breakOff(err: unknown): void {
    if (this.socket.destroyed) return;
    if (err instanceof ApplianceError && err.code === 'EPROTO') {
      this.broken = err.message;
    } else {
      this.fault = String((err as Error)?.message ?? err).split('\n', 1)[0];
      this.goneCause = err;
    }
    this.socket.destroy();
  }

  private onClose(): void {
    this.gone = this.goneReason();
    for (const [, p] of this.requests) p.onGone();
    this.requests.clear();
  }

  private goneReason(): string {
    if (this.broken) return `the guest agent broke the protocol: ${this.broken}; the channel is closed`;
    if (this.fault) return `handling a frame from the guest agent failed on the host: ${this.fault}; the channel is closed`;
    if (this.closing) return 'the channel was closed on the host';
    if (this.poweringOff) return 'the guest was powered off';
    const cause = this.goneCause as Error | undefined;
    return `the guest channel closed${cause ? ` (${cause.message})` : ''}: did the VM crash or power off? Its console log tells`;
  }

  newId(): number {
    const id = this.nextId;
    if (id >= 0xffffffff) this.wrapped = true;
    this.nextId = id >= 0xffffffff ? 1 : id + 1;
    return id;
  }

  register(id: number, pending: Pending): void {
    this.requests.set(id, pending);
  }

  unregister(id: number): void {
    this.requests.delete(id);
    for (const type of OUTPUT_TYPES) this.owed.delete(flowKey(id, type));
  }

  /** How a request ends when the channel is gone: EPROTO if the agent broke the protocol, else EAGENTGONE. */
  goneError(what: string): AgentError {
    return new AgentError(this.broken ? 'EPROTO' : 'EAGENTGONE', `${what}: ${this.gone}`, { cause: this.goneCause });
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

  guestError(payload: Buffer, id?: number): AgentError {
    const { errno, message } = decodeError(payload, id);
    return new AgentError(errnoCode(errno), `in the guest: ${message}`, { errno });
  }

  /** A stream for output from the guest; `bind` it to its request before any comes. */
  readable(): Readable {
    const stream: Readable = new Readable({ read: () => this.giveBack(stream) });
    stream.once('close', () => {
      this.giveBack(stream, true);
      const flow = this.flows.get(stream);
      if (flow) this.streamed.delete(flowKey(flow.id, flow.type));
      this.flows.delete(stream);
    });
    return stream;
  }

  /** `stream` takes output `type` (STDOUT, STDERR, DATA) of request `id`: its room goes back only as its reader takes it. */
  bind(stream: Readable, id: number, type: number): void {
    if (stream.destroyed) return;
    this.flows.set(stream, { id, type, held: 0 });
    this.streamed.add(flowKey(id, type));
  }

  /** Hands output to its stream; the agent never sends more than the room it was given (else EPROTO). */
  push(stream: Readable, chunk: Buffer): void {
    const flow = this.flows.get(stream);
    if (flow) {
      flow.held += chunk.length;
      if (flow.held > OUTPUT_WINDOW)
        throw protocolError(`${frameName(flow.type)} for request ${flow.id}: ${flow.held} bytes unread, more than the ${OUTPUT_WINDOW} the host made room for`);
    }
    if (stream.destroyed || stream.push(chunk)) this.giveBack(stream);
  }

  /**
   * The reader has taken what its stream held: the agent may send that much again, once it
   * is CREDIT_BATCH bytes or more (or the reader is gone: `all`), so that the guest is not
   * woken for every frame.
   */
  private giveBack(stream: Readable, all = false): void {
    const flow = this.flows.get(stream);
    if (!flow?.held || (flow.held < CREDIT_BATCH && !all)) return;
    this.credit(flow.id, flow.type, flow.held);
    flow.held = 0;
  }

  private credit(id: number, type: number, bytes: number): void {
    this.sendNow(encodeFrame(FrameType.CREDIT, id, encodeCredit(type, bytes)));
  }

  /** Closes the channel; the agent then powers the guest off. Pending requests fail with EAGENTGONE. */
  close(): void {
    this.closing = true;
    this.socket.destroy();
  }
}

/** A streamed output: its request and stream, and the bytes it holds that the host has not given back. */
interface Flow {
  id: number;
  type: number;
  held: number;
}

const OUTPUT_TYPES: ReadonlySet<number> = new Set([FrameType.STDOUT, FrameType.STDERR, FrameType.DATA]);
/** Room given back at a time: a quarter of the window, so the agent always has room while the host reads. */
const CREDIT_BATCH = OUTPUT_WINDOW / 4;
const flowKey = (id: number, type: number) => `${id}:${type}`;
