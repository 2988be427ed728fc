/** Cache entries as a cache hit sees them: present or not, and used. Making and removing them: make-entry.ts. */
import { existsSync } from 'node:fs';
import { utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { layout } from './layout.js';

/** The file whose presence marks an entry as complete (written last, before the rename). */
export const MANIFEST = 'manifest.json';

/** True when the entry exists: entries only ever appear whole, by rename. */
export function entryExists(root: string, key: string): boolean {
  return existsSync(join(layout.entry(root, key), MANIFEST));
}

/** Marks an entry as just used, for LRU eviction (its folder's mtime is its last use). */
export async function touchEntry(root: string, key: string): Promise<void> {
  const now = new Date();
  await utimes(layout.entry(root, key), now, now).catch(() => {});
}
