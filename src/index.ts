// The library's public surface: boot and use appliances, build them, and the writers.
export {
  ApplianceError,
  DiskRefusedError,
  FilesystemError,
  ImageFileError,
  type DiskWords,
  type ErrorCode,
  type FilesystemWords,
  type GuestErrno,
} from './errors.js';
export { DISK_FORMATS } from './disk-formats.js';
export type { Entry, EntryType, ContentSource } from './formats/entry.js';
export { boot, Vm, prepare, type BootOptions, type BootTimings, type PrepareOptions, type VmDisk } from './vm/index.js';
export { AgentError, type ExecOptions, type ExecResult, type ExecStream, type ReadFileOptions, type ReadFileStreamOptions } from './agent/agent-client.js';
export type { Input as ExecInput } from './agent/exec.js';
export type { SpawnError } from './agent/results.js';
export { GuestDiedError } from './vm/guest-death.js';
export type { ExitStatus as QemuExitStatus } from './launcher/process.js';
export { BootError, detectDiskFormat, type DiskSpec, type DiskFormat, type Accel, type MachineName, type Attempt as BootAttempt } from './launcher/index.js';
export type { AccelChoice } from './launcher/accel.js';
export type { AttemptOutcome } from './launcher/attempt.js';
export { buildAppliance, type Appliance, type BuildOptions, type BuildProgress, type BuildRequest, type Manifest } from './appliance/index.js';
export { buildInitrd, type BuildInitrdOptions, type InitrdResult } from './appliance/initrd.js';
export { writeExt2, type Ext2Options, type Ext2Result } from './formats/ext2/index.js';
export { mkext2 } from './appliance/mkext2.js';
export { readNewc, writeNewc, type NewcRecord } from './formats/newc/index.js';
export { scanTree } from './host/scan.js';
export { findKernel, resolveModules, type KernelInfo, type FindKernelOptions, type ModuleInfo, type ModuleCompression } from './kernel/index.js';
export {
  inspect,
  diff,
  type DiffEntry,
  type DiffOptions,
  type DiffError,
  type DiffAttribute,
  Inspection,
  MountedFilesystem,
  OsTree,
  type FileTree,
  type Mount,
  type Unmounted,
  type InspectOptions,
  type FilesystemInfo,
  type Disk,
  type Partition,
  type VolumeReport,
  type LuksKeys,
  type OperatingSystem,
  type Deployment,
  type Distro,
  type FstabMount,
  type PackageFormat,
  type PackageManagement,
  type OsType,
  type Package,
  type FileStat,
  type FileType,
  type WalkError,
  type Lineage,
  type WalkOptions,
  type ReadFileOptions as ImageReadFileOptions,
  type WalkProgress,
  type CopyOutOptions,
  type CopyOutProgress,
  type CopyOutResult,
  type Name,
} from './inspect/index.js';
