// The library's public surface: boot and use appliances, build them, and the writers.
export { ApplianceError, ImageFileError, type ErrorCode } from './errors.js';
export type { Entry, EntryType, ContentSource } from './formats/entry.js';
export { boot, Vm, prepare, type BootOptions, type BootTimings, type PrepareOptions, type VmDisk } from './vm/index.js';
export { AgentError, type ExecOptions, type ExecResult, type ExecStream, type ReadFileOptions, type ReadFileStreamOptions } from './agent/agent-client.js';
export { GuestDiedError } from './vm/guest-death.js';
export { BootError, detectDiskFormat, type DiskSpec, type DiskFormat } from './launcher/index.js';
export { buildAppliance, type Appliance, type BuildOptions } from './appliance/index.js';
export { buildInitrd } from './appliance/initrd.js';
export { writeExt2, type Ext2Options, type Ext2Result } from './formats/ext2/index.js';
export { mkext2 } from './appliance/mkext2.js';
export { readNewc, writeNewc, type NewcRecord } from './formats/newc/index.js';
export { scanTree } from './host/scan.js';
export { findKernel, resolveModules } from './kernel/index.js';
export {
  inspect,
  diff,
  type DiffEntry,
  type DiffOptions,
  Inspection,
  MountedFilesystem,
  OsTree,
  type FileTree,
  type Mount,
  type InspectOptions,
  type FilesystemInfo,
  type Disk,
  type Partition,
  type VolumeReport,
  type LuksKeys,
  type OperatingSystem,
  type Package,
  type FileStat,
  type FileType,
  type WalkError,
  type WalkOptions,
  type WalkProgress,
  type CopyOutOptions,
  type CopyOutProgress,
  type CopyOutResult,
  type Name,
} from './inspect/index.js';
