import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Bytes a folder's files take on disk (allocated blocks: images and RAM files are sparse). */
export async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) {
    const st = await stat(join(dir, name));
    total += st.blocks * 512;
  }
  return total;
}
