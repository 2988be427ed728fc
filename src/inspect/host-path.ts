/**
 * Host paths longer than one system call takes (PATH_MAX, 4096 bytes), as a copy of a deep
 * tree makes them. Node has no openat, so such a path is reached a piece at a time: each
 * piece's folder is opened from the one before through /proc/self/fd/N, and the call is
 * given the short rest below the last. Only one descriptor is held at a time.
 */
import { closeSync, constants, openSync } from 'node:fs';
import { ApplianceError } from '../errors.js';

/** Pieces stay well below PATH_MAX, with room for "/proc/self/fd/N/". */
const PIECE = 3072;
const SLASH = 0x2f;

const through = (fd: number | undefined, rest: Buffer) => (fd === undefined ? rest : Buffer.concat([Buffer.from(`/proc/self/fd/${fd}/`), rest]));

/** Runs `use` with a path to `path` that a system call takes, however long `path` is. */
export async function reach<T>(path: Buffer, use: (short: Buffer) => T | Promise<T>): Promise<T> {
  if (path.length < PIECE) return use(path);
  let fd: number | undefined;
  let rest = path;
  try {
    while (rest.length >= PIECE) {
      const cut = rest.lastIndexOf(SLASH, PIECE);
      if (cut <= 0) throw new ApplianceError('ENAMETOOLONG', `${path.toString('utf8', 0, 200)}…: a name of more than ${PIECE} bytes`);
      // Every folder on the way is one the copy made (never a symlink it was given).
      const next = openSync(through(fd, rest.subarray(0, cut)), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
      if (fd !== undefined) closeSync(fd);
      fd = next;
      rest = rest.subarray(cut + 1);
    }
    return await use(through(fd, rest));
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
