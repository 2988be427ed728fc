import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { execa } from 'execa';
import { ApplianceError } from '../errors.js';
import type { ModuleCompression } from './modules.js';

const TOOLS = {
  xz: { command: 'xz', package: 'xz-utils (Fedora: xz)' },
  zst: { command: 'zstd', package: 'zstd' },
} as const;

/**
 * Writes the uncompressed module to `dest`, streaming: the initrd must hold plain .ko
 * files because kernels without CONFIG_MODULE_DECOMPRESS (Debian 12's) cannot load
 * compressed ones, and the init loads them with finit_module as they are.
 */
export async function decompressModule(
  hostPath: string,
  compression: Exclude<ModuleCompression, 'none'>,
  dest: string,
): Promise<void> {
  const fail = (err: unknown) =>
    new ApplianceError('EMODULEREAD', `cannot decompress module ${hostPath}: ${(err as Error).message}`, { cause: err });
  if (compression === 'gz') {
    await pipeline(createReadStream(hostPath), createGunzip(), createWriteStream(dest)).catch((err) => {
      throw fail(err);
    });
    return;
  }
  const tool = TOOLS[compression];
  try {
    await execa(tool.command, ['-dcq', '--', hostPath], { stdin: 'ignore', stdout: { file: dest } });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ApplianceError(
        'ENOTOOL',
        `${tool.command} is needed to decompress ${hostPath} but is not installed: install the ${tool.package} package`,
        { cause: err },
      );
    }
    throw fail(err);
  }
}
