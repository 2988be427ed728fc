import { writeExt2, type Ext2Options, type Ext2Result } from '../formats/ext2/index.js';
import { scanTree } from '../host/scan.js';

/** `appliance mkext2`: scans `sourceDir` and writes it as an ext2 image at `output`; the folder's own metadata goes to the root. */
export async function mkext2(sourceDir: string | Buffer, output: string, opts: Ext2Options = {}): Promise<Ext2Result> {
  return writeExt2(await scanTree(sourceDir), output, opts);
}
