import { createHash } from 'node:crypto';
import { lstatSync, statSync, type Stats } from 'node:fs';
import { sha256File } from '../files.js';

/**
 * A host path whose state decides a build's output. `lstat` for paths copied as they
 * are (a symlink stays a symlink), `stat` for inputs read through links (the kernel),
 * `watch` for paths whose every change, a folder's mtime included, means the inputs
 * must be found again (the dpkg database, the folders of $PATH).
 */
export interface KeyInput {
  path: string;
  kind: 'lstat' | 'stat' | 'watch';
}

/** Hex characters of a cache key: 128 bits, plenty against accidental collisions. */
export const KEY_LENGTH = 32;

function sha256(): ReturnType<typeof createHash> {
  return createHash('sha256');
}

function statOf(input: KeyInput): Stats | undefined {
  try {
    return input.kind === 'lstat' ? lstatSync(input.path) : statSync(input.path);
  } catch {
    return undefined;
  }
}

/**
 * One line per input: its metadata, and its identity. Without `strict` identity is
 * size, mtime and inode (a file replaced by rename gets a new inode even with the
 * same mtime); with `strict` it is the content's sha256, for hosts whose tools
 * preserve mtimes. Mode, owner and mtime are in both because the image stores them.
 * A folder counts by its mode and owner only: the image does not keep folder times
 * (see FileList.setFolderTimes), and its contents are inputs of their own.
 * The link count is not in it: the image's links are the inputs that share an inode
 * (their inode numbers say so), and a link made elsewhere (perf's build-id cache links
 * the libraries it profiled) changes nothing in the image.
 */
async function inputLine(input: KeyInput, st: Stats | undefined, strict: boolean): Promise<string> {
  if (!st) return `${input.kind} ${input.path} missing`;
  if (st.isDirectory() && input.kind !== 'watch') return `${input.kind} ${input.path} dir ${st.mode},${st.uid},${st.gid}`;
  const meta = [st.mode, st.uid, st.gid, st.size, st.mtimeMs, st.rdev].join(',');
  const identity = strict && st.isFile() ? await sha256File(input.path) : `ino=${st.ino}`;
  return `${input.kind} ${input.path} ${meta} ${identity}`;
}

/**
 * The digest of a set of inputs' current state. `known` supplies stats already taken
 * (the file list's lstat of every path), so a build does not stat everything twice;
 * a cache lookup passes nothing and stats afresh.
 */
export async function fingerprint(inputs: KeyInput[], strict: boolean, known?: Map<string, Stats>): Promise<string> {
  const hash = sha256();
  for (const input of inputs) {
    const st = (input.kind === 'lstat' ? known?.get(input.path) : undefined) ?? statOf(input);
    hash.update(await inputLine(input, st, strict));
    hash.update('\n');
  }
  return hash.digest('hex');
}

/** A key from a description of everything that is not a host file (options, versions) and the inputs' digest. */
export function deriveKey(description: unknown, digest: string): string {
  return sha256().update(JSON.stringify(description)).update('\n').update(digest).digest('hex').slice(0, KEY_LENGTH);
}
