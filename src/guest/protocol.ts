/**
 * The guest channel's frames (contract.ts has the numbers, c/protocol.h documents every
 * message): encoding requests for the agent and decoding its replies.
 */
import { ApplianceError } from '../errors.js';
import { HEADER_SIZE, MAX_PAYLOAD } from './contract.js';

export interface Frame {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

export function encodeFrame(type: number, id: number, payload: Uint8Array = Buffer.alloc(0), flags = 0): Buffer {
  if (payload.length > MAX_PAYLOAD) throw new RangeError(`frame payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  const frame = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  frame.writeUInt32LE(payload.length, 0);
  frame.writeUInt8(type, 4);
  frame.writeUInt8(flags, 5);
  frame.writeUInt16LE(0, 6);
  frame.writeUInt32LE(id, 8);
  frame.set(payload, HEADER_SIZE);
  return frame;
}

/** Splits a byte stream into frames; keeps at most one partial frame between chunks. */
export class FrameDecoder {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    const buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const frames: Frame[] = [];
    let off = 0;
    while (buf.length - off >= HEADER_SIZE) {
      const len = buf.readUInt32LE(off);
      if (len > MAX_PAYLOAD) {
        throw new ApplianceError('EPROTO', `the guest agent sent a frame of ${len} bytes (at most ${MAX_PAYLOAD}): the channel is out of step`);
      }
      if (buf.length - off < HEADER_SIZE + len) break;
      frames.push({
        type: buf[off + 4]!,
        flags: buf[off + 5]!,
        id: buf.readUInt32LE(off + 8),
        // A copy: the payload outlives `buf`, which may be a large pooled chunk.
        payload: Buffer.from(buf.subarray(off + HEADER_SIZE, off + HEADER_SIZE + len)),
      });
      off += HEADER_SIZE + len;
    }
    this.pending = Buffer.from(buf.subarray(off));
    return frames;
  }
}

function cString(text: string, what: string): Buffer {
  if (text.includes('\0')) throw new ApplianceError('EINVAL', `${what} contains a NUL byte, which cannot cross to the guest`);
  return Buffer.from(`${text}\0`, 'utf8');
}

export interface ExecRequest {
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  rows?: number;
  cols?: number;
}

export function encodeExec(req: ExecRequest): Buffer {
  if (req.argv.length === 0) throw new ApplianceError('EINVAL', 'exec needs a command: argv is empty');
  const env = Object.entries(req.env ?? {}).map(([k, v]) => {
    if (!k || k.includes('=')) throw new ApplianceError('EINVAL', `bad environment variable name "${k}"`);
    return cString(`${k}=${v}`, `environment variable ${k}`);
  });
  const head = Buffer.alloc(12);
  head.writeUInt32LE(req.argv.length, 0);
  head.writeUInt32LE(env.length, 4);
  head.writeUInt16LE(req.rows ?? 0, 8);
  head.writeUInt16LE(req.cols ?? 0, 10);
  const payload = Buffer.concat([
    head,
    cString(req.cwd ?? '', 'cwd'),
    ...req.argv.map((a, i) => cString(a, `argv[${i}]`)),
    ...env,
  ]);
  if (payload.length > MAX_PAYLOAD) {
    throw new ApplianceError('E2BIG', `command line and environment take ${payload.length} bytes; at most ${MAX_PAYLOAD - 12} fit in a request`);
  }
  return payload;
}

export interface Hello {
  version: number;
  /** Guest time since the kernel started (CLOCK_BOOTTIME) when the agent was ready, ms. */
  bootMs: number;
  /** Guest time since the kernel started when the init began, ms (0 if unknown). */
  initMs: number;
  /** The agent is the guest's PID 1 (false in `--connect` mode). */
  pid1: boolean;
  /** Guest time since the kernel started when the init passed its snapshot point, ms (0 if it had none). */
  resumeMs: number;
}

export function decodeHello(p: Buffer): Hello {
  if (p.length < 16) throw new ApplianceError('EPROTO', `short HELLO from the guest agent (${p.length} bytes)`);
  return {
    version: p.readUInt32LE(0),
    bootMs: p.readUInt32LE(4),
    initMs: p.readUInt32LE(8),
    pid1: (p.readUInt32LE(12) & 1) !== 0,
    resumeMs: p.length >= 20 ? p.readUInt32LE(16) : 0,
  };
}

export interface ExitStatus {
  exitCode: number | null;
  /** Linux signal number, or null when the command exited. */
  signal: number | null;
  durationMs: number;
}

export function decodeExit(p: Buffer): ExitStatus {
  const sig = p.readUInt32LE(4);
  return { exitCode: sig ? null : p.readInt32LE(0), signal: sig || null, durationMs: p.readUInt32LE(8) };
}

export function decodeError(p: Buffer): { errno: number; message: string } {
  return { errno: p.readInt32LE(0), message: p.subarray(4).toString('utf8') };
}

export function encodeU32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v, 0);
  return b;
}

export function encodeResize(rows: number, cols: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(rows, 0);
  b.writeUInt16LE(cols, 2);
  return b;
}

export function encodeWriteFile(path: string, mode: number): Buffer {
  return Buffer.concat([encodeU32(mode & 0o7777), cString(path, 'guest path')]);
}

export function encodeReadFile(path: string): Buffer {
  return cString(path, 'guest path');
}
