// A hostile agent on the host: the real AgentClient on one end of a real unix socket, a
// scripted peer on the other that says hello and then writes whatever bytes a test gives.
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { AgentClient } from '../../src/agent/agent-client.js';
import { FrameType, HEADER_SIZE, PROTOCOL_VERSION } from '../../src/guest/contract.js';
import { FrameDecoder, type Frame } from '../../src/agent/protocol.js';

export interface FakeAgent {
  /** The host's client; rejects if the handshake fails. */
  client: Promise<AgentClient>;
  /** The agent's end of the channel. */
  socket: Socket;
  /** The next frame the host sent, CREDIT frames aside. */
  request(): Promise<Frame>;
  /** The CREDIT frames the host sent: the room it gave back, as it read. */
  credits: Frame[];
  /** Resolves when the host has closed its end. */
  hostClosed: Promise<void>;
}

/** A frame as raw bytes: any length field, flags and reserved bits, whatever the payload. */
export function rawFrame(f: { type: number; id: number; payload?: Buffer; len?: number; flags?: number; reserved?: number }): Buffer {
  const payload = f.payload ?? Buffer.alloc(0);
  const b = Buffer.alloc(HEADER_SIZE + payload.length);
  b.writeUInt32LE(f.len ?? payload.length, 0);
  b.writeUInt8(f.type, 4);
  b.writeUInt8(f.flags ?? 0, 5);
  b.writeUInt16LE(f.reserved ?? 0, 6);
  b.writeUInt32LE(f.id, 8);
  payload.copy(b, HEADER_SIZE);
  return b;
}

export const u32s = (...values: number[]): Buffer => {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeUInt32LE(v >>> 0, i * 4));
  return b;
};

/** The HELLO our agent sends: version, boot, init and resume times, the PID 1 flag. */
export function helloFrame(payload: Buffer = u32s(PROTOCOL_VERSION, 100, 50, 0, 0)): Buffer {
  return rawFrame({ type: FrameType.HELLO, id: 0, payload });
}

let n = 0;

/** Connects a client to a scripted agent that first writes `greeting` (a valid HELLO by default). */
export async function fakeAgent(dir: string, greeting: Buffer = helloFrame()): Promise<FakeAgent> {
  const path = join(dir, `fake${n++}.sock`);
  const server = createServer().listen(path);
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const socket = connect(path);
  const [hostEnd] = await accepted;
  server.close();
  const client = AgentClient.connect(hostEnd);
  client.catch(() => {}); // the test awaits it; this only keeps an early failure from being "unhandled"
  const hostClosed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => {});
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  const credits: Frame[] = [];
  const waiters: ((f: Frame) => void)[] = [];
  socket.on('data', (chunk: Buffer) => {
    for (const f of decoder.push(chunk)) {
      if (f.type === FrameType.CREDIT) {
        credits.push(f);
        continue;
      }
      const w = waiters.shift();
      if (w) w(f);
      else frames.push(f);
    }
  });
  socket.write(greeting);
  return {
    client,
    socket,
    hostClosed,
    credits,
    request: () => {
      const f = frames.shift();
      return f ? Promise.resolve(f) : new Promise((resolve) => waiters.push(resolve));
    },
  };
}

/** Rejects when `p` has not settled within `ms`. */
export function within<T>(ms: number, p: Promise<T>, what = 'the promise'): Promise<T> {
  let timer: NodeJS.Timeout;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** How a promise settled: its value, or its error's code and message. */
export async function outcome<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; code: string; message: string; error: unknown }> {
  try {
    return { ok: true, value: await p };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return { ok: false, code: String(e.code), message: String(e.message), error: err };
  }
}
