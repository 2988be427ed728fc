/** A host file's lstat as the image model's Entry: the one place metadata crosses from the host. */
import { isUtf8 } from 'node:buffer';
import { readlinkSync, type Stats } from 'node:fs';
import type { Entry, EntryType } from '../formats/entry.js';
import { ApplianceError } from '../errors.js';

/** The entry type of an lstat result; undefined for a type no image can hold. */
export function entryTypeOf(st: Stats): EntryType | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isBlockDevice()) return 'blockdev';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  return undefined;
}

/** glibc's major()/minor(): a 64-bit dev_t holds the major in bits 8-19 and 32-43, the minor in 0-7 and 20-31. */
export function devNumbers(rdev: number): { rdevMajor: number; rdevMinor: number } {
  const d = BigInt(rdev);
  return {
    rdevMajor: Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn)),
    rdevMinor: Number((d & 0xffn) | ((d >> 12n) & ~0xffn)),
  };
}

/** Bytes that are UTF-8 become a string (compact, fast to pass to syscalls); others stay bytes. */
export const textOrBytes = (bytes: Buffer): string | Buffer => (isUtf8(bytes) ? bytes.toString('utf8') : bytes);

/**
 * The Entry for the host file `hostPath` (already lstat'ed) at `path` in an image. A
 * symlink's target is read byte for byte; hard links are keyed by device and inode.
 * Times are mtime only: atime changes as a tree is read, so two reads would differ.
 * Each type is built as one object literal: a fixed shape keeps 100,000 entries compact.
 */
export function entryFromStat(path: string | Buffer, hostPath: string | Buffer, st: Stats): Entry {
  const type = entryTypeOf(st);
  if (!type) {
    throw new ApplianceError('EFILETYPE', `${hostPath.toString()} has a file type no image can hold (mode ${st.mode.toString(8)}): leave it out`);
  }
  const base = { path, type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) };
  let entry: Entry;
  if (type === 'file') entry = { ...base, size: st.size, source: { kind: 'host', path: hostPath } };
  else if (type === 'symlink') entry = { ...base, target: textOrBytes(readlinkSync(hostPath, { encoding: 'buffer' })) };
  else if (type === 'chardev' || type === 'blockdev') entry = { ...base, ...devNumbers(st.rdev) };
  else entry = base;
  if (type !== 'dir' && st.nlink > 1) entry.hardlinkKey = `${st.dev}:${st.ino}`;
  return entry;
}
