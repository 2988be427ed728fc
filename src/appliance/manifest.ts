/** manifest.json: what one appliance folder holds and how it was made; and the Appliance of a cache entry. */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MANIFEST } from '../cache/entries.js';
import { layout } from '../cache/layout.js';
import { ApplianceError } from '../errors.js';
import type { Appliance, Manifest } from './types.js';

export async function writeManifest(dir: string, manifest: Manifest): Promise<void> {
  await writeFile(join(dir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
}

export async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, MANIFEST);
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Manifest;
  } catch (err) {
    throw new ApplianceError('EMANIFEST', `cannot read ${path} (${(err as Error).message}): delete the folder, or run "appliance cache clear"`, {
      cause: err,
    });
  }
}

/** The Appliance for an existing entry. */
export async function applianceAt(root: string, key: string, cacheHit: boolean): Promise<Appliance> {
  const dir = layout.entry(root, key);
  const manifest = await readManifest(dir);
  return {
    dir,
    kernel: join(dir, 'kernel'),
    initrd: join(dir, 'initrd'),
    root: join(dir, 'root.ext2'),
    manifest,
    key,
    cacheHit,
    kernelVersion: manifest.kernel.version,
  };
}
