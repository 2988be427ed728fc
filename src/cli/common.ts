import { ApplianceError } from '../errors.js';

/** Exit codes the CLI documents (README "Exit codes"). Command status passes through as-is. */
export const EXIT = {
  usage: 2,
  failure: 1,
} as const;

/**
 * Wraps a command's action: an ApplianceError becomes one line on stderr, anything else
 * (a bug) keeps its stack so it can be reported.
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void>) {
  return async (...args: A): Promise<void> => {
    try {
      const code = await fn(...args);
      if (typeof code === 'number') process.exitCode = code;
    } catch (err) {
      if (err instanceof ApplianceError) {
        process.stderr.write(`appliance: ${err.message}\n`);
        process.exitCode = (err as ApplianceError & { exitCode?: number }).exitCode ?? EXIT.failure;
      } else {
        process.stderr.write(`appliance: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
        process.exitCode = 70;
      }
    }
  };
}

/** A mistake in the command line: one line on stderr and exit status 2. */
export function usageError(message: string): ApplianceError {
  return Object.assign(new ApplianceError('EUSAGE', message), { exitCode: EXIT.usage });
}

/** Progress goes to stderr only when a person is watching it. */
export function progressEnabled(): boolean {
  return Boolean(process.stderr.isTTY);
}

/** Parses sizes like 64M, 1G, 4096, 512k (binary units). */
export function parseSize(text: string): number {
  const m = /^(\d+)([kKmMgGtT]?)(i?[bB])?$/.exec(text.trim());
  if (!m) throw new ApplianceError('EBADSIZE', `bad size "${text}": use a number of bytes, optionally with K, M, G or T`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Number(m[1]) * mult;
}
