/**
 * prepare(): what a test suite's global setup calls once, before its workers start: the
 * default appliance built and its snapshot saved (each only if missing), so that no test
 * pays for them within its own timeout. Safe from many processes at once (the cache's
 * locks: one builds, one saves, the others wait and use what they made).
 */
import { boot, type BootOptions, type BootTimings } from './vm.js';

export type PrepareOptions = Pick<BootOptions, 'cacheDir' | 'accel' | 'machine' | 'memoryMb' | 'cpus' | 'qemu' | 'bootTimeoutMs' | 'log'>;

/** Boots the default appliance once with no disks (the snapshot serves boot() and inspect() with up to DISK_SLOTS disks) and powers it off. */
export async function prepare(opts: PrepareOptions = {}): Promise<BootTimings> {
  const vm = await boot(opts);
  try {
    return vm.timings;
  } finally {
    await vm.close();
  }
}
