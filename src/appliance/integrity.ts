/**
 * Whether a cache entry's files are still what its build wrote. A hit compares each
 * file's inode, size and change time with what the manifest recorded (a stat: any write
 * changes the ctime, and no user can set it back); a difference, or --strict, compares
 * the content's sha256. An entry changed after its build is never booted.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { touchEntry } from '../cache/entries.js';
import { sha256File } from '../files.js';
import { applianceAt } from './manifest.js';
import type { Appliance, Manifest } from './types.js';

export const ENTRY_FILES = ['kernel', 'initrd', 'root.ext2'] as const;
export type EntryFile = (typeof ENTRY_FILES)[number];

async function stampOf(path: string): Promise<string> {
  const st = await stat(path);
  return `${st.ino}:${st.size}:${st.ctimeMs}`;
}

/** The stamps of an entry's files, as its build leaves them. */
export async function stampsOf(dir: string): Promise<Record<EntryFile, string>> {
  const stamps = await Promise.all(ENTRY_FILES.map((f) => stampOf(join(dir, f))));
  return Object.fromEntries(ENTRY_FILES.map((f, i) => [f, stamps[i]!])) as Record<EntryFile, string>;
}

function recordedHash(m: Manifest, file: EntryFile): string {
  return file === 'kernel' ? m.kernel.sha256 : file === 'initrd' ? m.initrd.sha256 : m.root.sha256;
}

/** Why the entry is not what its build wrote (a file and how), or undefined when it is. */
export async function entryChanged(a: Appliance, strict: boolean): Promise<string | undefined> {
  // Manifests from before integrity records: no way to tell, so the entry is not trusted.
  if (!a.manifest.stamps || !a.manifest.root.sha256) return 'its manifest records no stamps (an older build)';
  for (const file of ENTRY_FILES) {
    const path = join(a.dir, file);
    const stamp = await stampOf(path).catch(() => 'missing');
    if (stamp === 'missing') return `${file} is missing`;
    if (!strict && stamp === a.manifest.stamps[file]) continue;
    // Moved or copied (a restored backup), or --strict: the content decides.
    if ((await sha256File(path)) !== recordedHash(a.manifest, file)) return `${file} does not have the content its build wrote`;
  }
  return undefined;
}

/**
 * The entry for `key`, marked as used, if its files are still what its build wrote; one
 * that was changed is removed (and built again by the caller). Undefined also when
 * another process evicted it meanwhile.
 */
export async function verifiedHit(root: string, key: string, strict: boolean, warn: (msg: string) => void): Promise<Appliance | undefined> {
  const hit = await applianceAt(root, key, true).catch(() => undefined);
  if (!hit) return undefined;
  const changed = await entryChanged(hit, strict);
  if (changed) {
    warn(`cache entry ${hit.dir} was changed after its build (${changed}): building it again`);
    const { removeEntry } = await import('../cache/make-entry.js');
    await removeEntry(root, key);
    return undefined;
  }
  await touchEntry(root, key);
  return hit;
}
