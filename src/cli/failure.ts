import { AllianceError } from '../alliance/errors.js';
import { EXIT, ProgramError } from '../errors.js';

/**
 * What a failed command exits with and says: a ProgramError its own code and message; an API call that
 * failed outright 6; anything else (a bug, a lost database connection mid-run) 4, because the work is
 * unfinished, with its message but without a stack unless --verbose.
 */
export function failureOf(err: unknown, verbose: boolean): { code: number; message: string } {
  const e = err as Error | undefined;
  if (err instanceof ProgramError) return { code: err.exitCode, message: err.message };
  // An API call that failed outright (unreachable, refused credentials, 5xx through every retry).
  if (err instanceof AllianceError) return { code: EXIT.apiUnavailable, message: err.message };
  const text = (e && typeof e.message === 'string' && e.message) || String(err);
  return {
    code: EXIT.unfinished,
    message: verbose && e?.stack ? e.stack : `unexpected error: ${text} (run with --verbose for details; \`payouts resume <batch>\` carries on a run)`,
  };
}
