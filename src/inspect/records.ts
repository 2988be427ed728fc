/**
 * The inspect helper's outputs (src/guest/c/inspect/; the layouts are contract.ts's):
 * key=value lines with %XX escapes, length-prefixed byte ranges, and walk records. Every
 * length is checked against what is left and against a bound, so a helper run on a hostile
 * filesystem (or a guest that lies) gives EPROTO, never an oversized buffer or a thrown
 * RangeError. The walk's encoder (WalkEncoder) is the decoder's twin: the tests play the
 * guest with it.
 */
import { isUtf8 } from 'node:buffer';
import { ApplianceError } from '../errors.js';
import { EXTENT_DEFERRED, EXTENT_END, EXTENT_MAX, FILE_TYPE, GUEST_PATH_MAX, RECORD, RECORD_PATH_MAX } from '../guest/contract.js';
import type { Name } from './probe/types.js';

/** A name as stored: a string when its bytes are UTF-8, else the bytes. */
export const nameOf = (bytes: Buffer): Name => (isUtf8(bytes) ? bytes.toString('utf8') : Buffer.from(bytes));

const malformed = (what: string) => new ApplianceError('EPROTO', `the inspect helper's output is malformed: ${what}`);

/** A whole buffer that must hold complete values: a Short is malformed there. */
export function complete<T>(buf: Buffer, read: (c: Cursor) => T): T {
  try {
    return read(new Cursor(buf));
  } catch (err) {
    throw err instanceof Short ? malformed(err.message) : err;
  }
}

/** `key=value\t…` lines, values unescaped (%XX) to bytes. */
export function parseFields(text: Buffer): Map<string, Buffer>[] {
  const lines: Map<string, Buffer>[] = [];
  for (const line of text.toString('latin1').split('\n')) {
    if (!line) continue;
    const fields = new Map<string, Buffer>();
    for (const pair of line.split('\t')) {
      if (!pair) continue;
      const eq = pair.indexOf('=');
      if (eq <= 0) throw malformed(`a field without a key: ${JSON.stringify(pair.slice(0, 40))}`);
      fields.set(pair.slice(0, eq), unescape(pair.slice(eq + 1)));
    }
    lines.push(fields);
  }
  return lines;
}

function unescape(value: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    if (value[i] === '%' && /^[0-9A-F]{2}$/.test(value.slice(i + 1, i + 3))) {
      bytes.push(parseInt(value.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(value.charCodeAt(i) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

export const text = (fields: Map<string, Buffer>, key: string): string | undefined => fields.get(key)?.toString('utf8');
export const num = (fields: Map<string, Buffer>, key: string): number | undefined => {
  const v = text(fields, key);
  return v === undefined || !/^\d+$/.test(v) ? undefined : Number(v);
};

/** What a Cursor throws when the buffer ends before the value: more bytes may complete it. */
class Short extends Error {}

/** A reader over a buffer that checks every length against what is left. */
export class Cursor {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  get done(): boolean {
    return this.at >= this.buf.length;
  }
  get left(): number {
    return this.buf.length - this.at;
  }
  private need(n: number, what: string): void {
    if (n > this.left) throw new Short(`${what} of ${n} bytes where ${this.left} are left`);
  }
  u8(): number {
    this.need(1, 'a byte');
    return this.buf[this.at++]!;
  }
  u32(): number {
    this.need(4, 'a u32');
    const v = this.buf.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }
  i32(): number {
    this.need(4, 'an i32');
    const v = this.buf.readInt32LE(this.at);
    this.at += 4;
    return v;
  }
  u64big(): bigint {
    this.need(8, 'a u64');
    const v = this.buf.readBigUInt64LE(this.at);
    this.at += 8;
    return v;
  }
  u64(): number {
    this.need(8, 'a u64');
    const v = this.buf.readBigUInt64LE(this.at);
    this.at += 8;
    return Number(v);
  }
  i64(): number {
    this.need(8, 'an i64');
    const v = this.buf.readBigInt64LE(this.at);
    this.at += 8;
    return Number(v);
  }
  bytes(n: number): Buffer {
    this.need(n, 'a byte string');
    const b = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return b;
  }
  /** u32 length, then that many bytes, at most `max`. */
  sized(max: number, what: string): Buffer {
    const n = this.u32();
    if (n > max) throw malformed(`${what} of ${n} bytes (at most ${max})`);
    return this.bytes(n);
  }
}

export type FileType = keyof typeof FILE_TYPE;
const TYPES = new Map(Object.entries(FILE_TYPE).map(([type, letter]) => [letter.charCodeAt(0), type as FileType]));

/** What read-files says of a path read as a type (its FILE_TYPE letter, then a symlink's target). */
export function typeRead(bytes: Buffer | undefined): { type: FileType; target?: string } | undefined {
  const type = bytes?.length ? TYPES.get(bytes[0]!) : undefined;
  if (!type) return undefined;
  return type === 'symlink' ? { type, target: bytes!.subarray(1).toString('utf8') } : { type };
}
const ENTRY = RECORD.entry.charCodeAt(0);
const ERROR = RECORD.error.charCodeAt(0);

/** A file's metadata in an inspected filesystem: lstat's, with its path from the filesystem's root. */
export interface FileStat {
  /** From the filesystem's root, e.g. "/etc/passwd" (a Buffer where the name is not UTF-8). */
  path: Name;
  type: FileType;
  /** Permission bits and the set-id/sticky bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  /** Bytes allocated (st_blocks × 512): less than size for a sparse file. */
  allocated: number;
  ino: number;
  rdev?: { major: number; minor: number };
  /** Seconds since the epoch, with the nanoseconds as the fraction. */
  atime: number;
  mtime: number;
  ctime: number;
  /** Symlinks: the target as stored. */
  target?: Name;
  /** With checksums asked for: the sha256 of a regular file's content (hex). */
  sha256?: string;
}

/** A path the walk could not read (a corrupt directory, a name too long): its errno. */
export interface WalkError {
  path: Name;
  errno: number;
  /** Why, when the errno alone does not say it (an OS's filesystem mounted there that cannot be mounted: the kernel's reason). */
  reason?: string;
}

/** What a walk streams: entries and errors; with content, each regular file's data and its end. */
export type WalkEvent =
  | { kind: 'entry'; stat: FileStat }
  | { kind: 'error'; error: WalkError }
  | { kind: 'data'; offset: number; bytes: Buffer }
  | { kind: 'end'; errno: number }
  /** A large file without holes whose data the walk leaves to the host to read (flag b). */
  | { kind: 'deferred' };

/**
 * Splits the walk's stream into events, a chunk at a time: holds at most one partial
 * record or extent (each bounded: RECORD_PATH_MAX-sized paths, EXTENT_MAX-sized data), so a walk
 * of millions of files, or a copy of terabytes, streams.
 */
export class WalkDecoder {
  private pending = Buffer.alloc(0);
  /** Inside a regular file's extents (content mode). */
  private inFile = false;

  constructor(private readonly content = false) {}

  push(chunk: Buffer): WalkEvent[] {
    const buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const out: WalkEvent[] = [];
    let used = 0;
    for (;;) {
      const c = new Cursor(buf.subarray(used));
      if (c.done) break;
      let event: WalkEvent;
      try {
        event = this.inFile ? this.extent(c) : this.record(c);
      } catch (err) {
        if (err instanceof Short) break; // the rest comes in the next chunk
        throw err;
      }
      out.push(event);
      used = buf.length - c.left;
    }
    this.pending = Buffer.from(buf.subarray(used));
    return out;
  }

  private record(c: Cursor): WalkEvent {
    const r = decodeRecord(c);
    if (r.kind === 'entry' && this.content && r.stat.type === 'file') this.inFile = true;
    return r;
  }

  private extent(c: Cursor): WalkEvent {
    const offset = c.u64big();
    if (offset === EXTENT_DEFERRED) {
      this.inFile = false;
      return { kind: 'deferred' };
    }
    if (offset === EXTENT_END) {
      const errno = c.u32();
      this.inFile = false;
      return { kind: 'end', errno };
    }
    const length = c.u64();
    if (length > EXTENT_MAX) throw malformed(`an extent of ${length} bytes (at most ${EXTENT_MAX})`);
    return { kind: 'data', offset: Number(offset), bytes: Buffer.from(c.bytes(length)) };
  }

  /** The stream has ended: anything left is a cut record. */
  end(): void {
    if (this.pending.length || this.inFile) throw malformed(`the walk ended inside a record (${this.pending.length} bytes left)`);
  }
}

function decodeRecord(c: Cursor): Extract<WalkEvent, { kind: 'entry' | 'error' }> {
  const tag = c.u8();
  if (tag === ERROR) {
    const errno = c.i32();
    return { kind: 'error', error: { errno, path: nameOf(c.sized(RECORD_PATH_MAX, 'a path')) } };
  }
  if (tag !== ENTRY) throw malformed(`a record tagged 0x${tag.toString(16)}`);
  const type = TYPES.get(c.u8());
  if (!type) throw malformed('an unknown file type');
  const mode = c.u32() & 0o7777;
  const [uid, gid, nlink] = [c.u32(), c.u32(), c.u32()];
  const [size, blocks, ino] = [c.u64(), c.u64(), c.u64()];
  const rdev = { major: c.u32(), minor: c.u32() };
  const time = () => c.i64() + c.u32() / 1e9;
  const [atime, mtime, ctime] = [time(), time(), time()];
  const path = nameOf(c.sized(RECORD_PATH_MAX, 'a path'));
  const target = c.sized(GUEST_PATH_MAX, 'a symlink target');
  const hashed = c.u8();
  const sha256 = hashed ? c.bytes(32).toString('hex') : undefined;
  const stat: FileStat = { path, type, mode, uid, gid, nlink, size, allocated: blocks * 512, ino, atime, mtime, ctime };
  if (type === 'chardev' || type === 'blockdev') stat.rdev = rdev;
  if (type === 'symlink') stat.target = nameOf(target);
  if (sha256) stat.sha256 = sha256;
  return { kind: 'entry', stat };
}

/** A walk record's fields as the helper writes them: lstat's, with the type bits in `mode` and times to the nanosecond. */
export interface RawEntry {
  path: Name;
  type: FileType;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: bigint;
  blocks: bigint;
  ino: bigint;
  rdev: [number, number];
  atime: [bigint, number];
  mtime: [bigint, number];
  ctime: [bigint, number];
  target?: Name;
  sha256?: Buffer;
}

/** The walk's records as the helper writes them (contract.ts INSPECT_COMMAND): the decoder's twin, for the tests. */
export const WalkEncoder = {
  entry(e: RawEntry): Buffer {
    const head = Buffer.alloc(2 + 4 * 4 + 8 * 3 + 4 * 2 + 12 * 3);
    let at = head.writeUInt8(ENTRY, 0);
    at = head.writeUInt8(FILE_TYPE[e.type].charCodeAt(0), at);
    for (const v of [e.mode, e.uid, e.gid, e.nlink]) at = head.writeUInt32LE(v >>> 0, at);
    for (const v of [e.size, e.blocks, e.ino]) at = head.writeBigUInt64LE(v, at);
    for (const v of e.rdev) at = head.writeUInt32LE(v, at);
    for (const [sec, nsec] of [e.atime, e.mtime, e.ctime]) at = head.writeUInt32LE(nsec, head.writeBigInt64LE(sec, at));
    const hashed = e.sha256 ? [Buffer.from([1]), e.sha256] : [Buffer.from([0])];
    return Buffer.concat([head, sized(Buffer.from(e.path)), sized(Buffer.from(e.target ?? '')), ...hashed]);
  },
  error(errno: number, path: Name): Buffer {
    const head = Buffer.alloc(5);
    head.writeInt32LE(errno, head.writeUInt8(ERROR, 0));
    return Buffer.concat([head, sized(Buffer.from(path))]);
  },
  extent(offset: number | bigint, data: Buffer): Buffer {
    const head = Buffer.alloc(16);
    head.writeBigUInt64LE(BigInt(data.length), head.writeBigUInt64LE(BigInt(offset), 0));
    return Buffer.concat([head, data]);
  },
  end(errno = 0): Buffer {
    const b = Buffer.alloc(12);
    b.writeUInt32LE(errno, b.writeBigUInt64LE(EXTENT_END, 0));
    return b;
  },
  deferred(): Buffer {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(EXTENT_DEFERRED, 0);
    return b;
  },
};

function sized(bytes: Buffer): Buffer {
  const n = Buffer.alloc(4);
  n.writeUInt32LE(bytes.length, 0);
  return Buffer.concat([n, bytes]);
}
