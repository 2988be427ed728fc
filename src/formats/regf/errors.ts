import { ApplianceError } from '../../errors.js';

/** What every check of the hive throws: what is wrong, and the file offset where it was found. */
export function hiveError(fileOffset: number, what: string): ApplianceError {
  return new ApplianceError('EHIVE', `registry hive: ${what} (at file offset 0x${fileOffset.toString(16)})`);
}
