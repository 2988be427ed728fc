/**
 * Snapshots of a booted kernel. Under TCG the kernel's boot is most of a boot (about
 * 1.3 s of 1.7 here); it is the same every time, so it is done once and saved:
 *
 * - The init stops at its snapshot point (appliance.snapshot=1, init.c await_go): the
 *   kernel booted, the root disk and the guest channel bound, the root mounted; the user
 *   disks not bound yet, so nothing of the user's is in the saved memory.
 * - The first boot of a given shape runs with its RAM in a file (memory-backend-file,
 *   shared); at the marker the launcher stops it and saves the device state through the
 *   monitor with x-ignore-shared (the RAM is the file, not copied into the stream). The
 *   file and the state are renamed into `<cache>/snapshots/KEY/` whole.
 * - Later boots map that file privately (copy-on-write: the guest never changes it, and
 *   concurrent VMs share its pages) and load the 50 KB state: the guest runs again at
 *   the snapshot point within ~0.15 s of qemu's start.
 * - Then the launcher sends the go line: the wall clock and a fresh random seed, so that
 *   restored VMs neither live in the past nor share random numbers.
 *
 * The key covers everything the saved guest depends on: qemu (binary and version), the
 * host CPU, and the qemu command line with the kernel and the initrd by content, the root
 * image by identity, and the user disks by count and read-only flag (they are read after
 * the snapshot point). Where snapshots are kept is the cache's business (cache/snapshots.ts);
 * which runs make and use them, snapshot-boot.ts.
 */
import { diskSlots } from '../guest/contract.js';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { cpus } from 'node:os';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Snapshot } from '../cache/snapshots.js';
import { qemuArgv, type QemuConfig } from './argv.js';
import { qemuIdentity } from './binary.js';
import { QmpError, type Qmp } from './qmp.js';
import { acceptOne } from './sockets.js';

/**
 * The key of a boot's shape. `shape` is the boot's configuration with the kernel and the
 * initrd named by content and the root image by identity (the snapshot has it mounted);
 * the user disks' paths, the sockets and the RAM file do not matter.
 */
export function snapshotKey(qemu: string, shape: QemuConfig): string {
  const neutral: QemuConfig = {
    ...shape,
    // The disks by their slots only: the one snapshot serves any number up to DISK_SLOTS, read-only or not.
    disks: [],
    diskSlots: diskSlots(shape.disks.length),
    placeholderDisks: true,
    channelSocket: 'agent',
    monitorSocket: undefined,
    ramFile: undefined,
  };
  const identity = { qemu: qemuIdentity(qemu), cpu: cpus()[0]?.model ?? 'unknown', argv: qemuArgv(neutral) };
  return createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 32);
}

/**
 * Saves a guest stopped at its snapshot point: its RAM is already the pending snapshot's
 * file (shared), so only the device state is written. qemu streams it into a connection
 * to `socket` (a path we listen on), so the state is known complete when that stream
 * ends, not merely handed to a pipe.
 */
export async function saveState(qmp: Qmp, pending: Snapshot, socket: string): Promise<void> {
  const giveUp = new AbortController();
  const stream = await acceptOne(socket, giveUp.signal);
  try {
    const written = stream.connection.then((conn) => pipeline(conn, createWriteStream(pending.state)));
    written.catch(() => {});
    await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: true }] });
    await qmp.execute('stop');
    await qmp.execute('migrate', { uri: `unix:${socket}` });
    const deadline = performance.now() + 30_000;
    for (;;) {
      const r = await qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
      if (r.status === 'completed') break;
      if (r.status === 'failed' || r.status === 'cancelled') throw new Error(`saving the state failed: ${r['error-desc'] ?? r.status}`);
      if (performance.now() > deadline) throw new Error(`saving the state took more than 30 s (status ${r.status})`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      written,
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("qemu did not close the saved state's stream")), 10_000))),
    ]).finally(() => clearTimeout(timer));
  } finally {
    giveUp.abort();
    await stream.close(true);
  }
}

/**
 * Loads a snapshot's device state into a qemu started with `-incoming defer` and the
 * snapshot's RAM file, with the state file open as its fd `stateFd`; resolves when the
 * guest runs again.
 */
export async function restoreState(qmp: Qmp, stateFd: number): Promise<void> {
  await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: true }] });
  const resumed = qmp.nextEvent('RESUME');
  // A monitor that closes fails both; the command's error is the one told.
  resumed.catch(() => {});
  await qmp.execute('migrate-incoming', { uri: `fd:${stateFd}` });
  // A load that fails leaves qemu paused, not gone: the state did not load, or it did and
  // the disks could not be activated (one another qemu holds for writing cannot be locked),
  // and qemu does not start the guest. Asked, not waited out until the deadline.
  let done = false;
  const failed = (async () => {
    let pausedAfterLoad = 0;
    while (!done) {
      const info = await qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
      if (info.status === 'failed') throw new QmpError(`the saved state did not load: ${info['error-desc'] ?? 'qemu says the migration failed'}`);
      const running = info.status === 'completed' && (await qmp.execute<{ running?: boolean }>('query-status')).running;
      if (info.status === 'completed' && !running && ++pausedAfterLoad >= 4)
        throw new QmpError('the saved state loaded, but qemu did not start the guest (a disk it could not take, see its messages)');
      await sleep(50);
    }
  })();
  failed.catch(() => {});
  try {
    await Promise.race([resumed, failed]);
  } finally {
    done = true;
  }
}
