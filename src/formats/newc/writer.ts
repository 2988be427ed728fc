import { createReadStream, createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplianceError } from '../../errors.js';
import { replaceAtomically } from '../../files.js';
import type { Entry } from '../entry.js';
import { MODE_TYPE } from '../entry.js';
import { HEADER_SIZE, MAGIC, MAX_FIELD, pad4, TRAILER, type Header } from './header.js';

// Why our own encoder and not cpio-stream's pack({ format: 'newc' }) (read in
// node_modules/cpio-stream/lib/pack.js and newc.js, v1.4.3): it writes the name with
// Buffer#write (UTF-8) but puts the string's length in c_namesize, so any non-ASCII
// name corrupts the archive; it cannot take a name that is not valid UTF-8; its
// defaults turn 0 into something else (mtime 0 becomes "now", mode 0 becomes 0100644,
// ino 0 a counter), so archives are not reproducible without workarounds; it has no
// hard-link support (content must go with the last link and size 0 with the others);
// and its final padding slices a 512-byte buffer with a negative end once the archive
// passes 512 bytes. The newc format itself is 110 bytes of hex fields, so a small
// encoder is simpler than wrapping all of that. cpio-stream's extractor stays as one
// of the test oracles, next to GNU cpio and the kernel itself.

/**
 * The archive as a stream of chunks, for callers that pipe it on (e.g. to a compressor).
 * Entries come out in the order given, parents first being the caller's job. Only the
 * entries' metadata is held (hard links need the whole list to count their names);
 * contents are streamed from their host files.
 */
export async function* newcChunks(entries: Iterable<Entry> | AsyncIterable<Entry>): AsyncGenerator<Buffer> {
  const list: Entry[] = [];
  for await (const entry of entries) list.push(entry);

  // Inodes are numbered in order of first appearance so the same list gives the same bytes.
  // Hard links share one number; the kernel and GNU cpio take the content from the one
  // link whose size is not 0, which GNU cpio makes the last.
  const links = new Map<string, { ino: number; count: number; last: number }>();
  const inos: number[] = [];
  let nextIno = 1;
  list.forEach((entry, i) => {
    const key = linkKey(entry);
    const group = key === undefined ? undefined : links.get(key);
    if (group) {
      group.count++;
      group.last = i;
      inos.push(group.ino);
      return;
    }
    if (key !== undefined) links.set(key, { ino: nextIno, count: 1, last: i });
    inos.push(nextIno++);
  });

  for (const [i, entry] of list.entries()) {
    const key = linkKey(entry);
    const group = key === undefined ? undefined : links.get(key)!;
    const target = entry.type === 'symlink' ? toBytes(entry.target ?? '', entry) : undefined;
    const carriesData = entry.type === 'file' && (!group || group.last === i);
    const size = target ? target.length : carriesData ? fileSize(entry) : 0;
    yield encodeHeader(
      {
        ino: inos[i]!,
        mode: MODE_TYPE[entry.type] | (entry.mode & 0o7777),
        uid: entry.uid,
        gid: entry.gid,
        nlink: group ? group.count : entry.type === 'dir' ? 2 : 1,
        mtime: Math.floor(entry.mtime),
        size,
        rdevMajor: entry.rdevMajor ?? 0,
        rdevMinor: entry.rdevMinor ?? 0,
        name: entry.path.length === 0 ? Buffer.from('.') : toBytes(entry.path, entry),
      },
      entry,
    );
    if (target) yield target;
    else if (carriesData && size > 0) yield* content(entry, size);
    if (pad4(size)) yield Buffer.alloc(pad4(size));
  }

  yield encodeHeader({ ino: 0, mode: 0, uid: 0, gid: 0, nlink: 1, mtime: 0, size: 0, rdevMajor: 0, rdevMinor: 0, name: Buffer.from(TRAILER) }, undefined);
}

/**
 * Writes the archive to `out`: a path (written to a temporary file beside it and renamed
 * when complete, so a reader never sees half an archive) or a stream, which is ended.
 */
export async function writeNewc(entries: Iterable<Entry> | AsyncIterable<Entry>, out: string | NodeJS.WritableStream): Promise<{ bytes: number }> {
  let bytes = 0;
  async function* counted() {
    for await (const chunk of newcChunks(entries)) {
      bytes += chunk.length;
      yield chunk;
    }
  }
  if (typeof out !== 'string') {
    await pipeline(Readable.from(counted()), out);
    return { bytes };
  }
  await replaceAtomically(out, (tmp) => pipeline(Readable.from(counted()), createWriteStream(tmp, { flags: 'wx' })));
  return { bytes };
}

function encodeHeader(h: Header, entry: Entry | undefined): Buffer {
  const namesize = h.name.length + 1;
  // The name is NUL-terminated and padded so the data starts on a 4-byte boundary.
  const total = HEADER_SIZE + namesize + pad4(HEADER_SIZE + namesize);
  const buf = Buffer.alloc(total);
  const fields = [h.ino, h.mode, h.uid, h.gid, h.nlink, h.mtime, h.size, 0, 0, h.rdevMajor, h.rdevMinor, namesize, 0];
  let text = MAGIC;
  for (const value of fields) {
    if (!Number.isInteger(value) || value < 0 || value > MAX_FIELD) {
      throw new ApplianceError(
        'ENEWCFIELD',
        `${entry ? describe(entry) : 'the trailer'} has a value (${value}) that a newc header cannot hold (0 to 4294967295)`,
      );
    }
    text += value.toString(16).toUpperCase().padStart(8, '0');
  }
  buf.write(text, 0, 'latin1');
  h.name.copy(buf, HEADER_SIZE);
  return buf;
}

async function* content(entry: Entry, size: number): AsyncGenerator<Buffer> {
  const source = entry.source;
  if (!source) throw new ApplianceError('ENEWCSOURCE', `${describe(entry)} is a file of ${size} bytes with no source`);
  if (source.kind === 'bytes') {
    if (source.data.length !== size) throw sizeChanged(entry, size, String(source.data.length));
    yield Buffer.from(source.data.buffer, source.data.byteOffset, source.data.length);
    return;
  }
  let read = 0;
  for await (const chunk of createReadStream(source.path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    read += chunk.length;
    if (read > size) throw sizeChanged(entry, size, 'more');
    yield chunk;
  }
  if (read !== size) throw sizeChanged(entry, size, String(read));
}

function fileSize(entry: Entry): number {
  if (entry.size !== undefined) return entry.size;
  if (entry.source?.kind === 'bytes') return entry.source.data.length;
  throw new ApplianceError('ENEWCSOURCE', `${describe(entry)} is a file with no size`);
}

/** Hard links are grouped for the types the kernel links (not directories, not symlinks). */
function linkKey(entry: Entry): string | undefined {
  return entry.type === 'dir' || entry.type === 'symlink' ? undefined : entry.hardlinkKey;
}

function toBytes(value: string | Buffer, entry: Entry): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  if (bytes.includes(0)) throw new ApplianceError('ENEWCNAME', `${describe(entry)} has a NUL byte in its name or target`);
  return bytes;
}

function sizeChanged(entry: Entry, expected: number, got: string): ApplianceError {
  return new ApplianceError(
    'ENEWCSIZE',
    `${describe(entry)}: expected ${expected} bytes but its source has ${got}; ` + `did the file change while the archive was written? Run the command again`,
  );
}

function describe(entry: Entry): string {
  return `"${entry.path.toString()}"`;
}
