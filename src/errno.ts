/**
 * Numbers the guest reports (errnos, signals) by name, as Node knows them: the guest is
 * Linux on x86-64, like the host these tables come from.
 */
import { constants as osConstants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import type { ErrorCode } from './errors.js';

function reverse(table: Record<string, number>): Map<number, string> {
  const map = new Map<number, string>();
  // First name wins: SIGABRT before its alias SIGIOT.
  for (const [name, num] of Object.entries(table)) if (!map.has(num)) map.set(num, name);
  return map;
}
export const signalNames = reverse(osConstants.signals as Record<string, number>);
/*
 * Node's errno table (libuv's) leaves out Linux's own numbers, among them what a corrupt
 * filesystem gives most (EUCLEAN, ext4's and xfs's "corrupted") and an encrypted file
 * without its key (ENOKEY): those are Linux x86-64's (asm-generic/errno.h), as the guest's.
 */
// prettier-ignore
const linuxOnly: Record<string, number> = {
  ENOTBLK: 15, ECHRNG: 44, EL2NSYNC: 45, EL3HLT: 46, EL3RST: 47, ELNRNG: 48, EUNATCH: 49,
  ENOCSI: 50, EL2HLT: 51, EBADE: 52, EBADR: 53, EXFULL: 54, ENOANO: 55, EBADRQC: 56, EBADSLT: 57,
  EBFONT: 59, ENONET: 64, ENOPKG: 65, EREMOTE: 66, EADV: 68, ESRMNT: 69, ECOMM: 70, EDOTDOT: 73,
  ENOTUNIQ: 76, EBADFD: 77, EREMCHG: 78, ELIBACC: 79, ELIBBAD: 80, ELIBSCN: 81, ELIBMAX: 82,
  ELIBEXEC: 83, ERESTART: 85, ESTRPIPE: 86, EUSERS: 87, ESOCKTNOSUPPORT: 94, EPFNOSUPPORT: 96,
  ESHUTDOWN: 108, ETOOMANYREFS: 109, EHOSTDOWN: 112, EUCLEAN: 117, ENOTNAM: 118, ENAVAIL: 119,
  EISNAM: 120, EREMOTEIO: 121, ENOMEDIUM: 123, EMEDIUMTYPE: 124, ENOKEY: 126, EKEYEXPIRED: 127,
  EKEYREVOKED: 128, EKEYREJECTED: 129, EOWNERDEAD: 130, ENOTRECOVERABLE: 131, ERFKILL: 132,
  EHWPOISON: 133,
};
const errnoNames = reverse({ ...(osConstants.errno as Record<string, number>), ...linuxOnly });

/** The guest's errno as our error code: its name (ENOENT…), or EGUEST for a number we do not know. */
export function errnoCode(errno: number): ErrorCode {
  return (errnoNames.get(errno) ?? 'EGUEST') as ErrorCode;
}

/*
 * What an errno means for a file read from an image. libuv's table (getSystemErrorMap)
 * has most names and plain meanings but not the ones a corrupt filesystem gives (EUCLEAN,
 * EBADMSG, ENODATA…); those say what they mean for an image.
 */
const MEANINGS: Record<string, string> = {
  EUCLEAN: 'structure needs cleaning (the filesystem is corrupt)',
  EBADMSG: 'bad message (the filesystem is corrupt: a checksum does not match)',
  EIO: 'input/output error (the image could not be read there: truncated or damaged)',
  ELOOP: 'too many levels of symbolic links (a symlink loop, or a folder linked into itself: a corrupt filesystem)',
  ENAMETOOLONG: 'file name too long',
  ENODATA: 'no data available (the filesystem is corrupt)',
  ESTALE: 'stale file handle (the filesystem is corrupt)',
  EOVERFLOW: 'value too large for its type',
  EFBIG: 'file too large',
  ENOENT: 'no such file or folder',
  ENOTDIR: 'not a folder',
  EISDIR: 'is a folder',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EINVAL: 'invalid argument (the filesystem is corrupt or the entry is not what it claims)',
  ENOMEM: 'out of memory in the appliance',
  E2BIG: 'argument list too long',
  ENOKEY: 'required key not available (the file is encrypted and its key is not loaded)',
  EKEYREJECTED: 'key was rejected',
  EKEYEXPIRED: 'key has expired',
  EKEYREVOKED: 'key has been revoked',
  EREMOTEIO: 'remote I/O error (the disk could not be read)',
  ENOMEDIUM: 'no medium found',
  EMEDIUMTYPE: 'wrong medium type',
  EHWPOISON: 'memory page has a hardware error',
  EBADE: 'invalid exchange',
  EBADR: 'invalid request descriptor',
  EBADFD: 'file descriptor in a bad state',
  ENOTBLK: 'block device required',
};

/** "CODE: meaning" for an errno, e.g. "EUCLEAN: structure needs cleaning (the filesystem is corrupt)". */
export function describeErrno(errno: number): string {
  const code = errnoNames.get(errno);
  if (!code) return `errno ${errno} (unknown to this host)`;
  const meaning = MEANINGS[code] ?? systemMeanings.get(-errno)?.[1];
  return meaning ? `${code}: ${meaning}` : code;
}
const systemMeanings = getSystemErrorMap();
