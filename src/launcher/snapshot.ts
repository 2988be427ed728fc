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
 * the snapshot point).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, open, readFile, realpath, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { layout, removeAbandonedTemps, removeWhole, tempPath } from '../cache/store.js';
import { keepNewest } from '../files.js';
import { qemuArgv, type QemuConfig } from './argv.js';
import { acceptOne } from './sockets.js';
import type { Qmp } from './qmp.js';

/** Console lines of the init that the launcher acts on (mirrors of src/init-c/protocol.h, with the init's prefix). */
export const SNAPSHOT_MARKER = 'appliance-init: snapshot point: waiting for the go line';
/** Said instead when the guest must not be saved (e.g. its kernel probed the disks already); the reason follows. */
export const NO_SNAPSHOT_MARKER = 'appliance-init: snapshot point, not to be saved: ';
/** The kernel parameter that makes the init stop at its snapshot point. */
export const SNAPSHOT_PARAM = 'appliance.snapshot=1';

/** Snapshots kept: a few shapes (disk counts, memory sizes) side by side, ~85 MB each on disk. */
const KEEP = 4;

export interface Snapshot {
  key: string;
  dir: string;
  /** The guest's RAM at the snapshot point (sparse: as large as the guest's memory). */
  ram: string;
  /** qemu's device state (a migration stream without the RAM). */
  state: string;
}

/**
 * The line the init waits for at its snapshot point (init.c, apply_go): the host's wall
 * clock, 32 random bytes to credit and reseed the guest's generator, and whether to print
 * the boot timeline.
 */
export function goLine(timing: boolean, nowMs = performance.timeOrigin + performance.now()): string {
  const ns = BigInt(Math.round(nowMs * 1e6));
  const sec = ns / 1_000_000_000n;
  const nsec = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return `appliance.go realtime=${sec}.${nsec} seed=${randomBytes(32).toString('hex')} timing=${timing ? 1 : 0} end\n`;
}

function paths(dir: string, key: string): Snapshot {
  return { key, dir, ram: join(dir, 'ram'), state: join(dir, 'state') };
}

/**
 * The key of a boot's shape. `shape` is the boot's configuration with the kernel and the
 * initrd named by content and the root image by identity (the snapshot has it mounted);
 * the user disks' paths, the sockets and the RAM file do not matter.
 */
export async function snapshotKey(qemu: string, shape: QemuConfig): Promise<string> {
  const binary = await realpath(qemu);
  const st = await stat(binary);
  const neutral: QemuConfig = {
    ...shape,
    disks: shape.disks.map((d, i) => ({ path: `disk${i}`, format: 'raw', readonly: d.readonly })),
    channelSocket: 'agent',
    monitorSocket: undefined,
    ramFile: undefined,
  };
  const identity = { qemu: [binary, st.size, st.mtimeMs], cpu: cpus()[0]?.model ?? 'unknown', argv: qemuArgv(neutral) };
  return createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 32);
}

/** The snapshot for `key` if there is one (marked as just used, for pruning). */
export async function findSnapshot(cacheRoot: string, key: string): Promise<Snapshot | undefined> {
  const s = paths(join(layout.snapshots(cacheRoot), key), key);
  if (!existsSync(s.state)) return undefined;
  const now = new Date();
  await utimes(s.dir, now, now).catch(() => {});
  return s;
}

/** Deletes a snapshot that failed to restore (a concurrent restore keeps its mapping of the RAM file). */
export async function removeSnapshot(cacheRoot: string, key: string): Promise<void> {
  // Best effort: one left behind only costs its next boot a failed restore.
  await removeWhole(cacheRoot, join(layout.snapshots(cacheRoot), key), `evict-snapshot-${key}`).catch(() => {});
}

function unusableMark(cacheRoot: string, key: string): string {
  return join(layout.snapshots(cacheRoot), `${key}.unusable`);
}

/** Why snapshots of this shape do not work here (a save or a fresh restore failed), if they do not. */
export async function unusableReason(cacheRoot: string, key: string): Promise<string | undefined> {
  return readFile(unusableMark(cacheRoot, key), 'utf8').catch(() => undefined);
}

/** Remembers that this shape cannot be snapshotted here, so later boots do not pay for trying. */
export async function markUnusable(cacheRoot: string, key: string, reason: string): Promise<void> {
  await mkdir(layout.snapshots(cacheRoot), { recursive: true, mode: 0o700 });
  await writeFile(unusableMark(cacheRoot, key), reason);
}

/** A snapshot being made: its folder is private to this process until `commit`. */
export interface PendingSnapshot extends Snapshot {
  /** Renames the folder into place (or keeps one a concurrent boot made meanwhile). */
  commit(): Promise<Snapshot>;
  discard(): Promise<void>;
}

/** A snapshot is made in the cache's tmp/ (abandoned ones go as builds' do) and renamed into snapshots/. */
export async function prepareSnapshot(cacheRoot: string, key: string): Promise<PendingSnapshot> {
  const root = layout.snapshots(cacheRoot);
  await mkdir(root, { recursive: true, mode: 0o700 });
  await removeAbandonedTemps(cacheRoot);
  const tmp = await tempPath(cacheRoot, `snapshot-${key}`);
  await mkdir(tmp, { mode: 0o700 });
  const pending = paths(tmp, key);
  return {
    ...pending,
    commit: async () => {
      // The RAM was written through a mapping: make it durable before the name says it is complete.
      for (const file of [pending.ram, pending.state]) {
        const fh = await open(file, 'r+');
        await fh.sync().finally(() => fh.close());
      }
      const final = join(root, key);
      try {
        await rename(tmp, final);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
        await rm(tmp, { recursive: true, force: true });
      }
      await keepNewest(root, KEEP, (name) => /^[0-9a-f]{32}$/.test(name));
      return paths(final, key);
    },
    discard: () => rm(tmp, { recursive: true, force: true }),
  };
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
  await qmp.execute('migrate-incoming', { uri: `fd:${stateFd}` });
  await resumed;
}
