// newc: the cpio format the kernel unpacks as its initramfs: a writer (reproducible, hard links, any name bytes) and a reader.
export { newcChunks, writeNewc } from './writer.js';
export { readNewc, type NewcRecord } from './reader.js';
