export { readKernelVersion } from './bzimage.js';
export { findKernel, compareVersions, type KernelInfo, type FindKernelOptions } from './kernel.js';
export { APPLIANCE_MODULES, moduleName, resolveModules, type ModuleInfo, type ModuleCompression } from './modules.js';
export { newcChunks, writeNewc } from './newc.js';
export { buildInitrd, type BuildInitrdOptions, type InitrdResult } from './mkinitrd.js';
