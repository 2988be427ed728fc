/**
 * What qemu opened for its disks, checked before the guest runs. disks.ts reads a user
 * image's header and refuses one that names other host files, but qemu reads the header
 * again itself: an image another process writes meanwhile, or a FUSE or NBD export that
 * answers each read differently, can then name a file qemu opens (a qcow2's external data
 * file, a vmdk's extents; a backing file cannot: "backing": null, argv.ts). So every node
 * of qemu's block graph must be one the command line made: the appliance's root by its
 * path, a user disk's image by its fd set, a placeholder. Anything else ends the run with
 * qemu killed before the guest has read a byte of it.
 */
import { ApplianceError, DiskRefusedError } from '../errors.js';
import type { QemuConfig } from './argv.js';
import type { Qmp } from './qmp.js';

/** Drivers that open a host file by the name they are given: their node's name must be one of ours. */
const FILE_DRIVERS: ReadonlySet<string> = new Set(['file', 'host_device', 'host_cdrom']);
/** Drivers that open nothing by name themselves (the image formats over their file node, and placeholders). */
const INNER_DRIVERS: ReadonlySet<string> = new Set(['raw', 'qcow2', 'qcow', 'qed', 'vmdk', 'vdi', 'vhdx', 'vpc', 'parallels', 'null-co']);

/** The files qemu may have open for this configuration; undefined when a disk's header is trusted (allowBackingFile: its chain is the caller's). */
function expectedFiles(c: QemuConfig): Set<string> | undefined {
  if (c.disks.some((d) => d.allowBackingFile) && !c.placeholderDisks) return undefined;
  return new Set([c.root, ...(c.placeholderDisks ? [] : c.disks.map((_, i) => `/dev/fdset/${i + 1}`))]);
}

/** Refuses (EDISKBACKING, naming the file) a block graph with a node the command line did not make. */
export async function checkBlockGraph(qmp: Qmp, c: QemuConfig): Promise<void> {
  const expected = expectedFiles(c);
  if (!expected) return;
  const nodes = await qmp.execute<{ drv: string; file: string; 'node-name': string }[]>('query-named-block-nodes', { flat: true });
  if (!Array.isArray(nodes)) throw new ApplianceError('EQMP', 'qemu answered query-named-block-nodes with something that is not a list');
  const stray = nodes.find((n) => (FILE_DRIVERS.has(n.drv) ? !expected.has(n.file) : !INNER_DRIVERS.has(n.drv)));
  if (!stray) return;
  const disks = c.disks.map((d) => d.path);
  const names = disks.join(', ');
  throw new DiskRefusedError(
    'EDISKBACKING',
    names,
    (w) =>
      `${disks.length > 1 ? `one of the disks ${names}` : `disk ${names}`} named ${JSON.stringify(stray.file)} (${stray.drv}) when qemu read its header, ` +
      `though it named no other file when it was checked (is another program writing the image, or serving it?): qemu opened that file ` +
      `and was stopped before the guest read anything; if you trust the image, give ${w.backing(disks[0] ?? '')}`,
  );
}
