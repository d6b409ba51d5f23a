/**
 * Named points a payout passes through, for crash testing (issue 4). A hook may throw `CrashError` to
 * simulate the process dying right there: the runner then drops everything it holds in memory and
 * aborts its in-flight requests, exactly as a killed process would, and the database is all that remains.
 */
export const CRASH_POINTS = [
  /** ready -> submitting committed (intent), nothing sent yet. */
  'intent_committed',
  /** The request is on the wire; the server may or may not execute it. */
  'request_sent',
  /** The API answered; the answer is not yet committed. */
  'response_received',
  /** The outcome of the send is committed. */
  'outcome_committed',
  /** A poll moved the row to a final state. */
  'finalized',
] as const;

export type CrashPoint = (typeof CRASH_POINTS)[number];

export type CrashHook = (point: CrashPoint, orderId: string) => void;

export class CrashError extends Error {
  constructor(readonly point: CrashPoint, readonly orderId: string) {
    super(`simulated crash at ${point} (${orderId})`);
    this.name = 'CrashError';
  }
}

/** A hook that crashes at the `nth` (1-based) time `point` is reached. */
export function crashAt(point: CrashPoint, nth = 1): CrashHook {
  let seen = 0;
  return (p, orderId) => {
    if (p === point && ++seen === nth) throw new CrashError(p, orderId);
  };
}

/** In a child process: crash with a real SIGKILL at the chosen point (PAYOUTS_CRASH_AT=point:n). */
export function crashHookFromEnv(spec: string | undefined): CrashHook | undefined {
  if (!spec) return undefined;
  const [point, nthText] = spec.split(':');
  if (!CRASH_POINTS.includes(point as CrashPoint)) throw new Error(`unknown crash point ${point}: one of ${CRASH_POINTS.join(', ')}`);
  const nth = Number(nthText ?? '1');
  let seen = 0;
  return (p) => {
    if (p === point && ++seen === nth) process.kill(process.pid, 'SIGKILL');
  };
}
