/**
 * Reads a newc archive back as records (metadata + a content reader), with positional
 * reads so that no file is held in memory whole: for the initrd's own round-trip tests,
 * and for anyone inspecting an initramfs. Every field is checked against the file's
 * bounds, so a damaged or hostile archive gives one clear error, not a hang or a huge buffer.
 */
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { ApplianceError } from '../../errors.js';
import { typeOfMode, type Entry } from '../entry.js';
import { FIELDS, HEADER_SIZE, MAGIC, MAGIC_CRC, pad4, TRAILER } from './header.js';

/** Longest name and symlink target a Linux path can have (PATH_MAX). */
const PATH_MAX = 4096;

export interface NewcRecord {
  /**
   * The entry the header describes: its path ('' for "."; a Buffer when the name is not
   * UTF-8), type, permissions, owner, mtime, size (regular files: the bytes this header
   * carries, 0 on all but the last of a set of hard links), target (symlinks), device
   * numbers, and `hardlinkKey` (the inode number as text) when the inode has other names.
   */
  entry: Entry;
  ino: number;
  nlink: number;
  /** The data this header carries (a regular file's content), streamed from the archive. */
  content(): Readable;
}

/** The records of the archive at `path`, in order, up to its trailer. */
export async function* readNewc(path: string): AsyncGenerator<NewcRecord> {
  const fh = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
    throw new ApplianceError('ENEWCFORMAT', `cannot read cpio archive ${path}: ${err.code ?? err.message}`, { cause: err });
  });
  try {
    const size = (await fh.stat()).size;
    let at = 0;
    for (;;) {
      const { fields, name, dataAt } = await readHeader(fh, path, at, size);
      if (name.toString('latin1') === TRAILER) return;
      const end = dataAt + fields.size;
      if (end > size) throw formatError(path, at, `its data (${fields.size} bytes) runs past the end of the archive`);
      yield await record(fh, path, fields, name, dataAt, at);
      at = end + pad4(fields.size);
    }
  } finally {
    await fh.close();
  }
}

type Fields = Record<(typeof FIELDS)[number], number>;

async function readHeader(fh: FileHandle, path: string, at: number, size: number): Promise<{ fields: Fields; name: Buffer; dataAt: number }> {
  if (at + HEADER_SIZE > size) throw formatError(path, at, 'the archive ends before its trailer');
  const head = Buffer.alloc(HEADER_SIZE);
  await fh.read(head, 0, HEADER_SIZE, at);
  const magic = head.toString('latin1', 0, 6);
  if (magic !== MAGIC && magic !== MAGIC_CRC) throw formatError(path, at, `no newc magic (found "${printable(magic)}")`);
  const fields = {} as Fields;
  FIELDS.forEach((field, i) => {
    const text = head.toString('latin1', 6 + i * 8, 14 + i * 8);
    if (!/^[0-9a-fA-F]{8}$/.test(text)) throw formatError(path, at, `field ${field} is not hexadecimal ("${printable(text)}")`);
    fields[field] = parseInt(text, 16);
  });
  if (fields.namesize < 1 || fields.namesize > PATH_MAX + 1) throw formatError(path, at, `a name of ${fields.namesize} bytes`);
  if (at + HEADER_SIZE + fields.namesize > size) throw formatError(path, at, 'its name runs past the end of the archive');
  const nameBytes = Buffer.alloc(fields.namesize);
  await fh.read(nameBytes, 0, fields.namesize, at + HEADER_SIZE);
  if (nameBytes[fields.namesize - 1] !== 0) throw formatError(path, at, 'its name does not end with a NUL byte');
  const name = nameBytes.subarray(0, fields.namesize - 1);
  if (name.includes(0)) throw formatError(path, at, 'its name holds a NUL byte');
  return { fields, name, dataAt: at + HEADER_SIZE + fields.namesize + pad4(HEADER_SIZE + fields.namesize) };
}

async function record(fh: FileHandle, path: string, f: Fields, name: Buffer, dataAt: number, at: number): Promise<NewcRecord> {
  const type = typeOfMode(f.mode);
  if (!type) throw formatError(path, at, `mode ${f.mode.toString(8)} is no file type`);
  const text = name.toString('utf8');
  const entryPath = name.equals(Buffer.from('.')) ? '' : Buffer.from(text, 'utf8').equals(name) ? text.replace(/^\.\//, '') : name;
  const entry: Entry = { path: entryPath, type, mode: f.mode & 0o7777, uid: f.uid, gid: f.gid, mtime: f.mtime };
  if (type === 'file') entry.size = f.size;
  if (type === 'chardev' || type === 'blockdev') Object.assign(entry, { rdevMajor: f.rdevMajor, rdevMinor: f.rdevMinor });
  if (type === 'symlink') {
    if (f.size > PATH_MAX) throw formatError(path, at, `a symlink target of ${f.size} bytes`);
    const target = Buffer.alloc(f.size);
    await fh.read(target, 0, f.size, dataAt);
    entry.target = Buffer.from(target.toString('utf8'), 'utf8').equals(target) ? target.toString('utf8') : target;
  }
  if (type !== 'dir' && f.nlink > 1) entry.hardlinkKey = String(f.ino);
  const content = () => (f.size === 0 ? emptyStream() : createReadStream(path, { start: dataAt, end: dataAt + f.size - 1 }));
  return { entry, ino: f.ino, nlink: f.nlink, content };
}

function emptyStream(): Readable {
  return createReadStream('/dev/null');
}

const printable = (s: string) => s.replace(/[^\x20-\x7e]/g, '?');

function formatError(path: string, at: number, why: string): ApplianceError {
  return new ApplianceError('ENEWCFORMAT', `${path} is not a valid newc cpio archive: the header at byte ${at}: ${why}`);
}
