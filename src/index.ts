// The library's public surface: boot and use appliances, build them, and the writers.
export { ApplianceError } from './errors.js';
export type { Entry, EntryType, ContentSource } from './formats/entry.js';
export { boot, Vm, type BootOptions, type BootTimings, type VmDisk } from './vm/vm.js';
export { AgentError, type ExecOptions, type ExecResult, type ExecStream } from './guest/agent-client.js';
export { BootError } from './launcher/launch.js';
export { detectDiskFormat, type DiskSpec, type DiskFormat } from './launcher/disks.js';
export { buildAppliance, type Appliance, type BuildOptions } from './appliance/index.js';
export { writeExt2, mkext2, type Ext2Options, type Ext2Result } from './formats/ext2/index.js';
export { scanTree } from './host/scan.js';
export { buildInitrd, findKernel, resolveModules, writeNewc } from './kernel/index.js';
