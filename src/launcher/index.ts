// launcher: qemu and nothing else: its command line, machine, accelerator, disks, process, sockets, monitor, snapshots, and the order of attempts.
export { BOOT_LIMITS, checkNumber, launch, BootError, type Attempt, type LaunchOptions, type Launched, type ReadyContext } from './launch.js';
export { closeDisks, detectDiskFormat, diskSpecs, openDisks, type DiskFormat, type DiskSpec, type OpenDisk } from './disks.js';
export type { Accel } from './accel.js';
export type { MachineName } from './machine.js';
export { abortError } from './attempt.js';
