/**
 * Lists a host folder as entries: lstat-based (symlinks are kept, never followed), names
 * read as bytes so names that are not UTF-8 survive (as Buffer paths), hard links keyed
 * by device and inode.
 * Times are mtime only (atime changes as the tree is read, which would make two scans differ).
 */
import type { Stats } from 'node:fs';
import { lstatSync, readdirSync } from 'node:fs';
import { ApplianceError, type ErrorCode } from '../errors.js';
import type { Entry } from '../formats/entry.js';
import { entryFromStat, textOrBytes } from './stat.js';

/** How long the scan may hold the event loop before yielding. */
const YIELD_MS = 50;
const SLASH = Buffer.from('/');

/** Paths stay strings while every name in them is UTF-8 (compact, and fast to pass to syscalls); below a name that is not, they are Buffers. */
type HostPath = string | Buffer;

function joinPath(dir: HostPath, name: HostPath): HostPath {
  if (typeof dir === 'string' && typeof name === 'string') return dir === '' ? name : `${dir}/${name}`;
  const d = typeof dir === 'string' ? Buffer.from(dir) : dir;
  const n = typeof name === 'string' ? Buffer.from(name) : name;
  return d.length === 0 ? n : Buffer.concat([d, SLASH, n]);
}

/**
 * Every path under `dir` ('' for `dir` itself), depth first with each folder's names in
 * byte order. The calls are synchronous (an lstat from the dentry cache costs far less
 * than a thread-pool round trip), with a yield to the event loop every few milliseconds.
 */
export async function scanTree(dir: string | Buffer): Promise<Entry[]> {
  const root = typeof dir === 'string' ? dir : textOrBytes(dir);
  let rootStat: Stats;
  try {
    rootStat = lstatSync(root);
  } catch (err) {
    throw scanError('ESOURCEDIR', root, err, 'give an existing folder');
  }
  if (!rootStat.isDirectory()) {
    throw new ApplianceError('ESOURCEDIR', `${root.toString()} is not a folder: give the folder to put in the image`);
  }
  const entries: Entry[] = [entry('', root, rootStat)];
  const dirs: HostPath[] = [''];
  let lastYield = performance.now();
  while (dirs.length > 0) {
    const rel = dirs.pop()!;
    const absDir = rel.length === 0 ? root : joinPath(root, rel);
    let names: Buffer[];
    try {
      names = readdirSync(absDir, { encoding: 'buffer' });
    } catch (err) {
      throw scanError('ESOURCEREAD', absDir, err, 'make it readable or leave it out');
    }
    names.sort(Buffer.compare);
    const subdirs: HostPath[] = [];
    for (const name of names) {
      const relPath = joinPath(rel, textOrBytes(name));
      const abs = joinPath(root, relPath);
      let st: Stats;
      try {
        st = lstatSync(abs);
      } catch (err) {
        throw scanError('ESOURCEREAD', abs, err, 'make it readable or leave it out');
      }
      entries.push(entry(relPath, abs, st));
      if (st.isDirectory()) subdirs.push(relPath);
    }
    // Depth first, in name order.
    for (let i = subdirs.length - 1; i >= 0; i--) dirs.push(subdirs[i]!);
    if (performance.now() - lastYield >= YIELD_MS) {
      await new Promise((resolve) => setImmediate(resolve));
      lastYield = performance.now();
    }
  }
  return entries;
}

function scanError(code: ErrorCode, path: HostPath, err: unknown, fix: string): ApplianceError {
  return new ApplianceError(code, `cannot read ${path.toString()}: ${(err as Error).message}: ${fix}`, { cause: err });
}

function entry(path: HostPath, abs: HostPath, st: Stats): Entry {
  try {
    return entryFromStat(path, abs, st);
  } catch (err) {
    if (err instanceof ApplianceError) throw err;
    throw scanError('ESOURCEREAD', abs, err, 'make it readable or leave it out');
  }
}
