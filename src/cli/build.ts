import { formatSize } from '../units.js';
import type { Command } from 'commander';
import { action, CACHE_DIR_OPTION, usageError } from './common.js';
import { progressLine } from './progress.js';

interface BuildCliOptions {
  packages?: string[];
  binaries?: string[];
  include: string[];
  kernel?: string;
  modules?: string[];
  strict?: boolean;
  json?: boolean;
  verbose?: boolean;
  cacheDir?: string;
}

/** `a,b` and repeated options both add to the list. */
function commaList(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  ];
}

function repeat(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `HOST[:GUEST]`; a host path holding ':' can be written with an explicit guest path after the last ':'. */
export function parseInclude(spec: string): { host: string; guest?: string } {
  const colon = spec.lastIndexOf(':');
  if (colon < 0) return { host: spec };
  const host = spec.slice(0, colon);
  const guest = spec.slice(colon + 1);
  if (!host || !guest.startsWith('/')) {
    throw usageError(`--include "${spec}": write HOST_PATH or HOST_PATH:/GUEST/PATH (the guest path is absolute)`);
  }
  return { host, guest };
}

export function register(program: Command): void {
  program
    .command('build')
    .description("Build the appliance (kernel, initrd, root.ext2, manifest.json) from the host's files, or find it in the cache; prints its folder")
    .option('--packages <names>', 'Debian packages to include with their dependencies (comma-separated, repeatable)', commaList)
    .option('--binaries <names>', 'programs on $PATH to include with their shared libraries (comma-separated, repeatable)', commaList)
    .option('--include <host[:guest]>', 'an extra host file or folder, optionally at another guest path (repeatable)', repeat, [])
    .option('--kernel <path>', 'kernel to boot (default: $APPLIANCE_KERNEL, else the newest installed)')
    .option('--modules <names>', 'kernel modules for the root, loadable on demand (comma-separated; replaces the default filesystem list)', commaList)
    .option('--strict', 'key the cache on file contents (sha256) instead of size, mtime and inode')
    .option(...CACHE_DIR_OPTION)
    .option('--json', 'print the result as JSON')
    .option('--verbose', 'explain each decision on stderr')
    .addHelpText(
      'after',
      '\nWith no --packages, --binaries or --include, builds the default appliance: a shell, core utilities,\n' +
        'mount, blkid, lsblk, sfdisk, e2fsprogs, find, tar, with the filesystem modules.',
    )
    .action(
      action(async (opts: BuildCliOptions) => {
        const { buildAppliance } = await import('../appliance/index.js');
        const progress = opts.verbose ? undefined : progressLine();
        const started = performance.now();
        let appliance;
        try {
          appliance = await buildAppliance({
            packages: opts.packages,
            binaries: opts.binaries,
            includes: opts.include.map(parseInclude),
            kernel: opts.kernel,
            modules: opts.modules,
            strict: opts.strict,
            cacheDir: opts.cacheDir,
            log: opts.verbose ? (msg) => process.stderr.write(`appliance: ${msg}\n`) : undefined,
            onProgress: progress
              ? (p) =>
                  progress.update(
                    () => `root.ext2: ${p.files}/${p.totalFiles} files, ${formatSize(p.bytes)} of ${formatSize(p.totalBytes)}`,
                    p.files === p.totalFiles,
                  )
              : undefined,
          });
        } finally {
          progress?.done();
        }
        if (opts.verbose) {
          const m = appliance.manifest;
          process.stderr.write(
            `appliance: ${appliance.cacheHit ? 'cache hit' : 'built'} in ${Math.round(performance.now() - started)} ms: ` +
              `${m.root.files} files, ${formatSize(m.root.contentBytes)} of content, kernel ${appliance.kernelVersion}\n`,
          );
        }
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(appliance, null, 2)}\n`);
        } else {
          process.stdout.write(`${appliance.dir}\n`);
        }
      }),
    );
}
