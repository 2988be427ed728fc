// The library's public surface: boot and use appliances, build them, and the writers.
export { ApplianceError } from './errors.js';
export type { Entry, EntryType, ContentSource } from './tree/entry.js';
export { boot, Vm, type BootOptions, type BootTimings, type VmDisk } from './qemu/vm.js';
export { AgentError, type ExecOptions, type ExecResult, type ExecStream } from './qemu/agent-client.js';
export { BootError } from './qemu/launch.js';
export { detectDiskFormat, type DiskSpec, type DiskFormat } from './qemu/disk.js';
export { buildAppliance, type Appliance, type BuildOptions } from './build/index.js';
export { writeExt2, mkext2, type Ext2Options, type Ext2Result } from './ext2/index.js';
export { scanTree } from './tree/scan.js';
export { buildInitrd, findKernel, resolveModules, writeNewc } from './initrd/index.js';
