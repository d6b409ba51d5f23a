import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

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
 */

export type HintKind = 'payout' | 'payin';

export interface WebhookHint {
  kind: HintKind;
  orderId: string;
  /** The event name as sent, e.g. "payout.succeeded": a claim, not a fact. */
  event: string;
  receivedAt: Date;
}

/** Returns a short outcome to count (e.g. 'stored', 'unknown_order'), or nothing. */
export type HintHandler = (hint: WebhookHint) => Promise<string | void> | string | void;

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
}

export interface WebhookReceiver {
  /** The full URL to give Alliance, token included. */
  url: string;
  port: number;
  stats(): ReceiverStats;
  /** Resolves when every acknowledged body has been processed (its handler finished). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export const WEBHOOK_PATH = '/alliance/webhook/';

const KNOWN_EVENTS = new Set(['payout.succeeded', 'payout.failed', 'payin.initiated', 'payin.succeeded', 'payin.failed']);
const DUPLICATE_WINDOW_MS = 10 * 60_000;
const DUPLICATE_MEMORY = 10_000;

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
  };
  const seen = new Map<string, number>();
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

  const dispatch = async (hint: WebhookHint): Promise<void> => {
    const handler = hint.kind === 'payout' ? o.onPayoutHint : o.onPayinHint;
    if (!handler) {
      stats.unhandled++;
      log?.warn({ kind: hint.kind, event: hint.event, orderId: hint.orderId }, 'webhook of a kind nobody handles: acknowledged, ignored');
      return;
    }
    stats.hints++;
    try {
      const outcome = await handler(hint);
      if (typeof outcome === 'string') stats.outcomes[outcome] = (stats.outcomes[outcome] ?? 0) + 1;
    } catch (err) {
      stats.handlerErrors++;
      log?.error({ kind: hint.kind, event: hint.event, orderId: hint.orderId, err: (err as Error).message }, 'webhook handler failed');
    }
  };

  /** Runs after the answer went out; resolves when the handler is done. */
  const handleBody = async (body: Buffer, receivedAt: Date): Promise<void> => {
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
    await dispatch({ ...p.hint, receivedAt });
  };

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
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
        handleBody(body, receivedAt)
          .catch((err: unknown) => {
            stats.handlerErrors++;
            log?.error({ err: (err as Error).message }, 'webhook processing failed');
          })
          .finally(done);
      });
    });
    req.on('error', () => {
      /* a sender that hangs up mid-body: nothing to do */
    });
  });
  // A sender trickling bytes must not hold a connection forever.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

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
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${addr.port}${WEBHOOK_PATH}${o.token}`,
    port: addr.port,
    stats: () => ({ ...stats, outcomes: { ...stats.outcomes } }),
    idle: () => (running === 0 ? Promise.resolve() : new Promise((r) => waiters.push(r))),
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
