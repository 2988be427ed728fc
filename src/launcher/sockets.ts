/**
 * The one connection qemu makes to a unix socket we listen on (the guest channel, the
 * monitor, a saved state's stream): qemu dials us, so nothing waits for its sockets.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidAlive } from '../cache/lock.js';
import { ApplianceError } from '../errors.js';

const DIR_PREFIX = 'appliance-vm-';

/**
 * A private folder (0700, mkdtemp) for one launch's sockets: qemu dials the guest channel,
 * the monitor and a snapshot's state stream here. It holds nothing once the launch is over
 * (each socket file goes as its connection is made or given up), and is removed then.
 * Folders of launches whose process was killed before that (a signal, kill -9) are swept
 * here first: their names carry the creator's pid. In $TMPDIR, not the cache: a unix
 * socket's path must stay under 108 bytes.
 */
export async function socketFolder(): Promise<string> {
  const tmp = tmpdir();
  const names = await readdir(tmp).catch(() => [] as string[]);
  await Promise.all(
    names
      .filter((n) => n.startsWith(DIR_PREFIX))
      .filter((n) => {
        const pid = Number(n.slice(DIR_PREFIX.length).split('-')[0]);
        return Number.isInteger(pid) && pid > 0 && pid !== process.pid && !pidAlive(pid);
      })
      .map((n) => rm(join(tmp, n), { recursive: true, force: true })),
  );
  return mkdtemp(join(tmp, `${DIR_PREFIX}${process.pid}-`));
}

/**
 * Listens at `path` (a stale socket from a dead run is replaced) for the one connection
 * qemu makes; nobody else may attach once it has. `close` stops listening, removes the
 * socket file and, with `drop`, closes the connection too.
 */
export async function acceptOne(path: string, abandoned: AbortSignal): Promise<{ connection: Promise<Socket>; close: (drop: boolean) => Promise<void> }> {
  const server = await listen(path);
  let accepted: Socket | undefined;
  const connection = new Promise<Socket>((resolve, reject) => {
    server.once('connection', (s) => {
      accepted = s;
      server.close();
      resolve(s);
    });
    abandoned.addEventListener('abort', () => reject(new Error('given up before qemu connected')));
  });
  connection.catch(() => {});
  return {
    connection,
    close: async (drop) => {
      server.close();
      if (drop) accepted?.destroy();
      await rm(path, { force: true });
    },
  };
}

/** A fresh listening socket at `path` (a stale one from a dead run is replaced). */
async function listen(path: string): Promise<Server> {
  await rm(path, { force: true });
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(new ApplianceError('ECHANNEL', `cannot listen on ${path} (a socket qemu connects to): ${err.message}`, { cause: err })),
    );
    server.listen(path, resolve);
  });
  return server;
}
