/**
 * Images made by the real tools (lvm, mdadm, cryptsetup, mkfs) where this host cannot run
 * them (it has no device-mapper): a shell script run in an appliance VM with the images
 * attached, `writable` ones read-write (disk0, disk1, …), then `readable` ones read-only.
 */
import { boot } from '../../src/vm/index.js';
import { SHARED_CACHE } from './shared-cache.js';

/**
 * Shell functions the scripts have: `lvm_ CMD ARGS…` (lvm quiet, without the udev the
 * appliance has not, creating its device nodes itself) and `disk N` (disk N's device).
 */
const FUNCTIONS = `lvm_() { c=$1; shift; lvm "$c" -q --config 'devices { obtain_device_list_from_udev = 0 } activation { udev_sync = 0 udev_rules = 0 verify_udev_operations = 1 }' "$@"; }
disk() { echo "/dev/$(basename "$(readlink -f /dev/disk/by-id/virtio-disk$1)")"; }
`;

export async function inGuest(script: string, writable: string[], readable: string[] = []): Promise<void> {
  const disks = [...writable.map((path) => ({ path, readonly: false })), ...readable.map((path) => ({ path, readonly: true }))];
  const vm = await boot({ cacheDir: SHARED_CACHE, disks: disks.map((d) => ({ ...d, format: 'raw' as const })) });
  try {
    const r = await vm.exec(['sh', '-c', `set -eu\n${FUNCTIONS}${script}`], { env: { LVM_SYSTEM_DIR: '' } });
    if (r.exitCode !== 0) throw new Error(`in the guest: status ${r.exitCode}: ${r.stderr.toString()}${r.stdout.toString()}`);
  } finally {
    await vm.close();
  }
}
