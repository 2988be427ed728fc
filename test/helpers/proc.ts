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
