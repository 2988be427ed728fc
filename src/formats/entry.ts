/**
 * The file model shared by every image writer (ext2, newc cpio): one Entry per path.
 * Paths may be Buffers because host names need not be valid UTF-8, and such names
 * must reach the image byte for byte.
 */
export type EntryType = 'file' | 'dir' | 'symlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket';

/** Where a regular file's bytes come from: a host file (streamed) or a small in-memory buffer. */
export type ContentSource = { kind: 'host'; path: string | Buffer } | { kind: 'bytes'; data: Uint8Array };

export interface Entry {
  /** Path inside the image: '/'-separated, relative, no leading '/'; '' is the root directory. */
  path: string | Buffer;
  type: EntryType;
  /** Permission bits only (07777): the type comes from `type`. */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
  atime?: number;
  ctime?: number;
  /** Regular files: size in bytes (must match the source when it is read). */
  size?: number;
  /** Regular files: where the content comes from. */
  source?: ContentSource;
  /** Symlinks: the target, as stored. */
  target?: string | Buffer;
  /** Character and block devices. */
  rdevMajor?: number;
  rdevMinor?: number;
  /** Entries with the same key are one inode (hard links); for host files, `${dev}:${ino}`. */
  hardlinkKey?: string;
}

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

/** The entry type of a mode's S_IFMT bits; undefined for a type no image can hold. */
export function typeOfMode(mode: number): EntryType | undefined {
  const bits = mode & 0o170000;
  return (Object.keys(MODE_TYPE) as EntryType[]).find((t) => MODE_TYPE[t] === bits);
}
