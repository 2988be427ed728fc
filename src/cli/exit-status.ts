import { ImageFileError, type ApplianceError, type ErrorCode } from '../errors.js';

/** The CLI's own exit statuses (README "Exit status"); a command's status passes through as it is. */
export const EXIT = {
  /** A command failed for a reason the error names. */
  failure: 1,
  /** The command line is wrong. */
  usage: 2,
  /** A bug: a stack trace follows. */
  internal: 70,
  /** Our stdout was closed by its reader: as a program killed by SIGPIPE (13). */
  brokenPipe: 141,
  /** `boot`: the command ran longer than --timeout and was killed. */
  timeout: 124,
  /** `boot`: the appliance could not be built or booted, or died. */
  bootFailed: 125,
} as const;

/** The one table from error codes to exit statuses; codes not in it take the command's failure status. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  EUSAGE: EXIT.usage,
  EBADSIZE: EXIT.usage,
  EBADOPTION: EXIT.usage,
  EINVAL: EXIT.usage,
  E2BIG: EXIT.usage,
  ETIMEDOUT: EXIT.timeout,
  ENOQEMU: EXIT.bootFailed,
  ENOKVM: EXIT.bootFailed,
  EQEMU: EXIT.bootFailed,
  EQMP: EXIT.bootFailed,
  ECHANNEL: EXIT.bootFailed,
  EBOOTTIMEOUT: EXIT.bootFailed,
  EBOOTFAILED: EXIT.bootFailed,
  EGUESTDIED: EXIT.bootFailed,
  EAGENTGONE: EXIT.bootFailed,
  EPROTO: EXIT.bootFailed,
  ETOOBIG: EXIT.failure,
  EDISKACCESS: EXIT.bootFailed,
  EDISKFORMAT: EXIT.bootFailed,
  EDISKBACKING: EXIT.bootFailed,
  EDISKOPEN: EXIT.bootFailed,
};

/** The exit status for an error of a command whose other failures exit with `failure`. */
export function exitStatus(err: ApplianceError, failure: number): number {
  // A file of the image that cannot be read is the command's failure, whatever its errno's name.
  if (err instanceof ImageFileError) return failure;
  return STATUS[err.code] ?? failure;
}
