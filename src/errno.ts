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
const errnoNames = reverse(osConstants.errno as Record<string, number>);

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
  ELOOP: 'too many levels of symbolic links (a symlink loop)',
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
};

/** "CODE: meaning" for an errno, e.g. "EUCLEAN: structure needs cleaning (the filesystem is corrupt)". */
export function describeErrno(errno: number): string {
  const code = errnoNames.get(errno);
  if (!code) return `errno ${errno} (unknown to this host)`;
  const meaning = MEANINGS[code] ?? systemMeanings.get(-errno)?.[1];
  return meaning ? `${code}: ${meaning}` : code;
}
const systemMeanings = getSystemErrorMap();
