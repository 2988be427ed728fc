// inspect: what disk images hold — partitions, volumes, filesystems, operating systems — and their files, read-only, through an appliance VM.
export { inspect, Inspection, type FilesystemInfo, type InspectOptions } from './inspection.js';
export { MountedFilesystem, type Lineage, type ReadFileOptions, type WalkOptions, type WalkProgress } from './filesystem.js';
export type { CopyOutOptions, CopyOutProgress, CopyOutResult } from './copy-out.js';
export type { Disk, Partition } from './devices.js';
export type { OperatingSystem } from './os.js';
export type { Deployment } from './os/ostree.js';
export type { Distro, OsType, PackageFormat, PackageManagement } from './os/distros.js';
export type { FstabMount } from './os/systems.js';
export type { Package } from './packages.js';
export type { FileStat, FileType, WalkError } from './records.js';
export type { VolumeReport, LuksKeys } from './volumes.js';
export type { Name } from './probe/types.js';
export { diff, type Attribute as DiffAttribute, type DiffEntry, type DiffError, type DiffOptions } from './diff.js';
export { OsTree, type FileTree, type Mount, type Unmounted } from './os-tree.js';
