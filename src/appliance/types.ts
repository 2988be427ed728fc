/** The appliance's types: what a build is asked for, what it records, and what it gives back. */
import type { KeyInput } from './key.js';

export interface BuildProgress {
  /** Files and bytes of the root image written so far, of the totals. */
  files: number;
  totalFiles: number;
  bytes: number;
  totalBytes: number;
}

export interface BuildOptions {
  /** Debian packages, with their dependency closure. */
  packages?: string[];
  /** Programs found on $PATH, with the shared libraries they load. */
  binaries?: string[];
  /** Extra host files and folders; `guest` defaults to the host path. */
  includes?: { host: string; guest?: string }[];
  /** The kernel to boot (default: APPLIANCE_KERNEL, else the newest installed). */
  kernel?: string;
  /** Kernel modules for the root, loadable on demand (default: filesystems, see DEFAULT_ROOT_MODULES). */
  modules?: string[];
  /** The cache folder (default: see cacheRootPath). */
  cacheDir?: string;
  /** Key on file contents (sha256) instead of size, mtime and inode. */
  strict?: boolean;
  /** Files owned by root in the image whatever their owner on the host (default true). */
  squashOwner?: boolean;
  /** Explanations of each decision (--verbose). */
  log?: (msg: string) => void;
  /** Host files skipped and other things worth a look; default: a line on stderr. */
  warn?: (msg: string) => void;
  onProgress?: (p: BuildProgress) => void;
}

export interface Appliance {
  /** The cache entry folder holding the four files below. */
  dir: string;
  kernel: string;
  initrd: string;
  root: string;
  manifest: Manifest;
  key: string;
  cacheHit: boolean;
  kernelVersion: string;
}

/** The options reduced to what decides the output, in a canonical form (order-free lists sorted). */
export interface BuildRequest {
  packages: string[];
  binaries: string[];
  includes: { host: string; guest: string }[];
  modules: string[];
  kernel?: string;
  strict: boolean;
  squashOwner: boolean;
  sourceDateEpoch?: number;
}

/**
 * What a set of options resolved to last time: the entry's key, and the host paths
 * it was computed from. While none of those changed, the key is still right and
 * nothing needs resolving again (stat'ing the inputs is all a cache hit costs).
 */
export interface BuildRecord {
  version: string;
  key: string;
  /** The files that make the appliance, and the digest of their state. */
  inputs: KeyInput[];
  digest: string;
  /** What the resolution looked at (dpkg database, $PATH folders, …): a change means resolving again. */
  watch: KeyInput[];
  watchDigest: string;
}

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
    /** Of the image as written: what a hit checks it against (integrity.ts). */
    sha256: string;
    entries: number;
    files: number;
    contentBytes: number;
    modules: string[];
  };
  init: { hash: string; compiler: string };
  /** Each file's inode, size and change time when the build finished (integrity.ts). */
  stamps: Record<'kernel' | 'initrd' | 'root.ext2', string>;
  packages: { name: string; version: string; arch: string }[];
  binaries: { name: string; path: string }[];
  /** Host files left out because they could not be read. */
  skipped: string[];
}
