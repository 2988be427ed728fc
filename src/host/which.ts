import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

/**
 * Folders searched after $PATH: an ordinary user's PATH often lacks the sbin folders,
 * where blkid, sfdisk and mke2fs live, and the appliance runs as root.
 */
export const SYSTEM_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** The folders `findExecutable` searches, in order, without duplicates. */
export function executableSearchPath(envPath = process.env.PATH ?? ''): string[] {
  const dirs = envPath.split(delimiter).filter((d) => isAbsolute(d));
  for (const d of SYSTEM_PATH) if (!dirs.includes(d)) dirs.push(d);
  return dirs;
}

/** The first executable regular file called `name` in `dirs` (a name with a '/' is taken as a path). */
export function findExecutable(name: string, dirs: string[]): string | undefined {
  const candidates = name.includes('/') ? [name] : dirs.map((d) => join(d, name));
  for (const path of candidates) {
    try {
      const st = statSync(path);
      if (st.isFile() && st.mode & 0o111) return path;
    } catch {
      // not here: try the next folder
    }
  }
  return undefined;
}

/**
 * What a `#!` script needs besides itself: the interpreter, and for `#!/usr/bin/env prog`
 * the program env runs. Empty for anything else (ELF files are read elsewhere).
 */
export function scriptInterpreters(path: string): string[] {
  const head = Buffer.alloc(256);
  let n = 0;
  try {
    const fd = openSync(path, 'r');
    try {
      n = readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch {
    return [];
  }
  if (n < 3 || head[0] !== 0x23 || head[1] !== 0x21) return [];
  const end = head.subarray(0, n).indexOf(0x0a);
  const words = head
    .toString('utf8', 2, end < 0 ? n : end)
    .trim()
    .split(/\s+/)
    .filter(Boolean);
  const [interp, ...args] = words;
  if (!interp) return [];
  if (interp.endsWith('/env')) {
    // `env -S prog args` and `env prog`: the first word that is not an option is the program.
    const prog = args.find((a) => !a.startsWith('-'));
    return prog ? [interp, prog] : [interp];
  }
  return [interp];
}
