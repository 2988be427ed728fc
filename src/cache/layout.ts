import { join } from 'node:path';

/**
 * Every tenant of a cache folder, in one place:
 *   entries/KEY/       complete appliances (kernel, initrd, root.ext2, manifest.json)
 *   snapshots/KEY/     booted kernels saved by the launcher (ram, state); KEY.unusable says why a shape has none
 *   vmlinux/HASH.elf   kernels extracted for PVH boot, named by their bzImage's sha256
 *   init/HASH/         the compiled init and agent, named by their sources and compiler
 *   resolve/ID.json    records: what a set of build options resolved to, the accelerator verdict…
 *   locks/KEY.lock     one builder per entry
 *   code/cli-HASH.v8   V8's code cache of the CLI's bundle (src/bin.cts, which names this folder itself)
 *   tmp/LABEL.PID.R    everything being made or deleted: it appears in place whole, by rename
 */
export const layout = {
  entries: (root: string) => join(root, 'entries'),
  entry: (root: string, key: string) => join(root, 'entries', key),
  snapshots: (root: string) => join(root, 'snapshots'),
  snapshot: (root: string, key: string) => join(root, 'snapshots', key),
  unusable: (root: string, key: string) => join(root, 'snapshots', `${key}.unusable`),
  vmlinux: (root: string) => join(root, 'vmlinux'),
  init: (root: string) => join(root, 'init'),
  records: (root: string) => join(root, 'resolve'),
  record: (root: string, id: string) => join(root, 'resolve', `${id}.json`),
  locks: (root: string) => join(root, 'locks'),
  lock: (root: string, key: string) => join(root, 'locks', `${key}.lock`),
  tmp: (root: string) => join(root, 'tmp'),
  code: (root: string) => join(root, 'code'),
};

/** The folders `appliance cache clear` empties: all but the locks of builders that may be running. */
export const CLEARED: readonly ('entries' | 'snapshots' | 'vmlinux' | 'init' | 'records' | 'tmp' | 'code')[] = [
  'entries',
  'snapshots',
  'vmlinux',
  'init',
  'records',
  'tmp',
  'code',
];
