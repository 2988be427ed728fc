/**
 * Numbers the guest reports (errnos, signals) by name, as Node knows them: the guest is
 * Linux on x86-64, like the host these tables come from.
 */
import { constants as osConstants } from 'node:os';
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
