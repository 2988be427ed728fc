import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { replaceAtomically } from '../files.js';
import { layout } from './layout.js';

/** Reads a small JSON record, undefined if absent or unreadable (a record is only a shortcut). */
export async function readRecord<T>(root: string, id: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(layout.record(root, id), 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Writes a record atomically, so a reader sees the old one or the new one, never half of one. */
export async function writeRecord(root: string, id: string, value: unknown): Promise<void> {
  await mkdir(layout.records(root), { recursive: true, mode: 0o700 });
  const path = layout.record(root, id);
  await replaceAtomically(path, (tmp) => writeFile(tmp, JSON.stringify(value)));
}
