/** `appliance prepare`: what a test suite runs once before its workers (the library's prepare()). */
import type { Command } from 'commander';
import { ACCEL_CHOICES } from '../vm/choices.js';
import { oneOf } from './boot.js';
import { ACCEL_OPTION, action, CACHE_DIR_OPTION } from './common.js';

export function register(program: Command): void {
  program
    .command('prepare')
    .description('Build the default appliance and save its snapshot (each only if missing), so that later boots and inspections start at once')
    .option(...ACCEL_OPTION)
    .option(...CACHE_DIR_OPTION)
    .option('--json', 'print the boot timings as JSON')
    .option('--verbose', 'explain each step on stderr')
    .action(
      action(async (opts: { accel: string; cacheDir?: string; json?: boolean; verbose?: boolean }) => {
        const { prepare } = await import('../vm/index.js');
        const t = await prepare({
          accel: oneOf('--accel', opts.accel, ACCEL_CHOICES),
          cacheDir: opts.cacheDir,
          log: opts.verbose ? (m) => process.stderr.write(`appliance: ${m}\n`) : undefined,
        });
        if (opts.json) process.stdout.write(`${JSON.stringify(t, null, 2)}\n`);
        else process.stdout.write(`ready: snapshot ${t.snapshot === 'none' ? 'not used (see --verbose)' : t.snapshot}, ${t.readyMs} ms\n`);
      }),
    );
}
