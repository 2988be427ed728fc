// host: the host read as it is: installed packages (dpkg), ELF dependencies, programs on $PATH, folders and files as entries.
export { readDpkgDatabase, dependencyClosure, packageFiles } from './dpkg.js';
export { elfClosure, librarySearchDirs } from './elf.js';
export { executableSearchPath, findExecutable, scriptInterpreters } from './which.js';
export { scanTree } from './scan.js';
export { entryFromStat } from './stat.js';
