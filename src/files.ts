import { randomBytes, createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** The sha256 of a file's content, streamed (kernels and images are tens of MB). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Runs `write` on a fresh temporary path beside `path`, then renames it into place:
 * a reader sees the old file or the whole new one, never half of one, and a failure
 * (or a crash before the rename) leaves no file that looks complete.
 */
export async function replaceAtomically<T>(path: string, write: (tmp: string) => Promise<T>): Promise<T> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  try {
    const result = await write(tmp);
    await rename(tmp, path);
    return result;
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
