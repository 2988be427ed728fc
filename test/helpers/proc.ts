import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Running, as opposed to gone or a zombie waiting for whoever inherited it to reap it. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Pids of live processes whose command line holds `text` (a qemu by a path or a parameter of its own). */
export function processesNaming(text: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'latin1').includes(text) && alive(Number(p));
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** A command's end as spawnSync gives it: its status (null when a signal ended it) and output. */
export interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command without blocking the worker (spawnSync would): a worker blocked past
 * vitest's RPC timeout (60 s) fails the whole run (see stall-watch.ts).
 */
export function run(cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; timeout?: number } = {}): Promise<Ran> {
  return new Promise((done) => {
    const child = execFile(cmd, args, { ...opts, encoding: 'utf8', maxBuffer: 64 << 20 }, (_err, stdout, stderr) =>
      done({ status: child.exitCode, stdout, stderr }),
    );
  });
}
