/**
 * Lists a host folder as entries: lstat-based (symlinks are kept, never followed), names
 * read as bytes so names that are not UTF-8 survive (as Buffer paths), hard links keyed
 * by device and inode.
 * Times are mtime only (atime changes as the tree is read, which would make two scans differ).
 */
import { isUtf8 } from 'node:buffer';
import type { Stats } from 'node:fs';
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { ApplianceError } from '../errors.js';
import type { Entry, EntryType } from '../formats/entry.js';
import { devNumbers, entryTypeOf } from './stat.js';

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

const text = (bytes: Buffer): HostPath => (isUtf8(bytes) ? bytes.toString('utf8') : bytes);

/**
 * Every path under `dir` ('' for `dir` itself), depth first with each folder's names in
 * byte order. The calls are synchronous (an lstat from the dentry cache costs far less
 * than a thread-pool round trip), with a yield to the event loop every few milliseconds.
 */
export async function scanTree(dir: string | Buffer): Promise<Entry[]> {
  const root = typeof dir === 'string' ? dir : text(dir);
  let rootStat: Stats;
  try {
    rootStat = lstatSync(root);
  } catch (err) {
    throw scanError('ESOURCEDIR', root, err, 'give an existing folder');
  }
  if (!rootStat.isDirectory()) {
    throw new ApplianceError('ESOURCEDIR', `${root.toString()} is not a folder: give the folder to put in the image`);
  }
  const entries: Entry[] = [entryFor('', root, rootStat)];
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
      const relPath = joinPath(rel, text(name));
      const abs = joinPath(root, relPath);
      let st: Stats;
      try {
        st = lstatSync(abs);
      } catch (err) {
        throw scanError('ESOURCEREAD', abs, err, 'make it readable or leave it out');
      }
      entries.push(entryFor(relPath, abs, st));
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

/** Each entry is built as one object literal per type: a fixed shape keeps 100,000 of them compact. */
function entryFor(path: HostPath, abs: HostPath, st: Stats): Entry {
  const type = entryType(st, abs);
  const mode = st.mode & 0o7777;
  const mtime = Math.floor(st.mtimeMs / 1000);
  let entry: Entry;
  if (type === 'file') {
    entry = { path, type, mode, uid: st.uid, gid: st.gid, mtime, size: st.size, source: { kind: 'host', path: abs } };
  } else if (type === 'symlink') {
    let target: Buffer;
    try {
      target = readlinkSync(abs, { encoding: 'buffer' });
    } catch (err) {
      throw scanError('ESOURCEREAD', abs, err, 'make it readable or leave it out');
    }
    entry = { path, type, mode, uid: st.uid, gid: st.gid, mtime, target: text(target) };
  } else if (type === 'chardev' || type === 'blockdev') {
    const { rdevMajor, rdevMinor } = devNumbers(st.rdev);
    entry = { path, type, mode, uid: st.uid, gid: st.gid, mtime, rdevMajor, rdevMinor };
  } else {
    entry = { path, type, mode, uid: st.uid, gid: st.gid, mtime };
  }
  if (type !== 'dir' && st.nlink > 1) entry.hardlinkKey = `${st.dev}:${st.ino}`;
  return entry;
}

function entryType(st: Stats, abs: HostPath): EntryType {
  const type = entryTypeOf(st);
  if (!type) throw new ApplianceError('ESOURCEREAD', `${abs.toString()} has an unknown file type (mode ${st.mode.toString(8)})`);
  return type;
}

function scanError(code: string, path: HostPath, err: unknown, fix: string): ApplianceError {
  return new ApplianceError(code, `cannot read ${path.toString()}: ${(err as Error).message}: ${fix}`, { cause: err });
}
