import { createHash } from 'node:crypto';
import { Agent, request, type Dispatcher } from 'undici';
import type { Logger } from 'pino';
import { parseApiAmount, paiseToJsonNumber } from '../money.js';
import { maskUrl } from '../maskUrl.js';
import {
  AbortedError,
  AllianceError,
  MalformedResponseError,
  NetworkError,
  RateLimitError,
  ResponseTooLargeError,
  TimeoutError,
  errorFromEnvelope,
  errorFromResponse,
} from './errors.js';
import type { RateGate } from './gate.js';
import { WIRE, ticketOnWire, type WireState } from './wire.js';
import { bodyLine, serializeBody, sign, type GetBodyMode, type JsonEscapeMode, type TimestampUnit } from './signing.js';
import {
  API_PATHS,
  API_STATUSES,
  type ApiStatus,
  type Balance,
  type Envelope,
  type PayinInfo,
  type PayoutInfo,
  type PayoutRequest,
  type PayoutRequestBody,
} from './types.js';

export interface ClientOptions {
  /** The API's base URL as Alliance gives it, e.g. https://api.example.com (a path prefix is kept). */
  baseUrl: string;
  accessKey: string;
  secretKey: string;
  /** Per-request timeout in ms, from connect to the last body byte. Default 30000. */
  timeoutMs?: number;
  /**
   * How GET requests sign their body line. Default 'empty' (the document's text). This and the next three
   * options pick between the document's contradictory rules: `payouts doctor` (src/alliance/doctor.ts)
   * asks the server which it follows.
   */
  getBodyMode?: GetBodyMode;
  /** How JSON bodies are encoded (and signed). Default 'none' (UTF-8 as is). */
  escape?: JsonEscapeMode;
  /** Send beneficiary_mobile_no as a JSON number instead of a string. Default false. */
  mobileAsNumber?: boolean;
  /**
   * The Timestamp header (and the signed timestamp) in milliseconds (the document's text and samples) or
   * seconds (its header table). Default 'ms'.
   */
  timestampUnit?: TimestampUnit;
  /** Longest response body read; a longer one is cut off as ResponseTooLargeError. Default 1 MiB. */
  maxResponseBytes?: number;
  /**
   * Keep-alive connections to the API. Default 256 (opened only as needed): a request must never wait in
   * the pool after taking its rate slot, so this must be at least the caller's concurrency.
   */
  connections?: number;
  /** Bring your own undici dispatcher (tests); the client then does not close it. */
  dispatcher?: Dispatcher;
  logger?: Logger;
  /** Clock, for tests. */
  now?: () => number;
}

/** A request serialized once: retries sign these same bytes again with a new timestamp. */
export interface PreparedRequest {
  readonly method: 'GET' | 'POST';
  /** Signing path, no leading slash. */
  readonly path: string;
  /** Exact bytes sent (undefined for GET). */
  readonly body: string | undefined;
}

/** A response body larger than this is not an API answer: the documented ones are well under 10 KB. */
export const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;

export interface RawResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  json: unknown;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** The rate limit: a slot is taken right before the request goes on the wire (gate.ts). */
  gate?: RateGate | undefined;
}

/**
 * The Alliance API client: one attempt per call, typed results, typed errors.
 * Retry policy lives with the caller (engine), because whether a retry is safe depends on what the
 * caller knows (a payout initiate is never resent without asking its status first).
 */
export class AllianceClient {
  readonly baseUrl: string;
  private readonly accessKey: string;
  private readonly secretKey: string;
  private readonly timeoutMs: number;
  private readonly getBodyMode: GetBodyMode;
  private readonly escape: JsonEscapeMode;
  private readonly mobileAsNumber: boolean;
  private readonly timestampUnit: TimestampUnit;
  private readonly maxResponseBytes: number;
  private readonly dispatcher: Dispatcher;
  /** The dispatcher with the rate gate's tickets settled on the wire (wire.ts). */
  private readonly wire: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly logger: Logger | undefined;
  private readonly now: () => number;
  /** The base URL as messages show it: a password in it masked. */
  private readonly shownUrl: string;
  private lastTimestamp = 0;
  /** Seconds mode only: signatures used in the current and the previous second (see send). */
  private readonly recentSignatures = new Map<string, number>();

  constructor(opts: ClientOptions) {
    if (!opts.baseUrl) throw new TypeError('baseUrl is required (ALLIANCE_BASE_URL)');
    let url: URL;
    try {
      url = new URL(opts.baseUrl);
    } catch {
      throw new TypeError(`ALLIANCE_BASE_URL "${opts.baseUrl}" is not a URL: use e.g. https://api.example.com`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new TypeError(`ALLIANCE_BASE_URL must be http(s), got ${url.protocol}`);
    }
    if (url.search || url.hash) {
      throw new TypeError(`ALLIANCE_BASE_URL must be the API's base address without a query or fragment (${maskUrl(url.origin + url.pathname)}…): e.g. https://api.example.com`);
    }
    this.baseUrl = url.toString().replace(/\/+$/, '');
    this.shownUrl = maskUrl(this.baseUrl);
    if (!opts.accessKey) throw new TypeError('access key is required (ALLIANCE_ACCESS_KEY)');
    if (!opts.secretKey) throw new TypeError('secret key is required (ALLIANCE_SECRET_KEY)');
    this.accessKey = opts.accessKey;
    this.secretKey = opts.secretKey;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.getBodyMode = opts.getBodyMode ?? 'empty';
    this.escape = opts.escape ?? 'none';
    this.mobileAsNumber = opts.mobileAsNumber ?? false;
    this.timestampUnit = opts.timestampUnit ?? 'ms';
    this.maxResponseBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.logger = opts.logger;
    this.now = opts.now ?? Date.now;
    if (opts.dispatcher) {
      this.dispatcher = opts.dispatcher;
      this.ownsDispatcher = false;
    } else {
      this.dispatcher = new Agent({
        connections: opts.connections ?? 256,
        keepAliveTimeout: 10_000,
        connect: { timeout: Math.min(this.timeoutMs, 10_000) },
      });
      this.ownsDispatcher = true;
    }
    this.wire = this.dispatcher.compose(ticketOnWire);
    // Keep secrets off enumerable properties so a stray console.log(client) shows nothing.
    Object.defineProperty(this, 'secretKey', { enumerable: false });
    Object.defineProperty(this, 'accessKey', { enumerable: false });
  }

  /** Names the API account (base URL and access key) without revealing the key: the rate budget's key. */
  accountKey(): string {
    return createHash('sha256').update(`${this.baseUrl}\n${this.accessKey}`).digest('hex').slice(0, 32);
  }

  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  /** The body of a payout initiate, in the document's key order, amount in rupees. */
  payoutBody(req: PayoutRequest): PayoutRequestBody {
    return {
      beneficiary_name: req.beneficiaryName,
      beneficiary_email: req.beneficiaryEmail,
      beneficiary_mobile_no: this.mobileAsNumber ? Number(req.beneficiaryMobile) : req.beneficiaryMobile,
      beneficiary_address: req.beneficiaryAddress,
      payment_method: req.paymentMethod,
      beneficiary_acc_no: req.accountNumber,
      bank_name: req.bankName,
      ifsc: req.ifsc,
      amount: paiseToJsonNumber(req.amountPaise),
      order_id: req.orderId,
      user_id: req.userId,
      remarks: req.remarks,
    };
  }

  preparePayout(req: PayoutRequest): PreparedRequest {
    return { method: 'POST', path: API_PATHS.initiatePayout, body: serializeBody(this.payoutBody(req), this.escape) };
  }

  prepareGet(path: string): PreparedRequest {
    return { method: 'GET', path, body: undefined };
  }

  preparePost(path: string, body: unknown): PreparedRequest {
    return { method: 'POST', path, body: serializeBody(body, this.escape) };
  }

  /**
   * Milliseconds, strictly increasing so two requests never share a timestamp (and a signature).
   * Seconds cannot be forced to increase (at 20 requests a second the clock would run ahead by minutes),
   * so they only never go back; `send` keeps two identical requests apart instead.
   */
  private timestamp(): number {
    if (this.timestampUnit === 's') {
      const t = Math.max(Math.floor(this.now() / 1000), this.lastTimestamp);
      this.lastTimestamp = t;
      return t;
    }
    const t = Math.max(this.now(), this.lastTimestamp + 1);
    this.lastTimestamp = t;
    return t;
  }

  /**
   * Headers for one attempt. With seconds, the same request twice in one second would carry the same
   * signature, which a server with replay protection refuses as a replay: wait for the next second.
   */
  private async headersForAttempt(prepared: PreparedRequest, signal: AbortSignal): Promise<Record<string, string>> {
    let headers = this.signedHeaders(prepared);
    if (this.timestampUnit !== 's') return headers;
    for (let i = 0; i < 3 && this.recentSignatures.has(headers['signature']!); i++) {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, 1000 - (this.now() % 1000) + 5);
        signal.addEventListener('abort', () => (clearTimeout(t), reject(signal.reason)), { once: true });
      });
      headers = this.signedHeaders(prepared);
    }
    const second = Number(headers['timestamp']);
    for (const [sig, s] of this.recentSignatures) if (s < second - 1) this.recentSignatures.delete(sig);
    this.recentSignatures.set(headers['signature']!, second);
    return headers;
  }

  /** Signed headers for one attempt (a new timestamp unless one is given). Exposed for the known-answer tests. */
  signedHeaders(prepared: PreparedRequest, timestamp = this.timestamp()): Record<string, string> {
    const line = bodyLine(prepared.method, prepared.body, this.getBodyMode);
    const headers: Record<string, string> = {
      'access-key': this.accessKey,
      timestamp: String(timestamp),
      signature: sign(this.secretKey, prepared.method, prepared.path, line, timestamp),
      accept: 'application/json',
    };
    if (prepared.body !== undefined) headers['content-type'] = 'application/json';
    return headers;
  }

  /** One attempt: sign now, send the prepared bytes, map any failure to an AllianceError. */
  async send(prepared: PreparedRequest, opts: CallOptions = {}): Promise<RawResponse> {
    const { method, path } = prepared;
    // Nothing but signing between the ticket and the hand-over to undici; the connection itself tells the
    // ticket when the request is written (wire.ts), however late that is.
    const ticket = opts.gate ? await opts.gate.take(opts.signal) : undefined;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    const started = this.now();
    const wire: WireState = { ticket, written: false };
    let res: Dispatcher.ResponseData;
    try {
      let headers: Record<string, string>;
      try {
        headers = await this.headersForAttempt(prepared, signal);
      } catch (err) {
        ticket?.cancel();
        throw err;
      }
      res = await request(`${this.baseUrl}/${path}`, {
        // Spread: undici's request options do not name the interceptor's symbol key (an excess property otherwise).
        ...{ [WIRE]: wire },
        dispatcher: this.wire,
        method,
        headers,
        body: prepared.body,
        signal,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
    } catch (err) {
      // Never handed to a connection (refused before dispatch): give the ticket back. A no-op when the
      // request was written (a ticket settles once).
      ticket?.cancel();
      throw this.transportError(err, prepared, timeout, opts.signal, false, wire.written);
    }
    let text: string;
    try {
      text = await this.readBody(res, prepared);
    } catch (err) {
      throw this.transportError(err, prepared, timeout, opts.signal, true);
    }
    this.logger?.debug({ method, path, status: res.statusCode, ms: this.now() - started }, 'api response');
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    const headers = res.headers as Record<string, string | string[] | undefined>;
    if (res.statusCode >= 200 && res.statusCode < 300) {
      if (json === undefined || typeof json !== 'object' || json === null) {
        throw new MalformedResponseError(
          `${method} ${path}: HTTP ${res.statusCode} but the body is not JSON (${describeBody(text, headers)})`,
          { statusCode: res.statusCode, method, path, raw: text.slice(0, 200) },
        );
      }
      const refused = errorFromEnvelope({ statusCode: res.statusCode, method, path, raw: json });
      if (refused) throw refused;
      return { statusCode: res.statusCode, headers, json };
    }
    const error = errorFromResponse({
      statusCode: res.statusCode,
      method,
      path,
      raw: json ?? text.slice(0, 200),
      retryAfterHeader: headerValue(headers['retry-after']),
      serverDate: headerValue(headers['date']),
      now: this.now(),
      getBodyMode: this.getBodyMode,
    });
    if (error instanceof RateLimitError) opts.gate?.rateLimited(error.retryAfterMs);
    throw error;
  }

  /** Reads the body up to maxResponseBytes; past it, stops reading and closes the connection. */
  private async readBody(res: Dispatcher.ResponseData, prepared: PreparedRequest): Promise<string> {
    const limit = this.maxResponseBytes;
    const tooLarge = (what: string) => {
      res.body.destroy();
      return new ResponseTooLargeError(
        `${prepared.method} ${prepared.path}: HTTP ${res.statusCode} with a response body ${what} the ${limit}-byte limit: cut off (not an API answer)`,
        { statusCode: res.statusCode, method: prepared.method, path: prepared.path, limitBytes: limit },
      );
    };
    const declared = Number(headerValue(res.headers['content-length'] as string | string[] | undefined));
    if (Number.isFinite(declared) && declared > limit) throw tooLarge(`of ${declared} bytes, over`);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      const b = chunk as Buffer;
      size += b.length;
      if (size > limit) throw tooLarge('over');
      chunks.push(b);
    }
    return Buffer.concat(chunks, size).toString('utf8');
  }

  private transportError(
    err: unknown,
    prepared: PreparedRequest,
    timeout: AbortSignal,
    callerSignal: AbortSignal | undefined,
    afterHeaders = false,
    written = true,
  ): AllianceError {
    const { method, path } = prepared;
    if (err instanceof AllianceError) return err;
    const e = err as { code?: string; name?: string; message?: string };
    const d = { method, path, cause: err };
    if (callerSignal?.aborted) return new AbortedError(`${method} ${path}: cancelled`, d);
    const code = e.code ?? (e as { cause?: { code?: string } }).cause?.code;
    // The connection never took the request (no free connection, a busy event loop, a connect that failed):
    // not a byte reached the server, whatever ended the wait. Certainly not executed.
    const neverWritten = !written && !afterHeaders;
    if (
      timeout.aborted ||
      code === 'UND_ERR_HEADERS_TIMEOUT' ||
      code === 'UND_ERR_BODY_TIMEOUT' ||
      e.name === 'TimeoutError'
    ) {
      if (neverWritten) return new NetworkError(`${method} ${path}: not sent within ${this.timeoutMs} ms (no connection took it)`, { ...d, sent: false, ...(code ? { code } : {}) });
      return new TimeoutError(`${method} ${path}: no answer within ${this.timeoutMs} ms`, d);
    }
    // These fail before a byte of the request reaches the server: certainly not executed.
    const notSent = new Set([
      'ECONNREFUSED',
      'ENOTFOUND',
      'EAI_AGAIN',
      'EHOSTUNREACH',
      'ENETUNREACH',
      'UND_ERR_CONNECT_TIMEOUT',
      'ERR_TLS_CERT_ALTNAME_INVALID',
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'SELF_SIGNED_CERT_IN_CHAIN',
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      'CERT_HAS_EXPIRED',
    ]);
    const sent = afterHeaders || (!neverWritten && !(code !== undefined && notSent.has(code)));
    const what =
      code === 'ECONNREFUSED'
        ? `connection refused by ${this.shownUrl}: is the API (or sandbox) running and ALLIANCE_BASE_URL right?`
        : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
          ? `cannot resolve the host of ${this.shownUrl}: check ALLIANCE_BASE_URL`
          : code && /CERT|TLS|SSL/.test(code)
            ? `TLS failure talking to ${this.shownUrl} (${code}): check the URL and the server's certificate`
            : `connection failed (${code ?? e.message ?? 'unknown'})`;
    return new NetworkError(`${method} ${path}: ${what}`, { ...d, sent, ...(code ? { code } : {}) });
  }

  private envelope<T>(res: RawResponse, prepared: PreparedRequest): Envelope<T> {
    const j = res.json as Partial<Envelope<T>>;
    if (!j || typeof j !== 'object' || !('data' in j) || j.data === null || typeof j.data !== 'object') {
      throw new MalformedResponseError(`${prepared.method} ${prepared.path}: response has no data object`, {
        statusCode: res.statusCode,
        method: prepared.method,
        path: prepared.path,
        raw: res.json,
      });
    }
    return j as Envelope<T>;
  }

  async balance(opts: CallOptions = {}): Promise<Balance> {
    const prepared = this.prepareGet(API_PATHS.balance);
    const res = await this.send(prepared, opts);
    const env = this.envelope<{ balance?: unknown }>(res, prepared);
    const raw = env.data.balance;
    const paise = parseApiAmount(raw);
    if (paise === undefined) {
      throw new MalformedResponseError(`GET ${prepared.path}: balance ${JSON.stringify(raw)} is not an amount`, {
        method: 'GET',
        path: prepared.path,
        raw: res.json,
      });
    }
    return { balancePaise: paise, raw: String(raw) };
  }

  async payoutStatus(orderId: string, opts: CallOptions = {}): Promise<PayoutInfo> {
    const prepared = this.prepareGet(API_PATHS.payoutStatus(orderId));
    const res = await this.send(prepared, opts);
    return parsePayout(this.envelope<Record<string, unknown>>(res, prepared).data, prepared, orderId);
  }

  /** One attempt at creating a payout. Callers must treat an error with `ambiguous` as "maybe created". */
  async initiatePayout(req: PayoutRequest | PreparedRequest, opts: CallOptions = {}): Promise<PayoutInfo> {
    const prepared = 'method' in req ? req : this.preparePayout(req);
    const res = await this.send(prepared, opts);
    const orderId = (JSON.parse(prepared.body ?? '{}') as { order_id?: string }).order_id ?? '';
    return parsePayout(this.envelope<Record<string, unknown>>(res, prepared).data, prepared, orderId);
  }

  async payinStatus(orderId: string, opts: CallOptions = {}): Promise<PayinInfo> {
    const prepared = this.preparePost(API_PATHS.payinStatus, { order_id: orderId });
    const res = await this.send(prepared, opts);
    return parsePayin(this.envelope<Record<string, unknown>>(res, prepared).data, orderId);
  }
}

function str(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  return null;
}

function headerValue(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h[0] : h;
}

function describeBody(text: string, headers: Record<string, string | string[] | undefined>): string {
  const ct = headerValue(headers['content-type']) ?? 'no content-type';
  const snippet = text.slice(0, 60).replace(/\s+/g, ' ');
  return `${ct}${snippet ? `: "${snippet}${text.length > 60 ? '…' : ''}"` : ', empty'}`;
}

/**
 * A payin as the status API (or a webhook) shows it. Statuses are kept as the API spells them, in its
 * case ('Pending', 'Approved', 'Rejected'; a webhook's 'Initiated'); money exactly in paise.
 */
export function parsePayin(d: Record<string, unknown>, orderId: string): PayinInfo {
  const rawStatus = str(d['status']);
  const known = ['Pending', 'Initiated', 'Approved', 'Rejected'].find((s) => s.toLowerCase() === rawStatus?.toLowerCase());
  return {
    orderId: str(d['order_id']) ?? orderId,
    userId: str(d['user_id']),
    status: known ?? rawStatus ?? 'Unknown',
    transactionId: str(d['transaction_id']),
    amountPaise: parseApiAmount(d['amount']) ?? null,
    requestAmountPaise: parseApiAmount(d['request_amount']) ?? null,
    method: str(d['method']),
    comments: str(d['comments']),
    timeOfProcessing: str(d['time_of_processing']),
    createdAt: str(d['created_at']),
    updatedAt: str(d['updated_at']),
    bankUpi: str(d['bank_upi']),
    bankName: str(d['bank_name']),
    raw: d,
  };
}

/** Tolerant parse of a payout object: statuses in any case, numbers or strings, nulls, extra fields. */
export function parsePayout(d: Record<string, unknown>, prepared: PreparedRequest, orderId: string): PayoutInfo {
  const rawStatus = str(d['status']);
  const status = API_STATUSES.find((s) => s.toLowerCase() === rawStatus?.toLowerCase()) as ApiStatus | undefined;
  if (!status) {
    throw new MalformedResponseError(
      `${prepared.method} ${prepared.path}: unknown payout status ${JSON.stringify(d['status'])}`,
      { method: prepared.method, path: prepared.path, raw: d },
    );
  }
  return {
    orderId: str(d['order_id']) ?? orderId,
    status,
    transactionId: str(d['transaction_id']),
    amountPaise: parseApiAmount(d['amount']) ?? null,
    chargePaise: parseApiAmount(d['charge']) ?? null,
    message: str(d['message']),
    raw: d,
  };
}
