import { describe, expect, it } from 'vitest';
import {
  AuthenticationError,
  NetworkError,
  NotFoundError,
  RateLimitError,
  ServerError,
  TimeoutError,
  ValidationError,
  type AllianceError,
} from '../src/alliance/errors.js';
import { backoffDelay, retryDecision, withRetry } from '../src/alliance/retry.js';

const getServer = () => new ServerError('GET x: 500', { method: 'GET', path: 'x', statusCode: 500 });
const postServer = () => new ServerError('POST x: 500', { method: 'POST', path: 'x', statusCode: 500 });
const rate = (retryAfterMs?: number) =>
  new RateLimitError('POST x: 429', { method: 'POST', path: 'x', statusCode: 429, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) });

describe('retryDecision, rules in order', () => {
  it('out of retries: no, even for a retryable error with Retry-After', () => {
    const d = retryDecision(rate(100), 4, { retries: 3 });
    expect(d.retry).toBe(false);
    expect(d.reason).toMatch(/gave up after 4/);
    expect(retryDecision(rate(100), 3, { retries: 3 }).retry).toBe(true);
    // Default: 5 retries.
    expect(retryDecision(getServer(), 5).retry).toBe(true);
    expect(retryDecision(getServer(), 6).retry).toBe(false);
  });

  it('not an API error: no', () => {
    expect(retryDecision(new Error('boom'), 1)).toEqual({ retry: false, reason: 'not an API error' });
  });

  it('ambiguous: no, although the error class is retryable', () => {
    const cases: AllianceError[] = [
      postServer(),
      new TimeoutError('t', { method: 'POST' }),
      new NetworkError('n', { method: 'POST', sent: true }),
    ];
    for (const e of cases) {
      expect(e.retryable).toBe(true);
      expect(e.ambiguous).toBe(true);
      const d = retryDecision(e, 1);
      expect(d.retry).toBe(false);
      expect(d.reason).toMatch(/status first/);
    }
  });

  it('not retryable: no', () => {
    for (const e of [new AuthenticationError('a'), new NotFoundError('n'), new ValidationError('v')]) {
      const d = retryDecision(e, 1);
      expect(d).toEqual({ retry: false, reason: `${e.type} is final` });
    }
  });

  it('Retry-After wins over backoff, capped by maxMs, plus a 10 ms margin', () => {
    expect(retryDecision(rate(2000), 1, { random: () => 0 })).toEqual({ retry: true, delayMs: 2010, reason: 'Retry-After' });
    expect(retryDecision(rate(2000), 3, { random: () => 1 })).toMatchObject({ delayMs: 2010 });
    expect(retryDecision(rate(60_000), 1, { maxMs: 5000 })).toMatchObject({ delayMs: 5010 });
    // 429 without Retry-After: plain backoff.
    expect(retryDecision(rate(), 1, { baseMs: 100, random: () => 1 })).toEqual({ retry: true, delayMs: 100, reason: 'rate_limit' });
  });

  it('otherwise exponential backoff with jitter in [exp/2, exp], capped', () => {
    const opts = { baseMs: 100, maxMs: 1000 };
    for (const [attempt, exp] of [
      [1, 100],
      [2, 200],
      [3, 400],
      [4, 800],
      [5, 1000],
    ] as const) {
      expect(retryDecision(getServer(), attempt, { ...opts, random: () => 0 })).toEqual({ retry: true, delayMs: exp / 2, reason: 'server' });
      expect(retryDecision(getServer(), attempt, { ...opts, random: () => 1 })).toEqual({ retry: true, delayMs: exp, reason: 'server' });
      expect(backoffDelay(attempt, { ...opts, random: () => 0.5 })).toBe(Math.round((exp * 3) / 4));
    }
    // A connection refused (never sent) is retryable and unambiguous even on POST.
    const refused = new NetworkError('refused', { method: 'POST', sent: false, code: 'ECONNREFUSED' });
    expect(retryDecision(refused, 1, { baseMs: 10, random: () => 1 })).toEqual({ retry: true, delayMs: 10, reason: 'network' });
  });
});

describe('withRetry', () => {
  it('retries a retryable error until it succeeds, passing the attempt number', async () => {
    const seen: number[] = [];
    const retried: Array<[number, number]> = [];
    const result = await withRetry(
      async (attempt) => {
        seen.push(attempt);
        if (attempt < 3) throw getServer();
        return 'ok';
      },
      { baseMs: 5, random: () => 1, onRetry: (_e, a, d) => retried.push([a, d]) },
    );
    expect(result).toBe('ok');
    expect(seen).toEqual([1, 2, 3]);
    // The delays are retryDecision's own (injected random honoured): 5, 10.
    expect(retried).toEqual([
      [1, 5],
      [2, 10],
    ]);
  });

  it('gives up after `retries` retries and throws the last error', async () => {
    let calls = 0;
    const err = await withRetry(
      async () => {
        calls++;
        throw getServer();
      },
      { retries: 2, baseMs: 1 },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServerError);
    expect(calls).toBe(3);
  });

  it('never retries an ambiguous error: one attempt, the error comes straight back', async () => {
    for (const make of [postServer, () => new TimeoutError('t', { method: 'POST' }), () => new NetworkError('n', { method: 'POST', sent: true })]) {
      let calls = 0;
      const e = make();
      await expect(
        withRetry(
          async () => {
            calls++;
            throw e;
          },
          { baseMs: 1 },
        ),
      ).rejects.toBe(e);
      expect(calls).toBe(1);
    }
  });

  it('never retries a final error or a non-API error', async () => {
    let calls = 0;
    await expect(
      withRetry(async () => {
        calls++;
        throw new ValidationError('v');
      }),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(
      withRetry(async () => {
        calls++;
        throw new Error('bug');
      }),
    ).rejects.toThrow('bug');
    expect(calls).toBe(2);
  });

  it('waits out Retry-After (and not a second backoff on top of it)', async () => {
    const times: number[] = [];
    const result = await withRetry(
      async () => {
        times.push(performance.now());
        if (times.length === 1) throw rate(300);
        return 'ok';
      },
      // A huge base: if p-retry's own backoff were applied too, the wait would be >= 5 s.
      { baseMs: 5000, maxMs: 30_000 },
    );
    expect(result).toBe('ok');
    const waited = times[1]! - times[0]!;
    expect(waited).toBeGreaterThanOrEqual(300);
    expect(waited).toBeLessThan(1500);
  });

  it('stops waiting when the signal aborts', async () => {
    const ac = new AbortController();
    let calls = 0;
    const p = withRetry(
      async () => {
        calls++;
        throw rate(10_000);
      },
      { signal: ac.signal },
    );
    setTimeout(() => ac.abort(new Error('stop')), 50);
    await expect(p).rejects.toThrow('stop');
    expect(calls).toBe(1);
  });
});
