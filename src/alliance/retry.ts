import { AllianceError, RateLimitError } from './errors.js';

/** Backoff settings. Defaults suit a payroll run: patient, but never hammering the API. */
export interface BackoffOptions {
  /** First delay in ms. Default 500. */
  baseMs?: number;
  /** Cap on any one delay in ms. Default 30000. */
  maxMs?: number;
  /** Attempts after the first. Default 5. */
  retries?: number;
  /** 0..1 random source for jitter; injectable for tests. */
  random?: () => number;
}

export type RetryDecision = { retry: false; reason: string } | { retry: true; delayMs: number; reason: string };

/**
 * Whether to send the same request again, in order (after stripe-node's RequestSender._shouldRetry):
 * out of retries -> no; not an API error -> no; ambiguous -> no (the caller must ask status first);
 * not retryable -> no; server hint (Retry-After) wins; otherwise exponential backoff with full jitter.
 */
export function retryDecision(err: unknown, attempt: number, opts: BackoffOptions = {}): RetryDecision {
  const retries = opts.retries ?? 5;
  if (attempt > retries) return { retry: false, reason: `gave up after ${attempt} attempts` };
  if (!(err instanceof AllianceError)) return { retry: false, reason: 'not an API error' };
  if (err.ambiguous) return { retry: false, reason: 'outcome unknown: resolve by status first' };
  if (!err.retryable) return { retry: false, reason: `${err.type} is final` };
  if (err instanceof RateLimitError && err.retryAfterMs !== undefined) {
    return { retry: true, delayMs: Math.min(err.retryAfterMs, opts.maxMs ?? 30_000) + 10, reason: 'Retry-After' };
  }
  return { retry: true, delayMs: backoffDelay(attempt, opts), reason: err.type };
}

/** Exponential backoff with full jitter: random in [base*2^(n-1)/2, base*2^(n-1)], capped. */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}): number {
  const base = opts.baseMs ?? 500;
  const max = opts.maxMs ?? 30_000;
  const random = opts.random ?? Math.random;
  const exp = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp / 2 + (random() * exp) / 2);
}

/**
 * Runs one API call with p-retry: exponential backoff with jitter on retryable, unambiguous errors,
 * Retry-After honoured on 429. An ambiguous error is thrown straight back to the caller.
 * The wait before each retry is exactly `retryDecision`'s delay (p-retry's own backoff is off), so
 * Retry-After is not stacked on top of a second backoff and an injected `random` is used.
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  opts: BackoffOptions & { signal?: AbortSignal; onRetry?: (err: AllianceError, attempt: number, delayMs: number) => void } = {},
): Promise<T> {
  const { default: pRetry } = await import('p-retry');
  return pRetry(fn, {
    retries: opts.retries ?? 5,
    minTimeout: 0,
    maxTimeout: 0,
    randomize: false,
    ...(opts.signal ? { signal: opts.signal } : {}),
    onFailedAttempt: async ({ error, attemptNumber }) => {
      const d = retryDecision(error, attemptNumber, opts);
      if (!d.retry) return;
      opts.onRetry?.(error as AllianceError, attemptNumber, d.delayMs);
      await sleep(d.delayMs, opts.signal);
    },
    shouldRetry: ({ error, attemptNumber }) => retryDecision(error, attemptNumber, opts).retry,
  });
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
