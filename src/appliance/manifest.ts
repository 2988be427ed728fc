import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MANIFEST } from '../cache/entries.js';
import { ApplianceError } from '../errors.js';
import type { BuildRequest } from './index.js';

/** What one appliance folder holds and how it was made: manifest.json. */
export interface Manifest {
  format: 1;
  /** Our package version. */
  version: string;
  key: string;
  /** ISO time the build finished, and how long it took. */
  created: string;
  buildMs: number;
  /** The options, normalized: what decides the output besides the host's files. */
  inputs: BuildRequest;
  kernel: { source: string; version: string; size: number; sha256: string };
  initrd: { size: number; sha256: string; modules: string[] };
  root: {
    /** Image size in bytes (the file is sparse), and its content: files and their bytes. */
    size: number;
    /**
     * The filesystem UUID, which the ext2 writer derives from a SHA-256 of the whole
     * tree (names, metadata, in-memory content, and each host file's size and mtime):
     * it identifies the image without reading back hundreds of megabytes after writing.
     */
    uuid: string;
    entries: number;
    files: number;
    contentBytes: number;
    modules: string[];
  };
  init: { hash: string; compiler: string };
  packages: { name: string; version: string; arch: string }[];
  binaries: { name: string; path: string }[];
  /** Host files left out because they could not be read. */
  skipped: string[];
}

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
