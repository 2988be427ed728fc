/** What requests to the agent give back: a command's result, and the channel's errors. */
import { ApplianceError, type ErrorCode } from '../errors.js';

/** Why a command could not start (it then has exit code 127 or 126, as in a shell). */
export interface SpawnError {
  errno: number;
  /** The errno's name, e.g. ENOENT. */
  code: string;
  message: string;
}

export interface ExecResult {
  exitCode: number | null;
  /** Name of the signal that killed the command (e.g. SIGKILL), else null. */
  signal: string | null;
  /** Empty for execStream, whose output went to the streams. */
  stdout: Buffer;
  stderr: Buffer;
  durationMs: number;
  spawnError?: SpawnError;
}

/**
 * Errors of the guest channel. `code`: EAGENTGONE, ETIMEDOUT, EABORTED, EINPUT, ETOOBIG (more
 * than maxBuffer or maxBytes), EPROTO (the agent broke the protocol), or a guest errno name.
 */
export class AgentError extends ApplianceError {
  /** The guest's errno, for file errors. */
  readonly errno?: number;
  /** What a command that timed out, was aborted, went over maxBuffer or lost its agent had done so far. */
  result?: ExecResult;
  constructor(code: ErrorCode, message: string, extra: { errno?: number; cause?: unknown } = {}) {
    super(code, message, { cause: extra.cause });
    this.errno = extra.errno;
  }
}
