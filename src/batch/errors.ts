/**
 * A problem with the input as a whole (file missing, not CSV, header unusable): nothing in it can be
 * trusted row by row. The CLI maps it to exit code 2 ("fix your input"); row-level problems are never
 * thrown, they are collected on the row.
 */
export class InputError extends Error {
  /** Exit-code hint for the CLI. */
  readonly code = 2 as const;
  override readonly name = 'InputError';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
