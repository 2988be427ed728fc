/**
 * The guest channel's frames (contract.ts has the numbers, c/protocol.h documents every
 * message): encoding requests for the agent and decoding its replies. A reply our agent
 * (c/agent/) would never send, in type, flags, size or value, is an EPROTO ApplianceError.
 */
import { ApplianceError } from '../errors.js';
import { escapeControls } from '../printable.js';
import { FIELD_AT, FrameType, HEADER_SIZE, HELLO_PID1, MAX_PAYLOAD, PAYLOAD, PROTOCOL_VERSION } from '../guest/contract.js';

const { HEADER, HELLO, EXEC, EXIT, RESIZE } = FIELD_AT;

export interface Frame {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

export function encodeFrame(type: number, id: number, payload: Uint8Array = Buffer.alloc(0), flags = 0): Buffer {
  if (payload.length > MAX_PAYLOAD) throw new RangeError(`frame payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  const frame = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  frame.writeUInt32LE(payload.length, HEADER.length);
  frame.writeUInt8(type, HEADER.type);
  frame.writeUInt8(flags, HEADER.flags);
  frame.writeUInt16LE(0, HEADER.reserved);
  frame.writeUInt32LE(id, HEADER.id);
  frame.set(payload, HEADER_SIZE);
  return frame;
}

/** A broken frame from the agent, in one line: the channel ends with it (channel.ts). */
export function protocolError(detail: string): ApplianceError {
  return new ApplianceError('EPROTO', detail);
}

const frameNames = new Map<number, string>(Object.entries(FrameType).map(([name, type]) => [type, name]));
export const frameName = (type: number): string => frameNames.get(type) ?? `type ${type}`;

/** A frame that its request can never get (a DATA for a command, an EXIT for a file read). */
export function unexpectedFrame(f: Frame, request: string): ApplianceError {
  return protocolError(`${frameName(f.type)} frame for request ${f.id}, ${request}`);
}

/**
 * Splits a byte stream into frames. Holds at most one frame, and copies each byte once
 * however small the chunks come (a guest that trickles bytes costs no more than one that
 * does not).
 */
export class FrameDecoder {
  private readonly header = Buffer.alloc(HEADER_SIZE);
  private headerFill = 0;
  private payload: Buffer | undefined;
  private payloadFill = 0;

  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    let off = 0;
    while (off < chunk.length) {
      if (!this.payload) {
        const n = chunk.copy(this.header, this.headerFill, off, off + HEADER_SIZE - this.headerFill);
        this.headerFill += n;
        off += n;
        if (this.headerFill < HEADER_SIZE) break;
        this.payload = Buffer.allocUnsafe(this.payloadLength());
        this.payloadFill = 0;
      }
      const n = chunk.copy(this.payload, this.payloadFill, off, off + this.payload.length - this.payloadFill);
      this.payloadFill += n;
      off += n;
      if (this.payloadFill < this.payload.length) break;
      frames.push({ type: this.header[HEADER.type]!, flags: this.header[HEADER.flags]!, id: this.header.readUInt32LE(HEADER.id), payload: this.payload });
      this.payload = undefined;
      this.headerFill = 0;
    }
    return frames;
  }

  private payloadLength(): number {
    const len = this.header.readUInt32LE(HEADER.length);
    if (len > MAX_PAYLOAD) throw protocolError(`a frame of ${len} bytes (at most ${MAX_PAYLOAD})`);
    const reserved = this.header.readUInt16LE(HEADER.reserved);
    if (reserved !== 0) throw protocolError(`a frame header with reserved bits 0x${reserved.toString(16)}`);
    return len;
  }
}

/** What the agent sends (c/agent/), with the payload sizes it gives each: [least, most]. */
const FROM_AGENT = new Map<number, readonly [number, number]>([
  [FrameType.HELLO, [PAYLOAD.HELLO, PAYLOAD.HELLO]],
  [FrameType.STDIN_ACK, [PAYLOAD.STDIN_ACK, PAYLOAD.STDIN_ACK]],
  [FrameType.STDOUT, [1, MAX_PAYLOAD]],
  [FrameType.STDERR, [1, MAX_PAYLOAD]],
  [FrameType.EXIT, [PAYLOAD.EXIT, PAYLOAD.EXIT]],
  [FrameType.ERROR, [PAYLOAD.ERROR_MIN, MAX_PAYLOAD]],
  [FrameType.DATA, [0, MAX_PAYLOAD]],
  [FrameType.OK, [0, 0]],
]);

/** Throws EPROTO for a frame our agent never sends: a type, flags or size it does not use. */
export function checkAgentFrame(f: Frame): void {
  const sizes = FROM_AGENT.get(f.type);
  const what = `${frameName(f.type)} frame for request ${f.id}`;
  if (!sizes) {
    throw protocolError(frameNames.has(f.type) ? `${what}, a type only the host sends` : `unknown frame type ${f.type} for request ${f.id}`);
  }
  if (f.flags !== 0) throw protocolError(`${what} with flags 0x${f.flags.toString(16)}`);
  checkSize(f.type, f.payload, f.id);
}

function checkSize(type: number, p: Buffer, id?: number): void {
  const [least, most] = FROM_AGENT.get(type)!;
  if (p.length >= least && p.length <= most) return;
  const expected = least === most ? `${least} expected` : p.length < least ? `at least ${least} expected` : `at most ${most}`;
  throw protocolError(`${frameName(type)} of ${p.length} bytes${id === undefined ? '' : ` for request ${id}`} (${expected})`);
}

/** A string for the guest, NUL-terminated: text as UTF-8, or bytes as they are (names that are not UTF-8). */
function cString(text: string | Buffer, what: string): Buffer {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  if (bytes.includes(0)) throw new ApplianceError('EINVAL', `${what} contains a NUL byte, which cannot cross to the guest`);
  return Buffer.concat([bytes, Buffer.alloc(1)]);
}

export interface ExecRequest {
  /** Arguments as text, or as bytes where they name files whose names are not UTF-8. */
  argv: (string | Buffer)[];
  env?: Record<string, string>;
  cwd?: string;
  rows?: number;
  cols?: number;
}

export function encodeExec(req: ExecRequest): Buffer {
  if (!Array.isArray(req.argv) || req.argv.some((a) => typeof a !== 'string' && !Buffer.isBuffer(a))) {
    throw new ApplianceError('EINVAL', "exec takes the command as a list of strings (or Buffers): ['ls', '-l'], or ['sh', '-c', 'a | b'] for a shell line");
  }
  if (req.argv.length === 0) throw new ApplianceError('EINVAL', 'exec needs a command: argv is empty');
  const env = Object.entries(req.env ?? {}).map(([k, v]) => {
    if (!k || k.includes('=')) throw new ApplianceError('EINVAL', `bad environment variable name "${k}"`);
    return cString(`${k}=${v}`, `environment variable ${k}`);
  });
  const head = Buffer.alloc(PAYLOAD.EXEC_HEAD);
  head.writeUInt32LE(req.argv.length, EXEC.argc);
  head.writeUInt32LE(env.length, EXEC.envc);
  head.writeUInt16LE(terminalSize('rows', req.rows ?? 0), EXEC.rows);
  head.writeUInt16LE(terminalSize('cols', req.cols ?? 0), EXEC.cols);
  const payload = Buffer.concat([head, cString(req.cwd ?? '', 'cwd'), ...req.argv.map((a, i) => cString(a, `argv[${i}]`)), ...env]);
  if (payload.length > MAX_PAYLOAD) {
    throw new ApplianceError('E2BIG', `command line and environment take ${payload.length} bytes; at most ${MAX_PAYLOAD - PAYLOAD.EXEC_HEAD} fit in a request`);
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
  // The version first: an agent of another version may well greet in another size.
  const version = p.length >= HELLO.version + 4 ? p.readUInt32LE(HELLO.version) : undefined;
  if (version !== undefined && version !== PROTOCOL_VERSION) {
    throw protocolError(`the guest agent speaks protocol version ${version}, this host speaks ${PROTOCOL_VERSION}: rebuild the appliance so its agent matches`);
  }
  checkSize(FrameType.HELLO, p);
  return {
    version: PROTOCOL_VERSION,
    bootMs: p.readUInt32LE(HELLO.bootMs),
    initMs: p.readUInt32LE(HELLO.initMs),
    pid1: (p.readUInt32LE(HELLO.flags) & HELLO_PID1) !== 0,
    resumeMs: p.readUInt32LE(HELLO.resumeMs),
  };
}

export interface ExitStatus {
  exitCode: number | null;
  /** Linux signal number, or null when the command exited. */
  signal: number | null;
  durationMs: number;
}

/** Linux's highest signal number (SIGRTMAX). */
const MAX_SIGNAL = 64;

export function decodeExit(p: Buffer, id?: number): ExitStatus {
  checkSize(FrameType.EXIT, p, id);
  const code = p.readInt32LE(EXIT.code);
  const sig = p.readUInt32LE(EXIT.signal);
  // c/agent/requests.c: an exit status 0-255 and no signal, or -1 and the signal that killed it.
  if (sig === 0 ? code < 0 || code > 255 : code !== -1 || sig > MAX_SIGNAL) {
    throw protocolError(`EXIT${id === undefined ? '' : ` for request ${id}`} with exit code ${code} and signal ${sig}`);
  }
  return { exitCode: sig ? null : code, signal: sig || null, durationMs: p.readUInt32LE(EXIT.durationMs) };
}

export function decodeAck(p: Buffer, id?: number): number {
  checkSize(FrameType.STDIN_ACK, p, id);
  return p.readUInt32LE(0);
}

/** The guest's errno and message; the message's control characters escaped, so it prints as one line and nothing else. */
export function decodeError(p: Buffer, id?: number): { errno: number; message: string } {
  checkSize(FrameType.ERROR, p, id);
  const message = escapeControls(p.subarray(PAYLOAD.ERROR_MIN).toString('utf8'));
  return { errno: p.readInt32LE(0), message };
}

export function encodeU32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v, 0);
  return b;
}

function terminalSize(what: 'rows' | 'cols', v: number): number {
  if (Number.isInteger(v) && v >= 0 && v <= 0xffff) return v;
  throw new ApplianceError('EINVAL', `a terminal's ${what} must be an integer from 0 to 65535, not ${v}`);
}

export function encodeResize(rows: number, cols: number): Buffer {
  const b = Buffer.alloc(PAYLOAD.RESIZE);
  b.writeUInt16LE(terminalSize('rows', rows), RESIZE.rows);
  b.writeUInt16LE(terminalSize('cols', cols), RESIZE.cols);
  return b;
}

/** CREDIT: the host's reader has taken `bytes` of a request's output stream (STDOUT, STDERR or DATA). */
export function encodeCredit(stream: number, bytes: number): Buffer {
  const b = Buffer.alloc(PAYLOAD.CREDIT);
  b.writeUInt32LE(stream, FIELD_AT.CREDIT.stream);
  b.writeUInt32LE(bytes, FIELD_AT.CREDIT.bytes);
  return b;
}

export function encodeWriteFile(path: string, mode: number): Buffer {
  return Buffer.concat([encodeU32(mode & 0o7777), cString(path, 'guest path')]);
}

export function encodeReadFile(path: string): Buffer {
  return cString(path, 'guest path');
}
