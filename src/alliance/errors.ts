/**
 * One typed hierarchy for everything that can go wrong talking to the API (after stripe-node's Error.ts).
 *
 * Two questions every caller asks:
 * - `retryable`: may the same request be sent again after a pause?
 * - `ambiguous`: may the request have taken effect (a payout created) even though we have no answer?
 *   An ambiguous payout initiate is never resent blind: its status is asked first.
 */

export interface ErrorDetails {
  statusCode?: number;
  method?: string;
  path?: string;
  raw?: unknown;
  cause?: unknown;
}

export abstract class AllianceError extends Error {
  abstract readonly type: string;
  abstract readonly retryable: boolean;
  readonly ambiguous: boolean = false;
  readonly statusCode: number | undefined;
  readonly method: string | undefined;
  readonly path: string | undefined;
  /** The parsed response body, if any (never includes request headers). */
  readonly raw: unknown;

  constructor(message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.statusCode = details.statusCode;
    this.method = details.method;
    this.path = details.path;
    this.raw = details.raw;
  }
}

/** 401 or 403: wrong keys, bad signature, clock skew, IP not allowed. Never retried. */
export class AuthenticationError extends AllianceError {
  readonly type = 'authentication';
  readonly retryable = false;
  override readonly ambiguous: boolean;
  /** Server Date minus local clock, when the server sent a Date header. */
  readonly clockSkewMs: number | undefined;
  constructor(message: string, details: ErrorDetails & { clockSkewMs?: number; ambiguous?: boolean } = {}) {
    super(message, details);
    this.clockSkewMs = details.clockSkewMs;
    this.ambiguous = details.ambiguous ?? false;
  }
}

/** 404: the transaction does not exist. For a payout status this means "never created". */
export class NotFoundError extends AllianceError {
  readonly type = 'not_found';
  readonly retryable = false;
}

/** 400: the API refused the request as malformed. Not created. */
export class BadRequestError extends AllianceError {
  readonly type = 'bad_request';
  readonly retryable = false;
}

/** 422: validation errors, Laravel style {field: [messages]}. Not created. */
export class ValidationError extends AllianceError {
  readonly type = 'validation';
  readonly retryable = false;
  readonly fieldErrors: Record<string, string[]>;
  constructor(message: string, details: ErrorDetails & { fieldErrors?: Record<string, string[]> } = {}) {
    super(message, details);
    this.fieldErrors = details.fieldErrors ?? {};
  }
  /** The order_id was already used: a payout with it exists (adopt it via status). */
  get orderIdTaken(): boolean {
    const msgs = this.fieldErrors['order_id'] ?? [];
    return msgs.some((m) => /taken|already|exist|duplicate/i.test(m));
  }
}

/** 429: slow down. The request was not executed. */
export class RateLimitError extends AllianceError {
  readonly type = 'rate_limit';
  readonly retryable = true;
  readonly retryAfterMs: number | undefined;
  constructor(message: string, details: ErrorDetails & { retryAfterMs?: number } = {}) {
    super(message, details);
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** 5xx. On a POST the server may have executed the request before failing. */
export class ServerError extends AllianceError {
  readonly type = 'server';
  readonly retryable = true;
  override readonly ambiguous: boolean;
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, details);
    this.ambiguous = (details.method ?? 'GET').toUpperCase() !== 'GET';
  }
}

/**
 * The connection failed. `sent` says whether the request may have reached the server
 * (a reset after connecting) or certainly did not (refused, DNS, TLS handshake).
 */
export class NetworkError extends AllianceError {
  readonly type = 'network';
  readonly retryable = true;
  override readonly ambiguous: boolean;
  readonly code: string | undefined;
  constructor(message: string, details: ErrorDetails & { sent: boolean; code?: string }) {
    super(message, details);
    this.code = details.code;
    this.ambiguous = details.sent && (details.method ?? 'GET').toUpperCase() !== 'GET';
  }
}

/** No answer within the timeout, after the request was sent. */
export class TimeoutError extends AllianceError {
  readonly type = 'timeout';
  readonly retryable = true;
  override readonly ambiguous: boolean;
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, details);
    this.ambiguous = (details.method ?? 'GET').toUpperCase() !== 'GET';
  }
}

/** The server answered with something that is not the documented envelope. */
export class MalformedResponseError extends AllianceError {
  readonly type = 'malformed_response';
  readonly retryable = true;
  override readonly ambiguous: boolean;
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, details);
    this.ambiguous = (details.method ?? 'GET').toUpperCase() !== 'GET';
  }
}

/** The request was cancelled by the caller's AbortSignal. Ambiguous like a timeout. */
export class AbortedError extends AllianceError {
  readonly type = 'aborted';
  readonly retryable = false;
  override readonly ambiguous: boolean;
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, details);
    this.ambiguous = (details.method ?? 'GET').toUpperCase() !== 'GET';
  }
}

/**
 * A 2xx whose envelope says it failed: `"success": false`, or a non-empty `error`. Taken at its word as
 * a refusal, but on a POST the server may still have acted (a payout created before some later step
 * failed), so an initiate is ambiguous: its status is asked before anything else. Never retried blind:
 * the same request would most likely get the same answer.
 */
export class EnvelopeError extends AllianceError {
  readonly type = 'envelope_error';
  readonly retryable = false;
  override readonly ambiguous: boolean;
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, details);
    this.ambiguous = (details.method ?? 'GET').toUpperCase() !== 'GET';
  }
}

/**
 * The response body grew past the client's limit (a server streaming without end once took 4.2 GB of
 * memory in 10 s) and was cut off. A GET may be asked again; a POST may have been executed.
 */
export class ResponseTooLargeError extends AllianceError {
  readonly type = 'response_too_large';
  readonly retryable = true;
  override readonly ambiguous: boolean;
  readonly limitBytes: number;
  constructor(message: string, details: ErrorDetails & { limitBytes: number }) {
    super(message, details);
    this.limitBytes = details.limitBytes;
    this.ambiguous = (details.method ?? 'GET').toUpperCase() !== 'GET';
  }
}

/** An answer the document does not list (a redirect, 405, 409, a 404 to an initiate…). */
export class UnexpectedStatusError extends AllianceError {
  readonly type = 'unexpected_status';
  readonly retryable = false;
  override readonly ambiguous: boolean;
  constructor(message: string, details: ErrorDetails & { ambiguous?: boolean } = {}) {
    super(message, details);
    this.ambiguous = details.ambiguous ?? false;
  }
}

/** Requests that create something at the API: an answer the document does not define for them may mean it was. */
const WRITE_PATHS = ['api/v1/payout/initiate'];

/**
 * Whether an HTTP answer to this request leaves it possibly executed. The document defines, for a payout
 * initiate, 201 (created), 400 (bad request), 401 (unauthorized), 422 (validation; "already taken") and
 * 500; a 429 is a refusal before any work. Anything else it does not define — a redirect from a proxy, a
 * 403 from a firewall in front, a 404 or 405 from a misrouted gateway, a 409 — says nothing about whether
 * the payout was made: ambiguous, so its status is asked before anything else, never recorded as refused.
 * Requests that only read (balance, status lookups) are never ambiguous.
 */
export function writeAnswerAmbiguous(f: { statusCode: number; method: string; path: string }): boolean {
  const writes = f.method.toUpperCase() !== 'GET' && WRITE_PATHS.some((p) => f.path.replace(/^\//, '').startsWith(p));
  if (!writes) return false;
  const s = f.statusCode;
  return !(s === 400 || s === 401 || s === 422 || s === 429 || (s >= 200 && s < 300));
}

/** `"error": ""`, null, false, [] and {} mean no error (the document's successful responses carry `"error": ""`). */
export function envelopeErrorValue(v: unknown): boolean {
  if (v === undefined || v === null || v === false) return false;
  if (typeof v === 'string') return v.trim() !== '';
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

/** A 2xx body that says it failed, as an EnvelopeError; undefined when the envelope says success. */
export function errorFromEnvelope(f: { statusCode: number; method: string; path: string; raw: unknown }): EnvelopeError | undefined {
  if (!f.raw || typeof f.raw !== 'object' || Array.isArray(f.raw)) return undefined;
  const r = f.raw as Record<string, unknown>;
  const failed = r['success'] === false || envelopeErrorValue(r['error']);
  if (!failed) return undefined;
  const err = r['error'];
  const detail = typeof err === 'string' && err.trim() ? err.trim() : envelopeErrorValue(err) ? JSON.stringify(err).slice(0, 200) : undefined;
  const msg = typeof r['message'] === 'string' && r['message'].trim() ? r['message'].trim() : undefined;
  const said = [detail, msg].filter((x, i, a) => x && a.indexOf(x) === i).join(': ');
  const what = r['success'] === false ? '"success": false' : 'an error';
  const next = f.method.toUpperCase() === 'GET' ? '' : ': the request may or may not have taken effect; ask its status before sending it again';
  return new EnvelopeError(`${f.method} ${f.path}: HTTP ${f.statusCode} but the response says ${what}${said ? ` (${said})` : ''}${next}`, {
    statusCode: f.statusCode,
    method: f.method,
    path: f.path,
    raw: f.raw,
  });
}

function firstMessage(raw: unknown): string | undefined {
  if (raw && typeof raw === 'object') {
    const r = raw as Record<string, unknown>;
    for (const k of ['message', 'error']) {
      const v = r[k];
      if (typeof v === 'string' && v.trim()) return v.trim();
    }
  }
  return undefined;
}

/** Laravel puts field errors in `errors` or (this API) maybe in `error` or `data`. */
export function extractFieldErrors(raw: unknown): Record<string, string[]> {
  if (!raw || typeof raw !== 'object') return {};
  const r = raw as Record<string, unknown>;
  for (const k of ['errors', 'error', 'data']) {
    const v = r[k];
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const out: Record<string, string[]> = {};
      for (const [field, msgs] of Object.entries(v as Record<string, unknown>)) {
        if (Array.isArray(msgs)) out[field] = msgs.map(String);
        else if (typeof msgs === 'string') out[field] = [msgs];
      }
      if (Object.keys(out).length) return out;
    }
  }
  return {};
}

export interface ResponseFacts {
  statusCode: number;
  method: string;
  path: string;
  raw: unknown;
  retryAfterHeader?: string | undefined;
  serverDate?: string | undefined;
  now?: number;
  /** How the refused request signed a GET body line, to suggest the other one on a 401. */
  getBodyMode?: string | undefined;
}

/** Parses Retry-After: delta-seconds or an HTTP date. */
export function parseRetryAfter(header: string | undefined, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const t = header.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  const d = Date.parse(t);
  if (Number.isNaN(d)) return undefined;
  return Math.max(0, d - now);
}

/** One factory maps an HTTP error response to the right class. */
export function errorFromResponse(f: ResponseFacts): AllianceError {
  const where = `${f.method} ${f.path}`;
  const msg = firstMessage(f.raw);
  const d = { statusCode: f.statusCode, method: f.method, path: f.path, raw: f.raw };
  const s = f.statusCode;
  if (s === 401 || s === 403) {
    const now = f.now ?? Date.now();
    const serverMs = f.serverDate ? Date.parse(f.serverDate) : NaN;
    const skew = Number.isNaN(serverMs) ? undefined : serverMs - now;
    let hint = 'check ALLIANCE_ACCESS_KEY and ALLIANCE_SECRET_KEY, that this machine\'s IP is whitelisted, and the clock';
    if (skew !== undefined && Math.abs(skew) > 60_000) {
      hint = `this machine's clock is ${Math.round(Math.abs(skew) / 1000)}s ${skew > 0 ? 'behind' : 'ahead of'} the server's: fix the clock (NTP)`;
    } else if (f.method.toUpperCase() === 'GET') {
      // The document contradicts itself on what a GET signs; a server following the other rule refuses every GET.
      const other = f.getBodyMode === '{}' ? 'empty' : "'{}'";
      hint += `; if POST requests work and GET requests do not, the server signs the GET body line differently: try --get-body-mode ${other} (\`payouts doctor\` tells which)`;
    } else {
      hint += ' (`payouts doctor` tells which of the document\'s signing rules the server follows)';
    }
    return new AuthenticationError(`${where}: ${s} ${s === 401 ? 'Unauthorized' : 'Forbidden'}${msg ? ` (${msg})` : ''}: ${hint}`, {
      ...d,
      ...(skew === undefined ? {} : { clockSkewMs: skew }),
      ambiguous: writeAnswerAmbiguous(f),
    });
  }
  if (s === 404 && writeAnswerAmbiguous(f)) {
    return new UnexpectedStatusError(`${where}: 404 to a payout initiate, which the document does not define (a proxy or a misrouted gateway?): the payout may exist; its status is asked first`, { ...d, ambiguous: true });
  }
  if (s === 404) return new NotFoundError(`${where}: 404 not found${msg ? ` (${msg})` : ''}`, d);
  if (s === 400) return new BadRequestError(`${where}: 400 bad request${msg ? ` (${msg})` : ''}`, d);
  if (s === 422) {
    const fieldErrors = extractFieldErrors(f.raw);
    const detail = Object.entries(fieldErrors)
      .map(([k, v]) => `${k}: ${v.join('; ')}`)
      .join(', ');
    return new ValidationError(`${where}: 422 ${detail || msg || 'validation failed'}`, { ...d, fieldErrors });
  }
  if (s === 429) {
    const retryAfterMs = parseRetryAfter(f.retryAfterHeader, f.now);
    return new RateLimitError(`${where}: 429 too many requests`, {
      ...d,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }
  if (s >= 500) return new ServerError(`${where}: ${s} server error${msg ? ` (${msg})` : ''}`, d);
  const ambiguous = writeAnswerAmbiguous(f);
  return new UnexpectedStatusError(`${where}: unexpected HTTP ${s}${msg ? ` (${msg})` : ''}${ambiguous ? ': the payout may exist; its status is asked first' : ''}`, { ...d, ambiguous });
}
