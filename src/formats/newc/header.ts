/**
 * The newc ("new ASCII") cpio header: the magic and thirteen 8-digit hex fields, then the
 * NUL-terminated name padded to 4 bytes, then the data padded to 4 bytes
 * (Documentation/driver-api/early-userspace/buffer-format.rst; GNU cpio's -H newc).
 */
export const MAGIC = '070701';
/** The same layout with a checksum of the data in `check` (cpio -H crc); the kernel reads both. */
export const MAGIC_CRC = '070702';
export const HEADER_SIZE = 110;
export const TRAILER = 'TRAILER!!!';
export const MAX_FIELD = 0xffffffff;

/** The fields in header order (devMajor/devMinor: the file's own device, which we write as 0). */
export const FIELDS = ['ino', 'mode', 'uid', 'gid', 'nlink', 'mtime', 'size', 'devMajor', 'devMinor', 'rdevMajor', 'rdevMinor', 'namesize', 'check'] as const;

export interface Header {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  size: number;
  rdevMajor: number;
  rdevMinor: number;
  name: Buffer;
}

/** Padding that brings `n` to a multiple of 4. */
export const pad4 = (n: number): number => (4 - (n % 4)) % 4;
