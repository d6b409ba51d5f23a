import { request } from 'undici';
import { ConfigError } from '../errors.js';
import { formatRupeesIndian, parseRupees } from '../money.js';
import { maskAccount } from '../log.js';
import type { BatchSummary } from '../report/summary.js';

/**
 * Tells people a batch ended: one JSON POST to an incoming webhook (Slack, Microsoft Teams, or anything
 * that takes JSON). The body has a `text` line a chat shows as is, and the structured summary for
 * scripts. It never carries account numbers, credentials or row details: only counts, rupees and times.
 * A notification that cannot be delivered never changes a batch's outcome: the caller gets the result and
 * logs it.
 */

export type NotifyEvent = 'finished' | 'stopped' | 'failed';

/**
 * The event an exit code means (src/errors.ts EXIT): 0 and 1 finished (with or without unpaid rows),
 * 4 stopped (resume carries on), anything else failed (refused, usage, busy, API unavailable).
 */
export function eventForExit(exitCode: number): NotifyEvent {
  if (exitCode === 0 || exitCode === 1) return 'finished';
  if (exitCode === 4) return 'stopped';
  return 'failed';
}

export interface NotifyOptions {
  /** Why the notification is sent: the batch finished, stopped early (resume to carry on), or failed. */
  event: NotifyEvent;
  /** The batch's name, for a notification without a summary (a run that failed before there was one). */
  batch?: string | undefined;
  /** The run's one-line outcome (RunResult.message); long digit runs in it are masked. */
  message?: string | undefined;
  exitCode?: number | undefined;
  /** Per attempt, ms. Default 10000. */
  timeoutMs?: number | undefined;
  /** Attempts after the first. Default 4. */
  retries?: number | undefined;
  /** First wait between attempts, ms, doubled each time (with jitter). Default 1000. */
  minDelayMs?: number | undefined;
  /** Longest wait between attempts, ms (a Retry-After longer than this is cut to it). Default 30000. */
  maxDelayMs?: number | undefined;
  /** Stops waiting and retrying (Ctrl-C). */
  signal?: AbortSignal | undefined;
}

export interface NotifyResult {
  delivered: boolean;
  attempts: number;
  /** The last HTTP status received, if any. */
  status?: number;
  /** Why it was not delivered (the URL shown by its origin only: a webhook URL's path is its secret). */
  error?: string;
}

/** Checks a notification URL once, up front (a typo should fail the command, not the notification). */
export function parseNotifyUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError('--notify-url must be an http(s) URL such as https://hooks.slack.com/services/…');
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    throw new ConfigError(`--notify-url must be an http(s) URL; got a ${u.protocol} URL`);
  }
  return u;
}

/** Where a notification goes, for messages: the origin only (Slack and Teams keep the secret in the path). */
export function notifyTarget(url: string | URL): string {
  try {
    return `${new URL(url).origin}/…`;
  } catch {
    return '[notification URL]';
  }
}

/** Account-like digit runs (9 or more digits) masked to their last 4, in free text. */
function maskDigits(text: string): string {
  return text.replace(/\d{9,}/g, (d) => maskAccount(d));
}

const EVENT_WORDS: Record<NotifyEvent, string> = {
  finished: 'finished',
  stopped: 'stopped before the end',
  failed: 'failed',
};

/** One line a person reads in a chat: what happened, paid, not paid, awaiting, debited. */
export function summaryLine(summary: BatchSummary, event: NotifyEvent, exitCode?: number): string {
  const r = (a: string) => formatRupeesIndian(parseRupees(a) ?? 0n);
  const c = summary.counts;
  const parts = [`${summary.paid.count} paid ${r(summary.paid.amount)}`];
  if (c.rejected) parts.push(`${c.rejected} rejected ${r(summary.totals.rejected.amount)}`);
  if (c.invalid) parts.push(`${c.invalid} invalid`);
  if (c.failed) parts.push(`${c.failed} refused by the API`);
  if (c.needs_review) parts.push(`${c.needs_review} need review`);
  if (summary.awaiting.count) parts.push(`${summary.awaiting.count} awaiting an outcome ${r(summary.awaiting.amount)}`);
  if (c.not_sent) parts.push(`${c.not_sent} not sent`);
  if (c.cancelled) parts.push(`${c.cancelled} cancelled`);
  let line = `Payout batch ${summary.batch} ${EVENT_WORDS[event]}: ${parts.join(', ')}; debited ${r(summary.debited)}`;
  if (summary.possibly_debited.count) line += ` (+ up to ${r(summary.possibly_debited.amount)} not known yet)`;
  if (exitCode !== undefined) line += ` (exit ${exitCode})`;
  return maskDigits(line);
}

/** The JSON body: `text` for Slack/Teams, the rest for scripts. `summary` is null when there is none. */
export function notificationBody(summary: BatchSummary | null, opts: Pick<NotifyOptions, 'event' | 'message' | 'exitCode' | 'batch'>): Record<string, unknown> {
  const batch = summary?.batch ?? opts.batch ?? null;
  const text = summary
    ? summaryLine(summary, opts.event, opts.exitCode)
    : maskDigits(
        `Payout batch ${batch ?? '(unnamed)'} ${EVENT_WORDS[opts.event]}${opts.message ? `: ${opts.message}` : ''}${opts.exitCode !== undefined ? ` (exit ${opts.exitCode})` : ''}`,
      );
  return {
    text,
    event: `batch.${opts.event}`,
    batch,
    exit_code: opts.exitCode ?? null,
    message: opts.message ? maskDigits(opts.message) : null,
    summary,
  };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

function retryAfterMs(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  const secs = Number(v);
  if (Number.isFinite(secs) && secs >= 0) return secs * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/**
 * Posts the batch summary to `url`. Retries connection errors, timeouts, 408, 429 and 5xx with growing
 * waits (honouring Retry-After); another 4xx is final. Resolves with what happened; never rejects for a
 * delivery problem.
 */
export async function notifySummary(url: string, summary: BatchSummary | null, opts: NotifyOptions): Promise<NotifyResult> {
  const target = parseNotifyUrl(url);
  const body = JSON.stringify(notificationBody(summary, opts));
  const retries = opts.retries ?? 4;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const minDelay = opts.minDelayMs ?? 1000;
  const maxDelay = opts.maxDelayMs ?? 30_000;
  let attempts = 0;
  let status: number | undefined;
  let error = '';
  for (;;) {
    attempts++;
    let wait: number | undefined;
    let retryable = true;
    try {
      const res = await request(target, {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'payouts-notify' },
        body,
        signal: opts.signal ? AbortSignal.any([opts.signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      status = res.statusCode;
      await res.body.dump().catch(() => {});
      if (status >= 200 && status < 300) return { delivered: true, attempts, status };
      error = `${notifyTarget(target)} answered HTTP ${status}`;
      retryable = status === 408 || status === 429 || status >= 500;
      wait = retryAfterMs(res.headers['retry-after']);
    } catch (err) {
      const e = err as Error & { code?: string };
      error = `${notifyTarget(target)} could not be reached: ${e.name === 'TimeoutError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' ? `no answer within ${timeoutMs} ms` : (e.code ?? e.message)}`;
    }
    if (!retryable || attempts > retries || opts.signal?.aborted) return { delivered: false, attempts, ...(status !== undefined ? { status } : {}), error };
    const backoff = Math.min(maxDelay, minDelay * 2 ** (attempts - 1));
    await sleep(Math.min(maxDelay, wait ?? backoff * (0.75 + Math.random() * 0.5)), opts.signal);
  }
}
