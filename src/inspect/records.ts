/**
 * The inspect helper's outputs (src/guest/c/inspect.c): key=value lines with %XX escapes,
 * length-prefixed byte ranges, and walk records. Every length is checked against what is
 * left and against a bound, so a helper run on a hostile filesystem (or a guest that lies)
 * gives EPROTO, never an oversized buffer or a thrown RangeError.
 */
import { isUtf8 } from 'node:buffer';
import { ApplianceError } from '../errors.js';
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

export type FileType = 'file' | 'dir' | 'symlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket';
const TYPES: Record<string, FileType> = { f: 'file', d: 'dir', l: 'symlink', c: 'chardev', b: 'blockdev', p: 'fifo', s: 'socket' };

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
}

const PATH_MAX = 4096;
/** The largest data extent the helper sends at once (inspect.c put_content). */
const EXTENT_MAX = 64 * 1024;
const END_OF_FILE = 0xffffffffffffffffn;
const DEFERRED = 0xfffffffffffffffen;

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
 * record or extent (each bounded: PATH_MAX-sized names, EXTENT_MAX-sized data), so a walk
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
    if ('errno' in r) return { kind: 'error', error: r };
    if (this.content && r.type === 'file') this.inFile = true;
    return { kind: 'entry', stat: r };
  }

  private extent(c: Cursor): WalkEvent {
    const offset = c.u64big();
    if (offset === DEFERRED) {
      this.inFile = false;
      return { kind: 'deferred' };
    }
    if (offset === END_OF_FILE) {
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

function decodeRecord(c: Cursor): FileStat | WalkError {
  const tag = c.u8();
  if (tag === 0x58 /* X */) {
    const errno = c.i32();
    return { errno, path: nameOf(c.sized(PATH_MAX, 'a path')) };
  }
  if (tag !== 0x45 /* E */) throw malformed(`a record tagged 0x${tag.toString(16)}`);
  const type = TYPES[String.fromCharCode(c.u8())];
  if (!type) throw malformed('an unknown file type');
  const mode = c.u32() & 0o7777;
  const [uid, gid, nlink] = [c.u32(), c.u32(), c.u32()];
  const [size, blocks, ino] = [c.u64(), c.u64(), c.u64()];
  const rdev = { major: c.u32(), minor: c.u32() };
  const time = () => c.i64() + c.u32() / 1e9;
  const [atime, mtime, ctime] = [time(), time(), time()];
  const path = nameOf(c.sized(PATH_MAX, 'a path'));
  const target = c.sized(PATH_MAX, 'a symlink target');
  const hashed = c.u8();
  const sha256 = hashed ? c.bytes(32).toString('hex') : undefined;
  const stat: FileStat = { path, type, mode, uid, gid, nlink, size, allocated: blocks * 512, ino, atime, mtime, ctime };
  if (type === 'chardev' || type === 'blockdev') stat.rdev = rdev;
  if (type === 'symlink') stat.target = nameOf(target);
  if (sha256) stat.sha256 = sha256;
  return stat;
}
