export { readKernelVersion } from './bzimage.js';
export { findKernel, compareVersions, type KernelInfo, type FindKernelOptions } from './find.js';
export { APPLIANCE_MODULES, moduleName, resolveModules, type ModuleInfo, type ModuleCompression } from './modules.js';
export { newcChunks, writeNewc } from '../formats/newc/writer.js';
export { buildInitrd, type BuildInitrdOptions, type InitrdResult } from '../appliance/initrd.js';
