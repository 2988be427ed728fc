/**
 * The one connection qemu makes to a unix socket we listen on (the guest channel, the
 * monitor, a saved state's stream): qemu dials us, so nothing waits for its sockets.
 */
import { rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { ApplianceError } from '../errors.js';

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
