/**
 * The kernel qemu boots: the bzImage's vmlinux with its PVH entry when there is one
 * (kernel/pvh.ts extracts it), cached by the bzImage's hash in the cache's vmlinux/.
 */
import { mkdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { layout } from '../cache/layout.js';
import { keepNewest, putInPlace, tempPath } from '../cache/temp.js';
import { sha256File } from '../files.js';
import { extractVmlinux, kernelShape, NO_PVH_ENTRY } from '../kernel/pvh.js';

/** Extracted kernels kept: the current one and the one before a kernel upgrade. */
const KEEP = 2;

/**
 * The uncompressed kernel with a PVH entry for `kernel` (a bzImage, or already an ELF),
 * extracted on first use; undefined when it has no PVH entry or its payload cannot be
 * extracted, and the caller boots the bzImage. `kernelSha256`, when the caller knows it
 * (an appliance's manifest does), saves hashing the kernel on every boot.
 */
export async function pvhKernel(
  kernel: string,
  cacheRoot: string,
  log: (message: string) => void = () => {},
  kernelSha256?: string,
): Promise<string | undefined> {
  const shape = await kernelShape(kernel);
  if (shape.kind === 'elf') return shape.pvh ? kernel : undefined;
  if (shape.kind === 'other') {
    log(`vmlinux: ${kernel} is ${shape.why}: booting it as is`);
    return undefined;
  }
  const dir = layout.vmlinux(cacheRoot);
  const hash = kernelSha256 ?? (await sha256File(kernel));
  const elf = join(dir, `${hash}.elf`);
  const noPvh = join(dir, `${hash}.no-pvh`);
  const now = new Date();
  if (
    await utimes(elf, now, now).then(
      () => true,
      () => false,
    )
  )
    return elf;
  if (
    await stat(noPvh).then(
      () => true,
      () => false,
    )
  )
    return undefined;

  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = await tempPath(cacheRoot, `vmlinux-${hash}`);
  let why: string | undefined;
  try {
    why = await extractVmlinux(kernel, shape.payload, tmp);
    if (!why) await putInPlace(tmp, elf);
  } finally {
    await rm(tmp, { force: true });
  }
  if (why) {
    log(`vmlinux: cannot use the payload of ${kernel} (${why}): booting the bzImage`);
    if (why === NO_PVH_ENTRY) await writeFile(noPvh, '');
    return undefined;
  }
  await keepNewest(cacheRoot, dir, KEEP, (name) => name.endsWith('.elf'));
  log(`vmlinux: extracted ${kernel} to ${elf}`);
  return elf;
}
