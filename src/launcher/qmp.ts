/**
 * A minimal QMP (qemu's JSON monitor protocol) client: what the launcher needs to save
 * and restore snapshots. qemu connects to a socket the launcher listens on (as for the
 * guest channel), greets, and then answers commands in order, one JSON object per line;
 * events come in between.
 */
import type { Socket } from 'node:net';
import { ApplianceError } from '../errors.js';

/** A command qemu refused, or the monitor closing before it answered. */
export class QmpError extends ApplianceError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('EQMP', message, options);
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

export class Qmp {
  private buffer = '';
  private readonly pending = new Map<number, Pending>();
  private readonly waiters: { event: string; resolve: () => void; reject: (err: Error) => void }[] = [];
  private nextId = 1;
  private closed?: Error;
  private greeted?: (err?: Error) => void;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => this.onData(text));
    socket.on('error', () => {});
    socket.on('close', () => this.fail(new QmpError('the qemu monitor closed (qemu exited?)')));
  }

  /** Waits for qemu's greeting on a connected socket and leaves capabilities negotiation. */
  static async connect(socket: Socket): Promise<Qmp> {
    const qmp = new Qmp(socket);
    await new Promise<void>((resolve, reject) => (qmp.greeted = (err) => (err ? reject(err) : resolve())));
    await qmp.execute('qmp_capabilities');
    return qmp;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed) return Promise.reject(this.closed);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject });
      this.socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    });
  }

  /** Resolves at the next event of this name (events before the call are not kept). */
  nextEvent(event: string): Promise<void> {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise<void>((resolve, reject) => this.waiters.push({ event, resolve, reject }));
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(text: string): void {
    this.buffer += text;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let msg: { QMP?: unknown; event?: string; id?: number; return?: unknown; error?: { class?: string; desc?: string } };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch (cause) {
      this.fail(new QmpError(`qemu's monitor sent something that is not JSON: ${line.slice(0, 200)}`, { cause }));
      return;
    }
    if (msg.QMP) {
      this.greeted?.();
      this.greeted = undefined;
    } else if (msg.event) {
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        if (this.waiters[i]!.event === msg.event) this.waiters.splice(i, 1)[0]!.resolve();
      }
    } else if (msg.id !== undefined) {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error) p.reject(new QmpError(`qemu refused ${p.command}: ${msg.error.desc ?? msg.error.class ?? 'unknown error'}`));
      else p.resolve(msg.return);
    }
  }

  private fail(err: Error): void {
    if (this.closed) return;
    this.closed = err;
    this.greeted?.(err);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const w of this.waiters.splice(0)) w.reject(err);
    this.socket.destroy();
  }
}
