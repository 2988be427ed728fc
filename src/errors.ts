/**
 * Every error the library throws on purpose is an ApplianceError with a stable `code`,
 * so callers (and the CLI) can branch on it and print one clear line instead of a stack.
 */
export class ApplianceError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}
