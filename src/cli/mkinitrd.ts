import type { Command } from 'commander';
import { action } from './common.js';

interface MkinitrdOptions {
  kernel?: string;
  modules?: string;
  init?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('mkinitrd')
    .description('Write the appliance initrd (newc cpio): the static init, the modules to reach the root disk, /modules.order')
    .argument('<output>', 'the initrd file to write')
    .option('--kernel <path>', 'kernel whose modules to use (default: $APPLIANCE_KERNEL, else the newest installed)')
    .option('--modules <names>', 'comma-separated modules to include with their dependencies, replacing the default list')
    .option('--init <path>', 'the static init binary to put at /init (default: the appliance init, built and cached)')
    .option('--json', 'print the result as JSON')
    .action(
      action(async (output: string, opts: MkinitrdOptions) => {
        const { makeInitrd } = await import('../appliance/initrd.js');
        const wanted = opts.modules
          ?.split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        const result = await makeInitrd({ output, kernel: opts.kernel, modules: wanted, init: opts.init });
        const { kernel } = result;
        const modules = result.modules.map((m) => m.name);
        if (opts.json) {
          process.stdout.write(
            `${JSON.stringify({ path: result.path, size: result.size, kernel: { path: kernel.path, version: kernel.version }, modules }, null, 2)}\n`,
          );
        } else {
          process.stdout.write(`${result.path}: ${result.size} bytes, kernel ${kernel.version}, modules: ${modules.join(' ') || '(none)'}\n`);
        }
      }),
    );
}
