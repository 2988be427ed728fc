// kernel: the host's kernel as a file: discovery, the bzImage header, module resolution, decompression, PVH extraction.
export { readKernelVersion, readSetupHeader } from './bzimage.js';
export { findKernel, compareVersions, type KernelInfo, type FindKernelOptions } from './find.js';
export { APPLIANCE_MODULES, moduleName, resolveModules, type ModuleInfo, type ModuleCompression } from './modules.js';
export { moduleIndexes } from './depmod.js';
export { compressionOf, decompress, type Compression } from './decompress.js';
export { extractVmlinux, hasPvhEntry, kernelShape } from './pvh.js';
