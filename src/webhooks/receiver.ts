import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { HintQueue } from './queue.js';

/**
 * Receives Alliance's webhooks at POST /alliance/webhook/<token> (plain node:http).
 *
 * The document defines no webhook signature, so a body proves nothing: anyone who finds the URL can
 * post one. The receiver therefore never acts on a body. It answers 2xx as soon as the body is read
 * (before any processing, so a slow handler never makes the sender retry), and hands only
 * `{kind, orderId, event}` to a handler, which confirms with the authenticated status API.
 * Duplicates, reordering, unknown order_ids, unknown events and malformed bodies are acknowledged and
 * counted; nothing a sender does can crash it.
 *
 * The token in the path is the only thing keeping strangers' hints out (they would only cost status
 * calls); an IP allowlist can narrow it further.
 *
 * Bounded whatever a sender does (issue 18): a connection idle for `idleTimeoutMs` (no bytes at all, or a
 * keep-alive between requests) is closed; beyond `maxConnections` a new connection is closed at once; a
 * body is read up to `maxBodyBytes` and dropped once its hint is taken; hints wait in a queue per kind
 * of at most `maxQueuedHints`, one per order_id (queue.ts), excess dropped and counted; `close()` drops
 * what waits and waits only for the few lookups already running.
 */

export type HintKind = 'payout' | 'payin';

export interface WebhookHint {
  kind: HintKind;
  orderId: string;
  /** The event name as sent, e.g. "payout.succeeded": a claim, not a fact. */
  event: string;
  receivedAt: Date;
}

/**
 * Returns a short outcome to count (e.g. 'stored', 'unknown_order'), or nothing. `stopping` aborts when
 * the receiver closes: a handler waiting on something (not a request already sent) should give up then.
 */
export type HintHandler = (hint: WebhookHint, stopping: AbortSignal) => Promise<string | void> | string | void;

export interface ReceiverOptions {
  /** The secret path segment; at least 16 characters. */
  token: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** When set, only these addresses may post (others get 403). */
  allowIps?: string[] | undefined;
  /** Largest body accepted; above it 413. Default 64 KiB (the documented bodies are under 2 KB). */
  maxBodyBytes?: number;
  /** A connection with no bytes for this long (before a request, or kept alive after one) is closed. Default 30000. */
  idleTimeoutMs?: number;
  /** Connections open at once; one more is closed as it arrives. Default 256. */
  maxConnections?: number;
  /** Hints waiting for a lookup, per kind; more are dropped (counted). Default 1000. */
  maxQueuedHints?: number;
  /** Lookups at once, per kind. Default 4 for payouts (mostly a database read), 2 for payins. */
  concurrency?: Partial<Record<HintKind, number>>;
  onPayoutHint?: HintHandler;
  onPayinHint?: HintHandler;
  /** Never receives a body (payout webhooks carry account numbers and contact details). */
  logger?: Logger | undefined;
}

export interface ReceiverStats {
  /** Requests that reached the server. */
  received: number;
  /** Hints handed to a handler. */
  hints: number;
  /** Bodies identical to one received in the last 10 minutes (still handed on: a hint costs one lookup). */
  duplicates: number;
  malformed: number;
  unknownEvent: number;
  /** A kind with no handler given. */
  unhandled: number;
  badToken: number;
  forbiddenIp: number;
  tooLarge: number;
  methodNotAllowed: number;
  handlerErrors: number;
  /** What the handlers returned, counted. */
  outcomes: Record<string, number>;
  /** Hints folded into one for the same order_id already waiting (one lookup answers both). */
  deduplicated: number;
  /** Hints dropped because the queue was full. */
  dropped: number;
  /** Hints that were waiting when the receiver stopped, dropped. */
  droppedOnStop: number;
  /** Hints waiting now, and the most that ever waited at once (both kinds). */
  queued: number;
  maxQueued: number;
  /** Connections open now. */
  connections: number;
  /** Connections closed for sending nothing (or their headers too slowly) for too long. */
  idleClosed: number;
  /** Connections closed as they arrived: maxConnections were open. */
  refusedConnections: number;
}

export interface ReceiverLimits {
  idleTimeoutMs: number;
  maxConnections: number;
  maxQueuedHints: number;
  maxBodyBytes: number;
}

export interface WebhookReceiver {
  /** The full URL to give Alliance, token included. */
  url: string;
  port: number;
  /** The bounds in force (defaults filled in). */
  limits: ReceiverLimits;
  stats(): ReceiverStats;
  /** Resolves when every acknowledged body has been processed (its hint looked up, dropped or ignored). */
  idle(): Promise<void>;
  /**
   * Stops: no new connection, open ones closed, waiting hints dropped (counted in droppedOnStop); resolves
   * once the lookups already running (at most the concurrency) have finished.
   */
  close(): Promise<void>;
}

export const WEBHOOK_PATH = '/alliance/webhook/';

const KNOWN_EVENTS = new Set(['payout.succeeded', 'payout.failed', 'payin.initiated', 'payin.succeeded', 'payin.failed']);
const DUPLICATE_WINDOW_MS = 10 * 60_000;
const DUPLICATE_MEMORY = 10_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_CONNECTIONS = 256;
export const DEFAULT_MAX_QUEUED_HINTS = 1000;
/** A warning about dropped hints at most this often (a flood would otherwise flood the log). */
const DROP_WARN_EVERY_MS = 10_000;

function sha256(s: string | Buffer): Buffer {
  return createHash('sha256').update(s).digest();
}

function normalizeIp(ip: string | undefined): string {
  if (!ip) return '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

type Parsed = { ok: true; hint: Omit<WebhookHint, 'receivedAt'>; known: boolean } | { ok: false; reason: 'malformed' | 'unknown_event'; detail: string };

/** What a body claims, reduced to the three things a handler may use. */
export function parseWebhookBody(body: Buffer): Parsed {
  let j: unknown;
  try {
    j = JSON.parse(body.toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed', detail: 'not JSON' };
  }
  if (!j || typeof j !== 'object' || Array.isArray(j)) return { ok: false, reason: 'malformed', detail: 'not a JSON object' };
  const { event, data } = j as { event?: unknown; data?: unknown };
  if (typeof event !== 'string' || !event.trim()) return { ok: false, reason: 'malformed', detail: 'no event' };
  const ev = event.trim();
  const kind: HintKind | undefined = ev.startsWith('payout.') ? 'payout' : ev.startsWith('payin.') ? 'payin' : undefined;
  if (!kind) return { ok: false, reason: 'unknown_event', detail: ev.slice(0, 60) };
  if (!data || typeof data !== 'object' || Array.isArray(data)) return { ok: false, reason: 'malformed', detail: 'no data object' };
  const raw = (data as { order_id?: unknown }).order_id;
  const orderId = typeof raw === 'string' ? raw.trim() : typeof raw === 'number' && Number.isSafeInteger(raw) ? String(raw) : undefined;
  // An order_id is ours to look up: keep it to what one can be (no control characters, bounded).
  if (!orderId || orderId.length > 200 || /[\u0000-\u001f\u007f]/.test(orderId)) return { ok: false, reason: 'malformed', detail: 'no usable order_id' };
  return { ok: true, hint: { kind, orderId, event: ev.slice(0, 60) }, known: KNOWN_EVENTS.has(ev) };
}

export async function startWebhookReceiver(o: ReceiverOptions): Promise<WebhookReceiver> {
  if (!o.token || o.token.length < 16 || !/^[A-Za-z0-9._~-]+$/.test(o.token)) {
    throw new TypeError('the webhook token must be at least 16 URL-safe characters (letters, digits, . _ ~ -)');
  }
  const tokenHash = sha256(o.token);
  const maxBody = o.maxBodyBytes ?? 64 * 1024;
  const limits: ReceiverLimits = {
    idleTimeoutMs: o.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    maxConnections: o.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    maxQueuedHints: o.maxQueuedHints ?? DEFAULT_MAX_QUEUED_HINTS,
    maxBodyBytes: maxBody,
  };
  for (const [k, v] of Object.entries(limits)) if (!(Number.isInteger(v) && v >= 1)) throw new RangeError(`webhook receiver: ${k} must be a positive integer`);
  const allow = o.allowIps?.length ? new Set(o.allowIps.map(normalizeIp)) : undefined;
  const log = o.logger;
  const stats: ReceiverStats = {
    received: 0,
    hints: 0,
    duplicates: 0,
    malformed: 0,
    unknownEvent: 0,
    unhandled: 0,
    badToken: 0,
    forbiddenIp: 0,
    tooLarge: 0,
    methodNotAllowed: 0,
    handlerErrors: 0,
    outcomes: {},
    deduplicated: 0,
    dropped: 0,
    droppedOnStop: 0,
    queued: 0,
    maxQueued: 0,
    connections: 0,
    idleClosed: 0,
    refusedConnections: 0,
  };
  const seen = new Map<string, number>();
  let closing: Promise<void> | undefined;
  const stopping = new AbortController();
  let running = 0;
  let waiters: Array<() => void> = [];

  const answer = (res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}) => {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
  };

  const tokenOk = (pathname: string): boolean => {
    if (!pathname.startsWith(WEBHOOK_PATH)) return false;
    let given: string;
    try {
      given = decodeURIComponent(pathname.slice(WEBHOOK_PATH.length).replace(/\/+$/, ''));
    } catch {
      return false;
    }
    // Hashes have equal length, so the comparison takes the same time whatever was sent.
    return timingSafeEqual(sha256(given), tokenHash);
  };

  const isDuplicate = (body: Buffer, now: number): boolean => {
    const key = sha256(body).toString('base64');
    for (const [k, t] of seen) {
      if (t > now - DUPLICATE_WINDOW_MS && seen.size <= DUPLICATE_MEMORY) break;
      seen.delete(k);
    }
    const dup = seen.has(key);
    seen.delete(key);
    seen.set(key, now);
    return dup;
  };

  const done = () => {
    running--;
    if (running === 0) {
      const w = waiters;
      waiters = [];
      for (const r of w) r();
    }
  };

  const lookup = (handler: HintHandler) => async (hint: WebhookHint): Promise<void> => {
    stats.hints++;
    try {
      const outcome = await handler(hint, stopping.signal);
      if (typeof outcome === 'string') stats.outcomes[outcome] = (stats.outcomes[outcome] ?? 0) + 1;
    } catch (err) {
      stats.handlerErrors++;
      log?.error({ kind: hint.kind, event: hint.event, orderId: hint.orderId, err: (err as Error).message }, 'webhook handler failed');
    }
  };
  const queues: Partial<Record<HintKind, HintQueue<WebhookHint>>> = {};
  const concurrency = { payout: 4, payin: 2, ...o.concurrency };
  if (o.onPayoutHint) queues.payout = new HintQueue({ max: limits.maxQueuedHints, concurrency: concurrency.payout, run: lookup(o.onPayoutHint) });
  if (o.onPayinHint) queues.payin = new HintQueue({ max: limits.maxQueuedHints, concurrency: concurrency.payin, run: lookup(o.onPayinHint) });
  const allQueues = () => Object.values(queues);

  let lastDropWarning = -Infinity;
  const dispatch = (hint: WebhookHint): void => {
    const queue = queues[hint.kind];
    if (!queue) {
      stats.unhandled++;
      log?.warn({ kind: hint.kind, event: hint.event, orderId: hint.orderId }, 'webhook of a kind nobody handles: acknowledged, ignored');
      return;
    }
    const offered = queue.offer(hint);
    if (offered === 'deduplicated') stats.deduplicated++;
    else if (offered === 'dropped') {
      stats.dropped++;
      log?.debug({ kind: hint.kind, event: hint.event, orderId: hint.orderId }, 'webhook hint dropped: the queue is full');
      const now = Date.now();
      if (now - lastDropWarning >= DROP_WARN_EVERY_MS) {
        lastDropWarning = now;
        log?.warn(
          { dropped: stats.dropped, maxQueuedHints: limits.maxQueuedHints },
          'webhook hints dropped: more are waiting than the queue holds (a flood?); pending payouts are still polled, a payin can be asked with `payouts payin-status`',
        );
      }
    }
    stats.maxQueued = Math.max(stats.maxQueued, allQueues().reduce((n, q) => n + q.length, 0));
  };

  /** Runs after the answer went out: takes the hint from the body and queues it. */
  const handleBody = (body: Buffer, receivedAt: Date): void => {
    const dup = isDuplicate(body, receivedAt.getTime());
    if (dup) stats.duplicates++;
    const p = parseWebhookBody(body);
    if (!p.ok) {
      if (p.reason === 'malformed') stats.malformed++;
      else stats.unknownEvent++;
      log?.warn({ reason: p.reason, detail: p.detail, bytes: body.length }, 'webhook acknowledged, ignored');
      return;
    }
    // An unknown event of a known kind (say "payout.reversed") is still a reason to look: the lookup decides.
    if (!p.known) {
      stats.unknownEvent++;
      log?.warn({ event: p.hint.event, orderId: p.hint.orderId }, 'unknown webhook event: treated as a hint to check');
    }
    log?.info({ kind: p.hint.kind, event: p.hint.event, orderId: p.hint.orderId, duplicate: dup }, 'webhook hint');
    // Only the three fields and the time go on: the body is garbage from here.
    dispatch({ kind: p.hint.kind, orderId: p.hint.orderId, event: p.hint.event, receivedAt });
  };

  // Node checks its headers and request timeouts on an interval (30 s by default): once a second, so
  // they hold to about a second.
  const server: Server = createServer({ connectionsCheckingInterval: 1000 }, (req: IncomingMessage, res: ServerResponse) => {
    stats.received++;
    const pathname = (req.url ?? '/').split('?')[0] ?? '/';
    if (allow && !allow.has(normalizeIp(req.socket.remoteAddress))) {
      stats.forbiddenIp++;
      req.resume();
      return answer(res, 403, { ok: false, error: 'forbidden' }, { connection: 'close' });
    }
    if (!tokenOk(pathname)) {
      stats.badToken++;
      req.resume();
      return answer(res, 404, { ok: false, error: 'not found' });
    }
    if ((req.method ?? 'GET').toUpperCase() !== 'POST') {
      stats.methodNotAllowed++;
      req.resume();
      return answer(res, 405, { ok: false, error: 'POST only' }, { allow: 'POST' });
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBody) {
      stats.tooLarge++;
      req.resume();
      return answer(res, 413, { ok: false, error: 'too large' }, { connection: 'close' });
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > maxBody) {
        over = true;
        stats.tooLarge++;
        answer(res, 413, { ok: false, error: 'too large' }, { connection: 'close' });
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (over) return;
      const receivedAt = new Date();
      // Acknowledge first: the sender's retry clock stops here, whatever the handler then does.
      answer(res, 200, { ok: true });
      const body = Buffer.concat(chunks, size);
      running++;
      setImmediate(() => {
        try {
          if (!closing) handleBody(body, receivedAt);
          else stats.droppedOnStop++;
        } catch (err) {
          stats.handlerErrors++;
          log?.error({ err: (err as Error).message }, 'webhook processing failed');
        } finally {
          done();
        }
      });
    });
    req.on('error', () => {
      /* a sender that hangs up mid-body: nothing to do */
    });
  });
  // A connection that sends nothing, or trickles its headers, is closed by node's headers timeout (it
  // counts from the connection, checked every second); one idle between keep-alive requests by the
  // keep-alive timeout; any other silence by the socket's inactivity timeout. (Issue 18: 19,990 idle
  // connections took a run to its open-file limit.)
  server.headersTimeout = Math.min(10_000, limits.idleTimeoutMs);
  server.requestTimeout = Math.max(30_000, limits.idleTimeoutMs);
  server.timeout = limits.idleTimeoutMs;
  server.keepAliveTimeout = Math.min(5_000, limits.idleTimeoutMs);
  server.on('timeout', (socket: Socket) => {
    stats.idleClosed++;
    socket.destroy();
  });
  // What node would do by itself (a 408 or 400, then close), counted.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    if (timedOut) stats.idleClosed++;
    else stats.malformed++;
    if (socket.writable && socket.bytesWritten === 0) {
      socket.end(timedOut ? 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n' : 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    }
    socket.destroy();
  });
  // Beyond the cap node closes a new connection as it is accepted: its file descriptor is freed at once.
  server.maxConnections = limits.maxConnections;
  server.on('drop', () => {
    stats.refusedConnections++;
  });
  server.on('connection', (socket: Socket) => {
    stats.connections++;
    socket.once('close', () => stats.connections--);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = o.host ?? '127.0.0.1';
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${addr.port}${WEBHOOK_PATH}${o.token}`,
    port: addr.port,
    limits,
    stats: () => ({ ...stats, outcomes: { ...stats.outcomes }, queued: allQueues().reduce((n, q) => n + q.length, 0) }),
    idle: async () => {
      if (running > 0) await new Promise<void>((r) => waiters.push(r));
      await Promise.all(allQueues().map((q) => q.idle()));
    },
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        // What waits is dropped now; a stop never waits for a backlog of lookups (issue 18).
        for (const q of allQueues()) stats.droppedOnStop += q.stop();
        stopping.abort();
        await closed;
        await Promise.all(allQueues().map((q) => q.idle()));
      })();
      return closing;
    },
  };
}
