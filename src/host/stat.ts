import type { Stats } from 'node:fs';
import type { EntryType } from '../formats/entry.js';

/** The S_IFMT bits of st_mode for each entry type: the same in ext2 inodes and newc headers. */
export const MODE_TYPE: Record<EntryType, number> = {
  file: 0o100000,
  dir: 0o040000,
  symlink: 0o120000,
  chardev: 0o020000,
  blockdev: 0o060000,
  fifo: 0o010000,
  socket: 0o140000,
};

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
