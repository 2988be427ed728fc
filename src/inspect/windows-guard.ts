/** Runs one reading of a Windows fact; what it throws becomes a line in `errors` (where, and why), and the caller goes on without that fact. */
export function guard<T>(errors: string[], where: string, read: () => T): T | undefined {
  try {
    return read();
  } catch (err) {
    errors.push(`${where}: ${(err as Error).message}`);
    return undefined;
  }
}
