// formats: the image model (Entry) and the on-disk formats written from it: ext2 and newc cpio, each with its structures in files of their own.
export { MODE_TYPE, typeOfMode, type ContentSource, type Entry, type EntryType } from './entry.js';
export { writeExt2, type Ext2Options, type Ext2Result } from './ext2/index.js';
export { readNewc, writeNewc, newcChunks, type NewcRecord } from './newc/index.js';
