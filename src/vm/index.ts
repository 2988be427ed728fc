// vm: the public runtime API: boot() an appliance and use it as a Vm (commands, files, timings), built on the launcher and the agent client.
export { boot, callSignal, Vm, type BootOptions, type BootTimings, type VmDisk } from './vm.js';
export { checkNumber, detectDiskFormat, diskSpecs, type DiskFormat, type DiskSpec } from '../launcher/index.js';
export { prepare, type PrepareOptions } from './prepare.js';
