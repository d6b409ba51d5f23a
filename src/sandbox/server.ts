import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { TimestampUnit } from '../alliance/signing.js';
import { maskAccount } from '../log.js';
import { formatRupees, parseApiAmount } from '../money.js';
import { authenticate, ReplayCache, type ReencodeMode, type SandboxGetBodyMode } from './auth.js';
import { describePlan, parseFaultOptions, planFaults, type FaultOptions, type FaultPlan } from './faults.js';
import { Ledger, type LedgerEntry } from './ledger.js';
import { RateLimiter, SlidingWindowLimiter } from './ratelimit.js';
import { deriveSeed, Rng } from './rng.js';
import { validateInitiate } from './validate.js';
import { fail, initiateData, invalid, ok, payinData, payoutStatusData, payoutWebhookData, type Envelope } from './views.js';
import { WebhookSender } from './webhooks.js';

/**
 * A local simulation of the Alliance Payin & Payout API (../shared/seed/alliance-api.txt), faithful
 * enough to rehearse a batch against: same paths, envelope, status codes, signature rules; a wallet
 * that is debited and refunded; payouts that settle later; webhooks; and injectable faults, all
 * reproducible from a seed.
 */

export type { FaultOptions } from './faults.js';
export type { LedgerEntry } from './ledger.js';

export interface SandboxOptions {
  accessKey: string;
  secretKey: string;
  /** Starting wallet. */
  balancePaise: bigint;
  /** Default 0 (any free port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Requests per second per access key; above it 429 with Retry-After. Undefined: unlimited. */
  rate?: number;
  /**
   * How `rate` is counted. 'bucket' (default): a token bucket holding one second's worth. 'sliding': at
   * most `rate` arrivals in any (t - 1000 ms, t], every arrival counted (refused ones too).
   */
  rateMode?: 'bucket' | 'sliding';
  /** Pending -> Approved/Rejected after this delay. Default 200. */
  settleMs?: number;
  /** Seeds every random choice. Default: derived from the clock (see Sandbox.seed). */
  seed?: number;
  webhookUrl?: string;
  /** Default 590n (5.90 rupees) whatever the amount and method. */
  chargePaise?: (amountPaise: bigint, method: string) => bigint;
  /** Default: account numbers ending in "0000" are Rejected at settlement. */
  rejectAccount?: (accountNo: string) => boolean;
  /** Default true: a used order_id gets 422. False: executes again (to test a client alone). */
  dedupOrderIds?: boolean;
  /** Which GET body lines are accepted in signatures. Default 'either'. */
  getBodyMode?: SandboxGetBodyMode;
  /**
   * 'raw' (default): verify over the bytes received. 'php': over PHP json_encode of the parsed body;
   * 'ascii': over Python's json.dumps (non-ASCII escaped).
   */
  reencode?: ReencodeMode;
  /** The unit the Timestamp header is read in: 'ms' (default, the document's text) or 's' (its header table). */
  timestampUnit?: TimestampUnit;
  /** Refuse beneficiary_mobile_no sent as a string, as a server validating it as a number would. Default false. */
  requireMobileNumber?: boolean;
  /** The admin endpoints' token (x-admin-token header or Authorization: Bearer). Default: random, see Sandbox.adminToken. */
  adminToken?: string;
  /** Largest request body accepted; a larger one gets 413. Default 1 MiB. */
  maxBodyBytes?: number;
  allowIps?: string[];
  /** Default 5 minutes. */
  maxSkewMs?: number;
  faults?: FaultOptions;
  /** Never receives keys or signatures. */
  logger?: (line: object) => void;
  /** Webhook retry tuning (tests shorten it). Defaults: 5 attempts, 100 ms doubling. */
  webhookAttempts?: number;
  webhookBaseDelayMs?: number;
  /** Hold-back of a delivery under the webhookReorder fault, shortest and longest (default 50 to 500 ms). */
  webhookReorderMs?: [number, number];
}

export interface Sandbox {
  url: string;
  port: number;
  /** The seed in use, so a run without an explicit seed can be replayed. */
  seed: number;
  /** The token the admin endpoints (/__admin/…) require. */
  adminToken: string;
  close(): Promise<void>;
  /** Every payout created (an order_id executed twice with dedup off appears twice). */
  ledger(): LedgerEntry[];
  /** How many times an initiate for that order_id was executed (debited). */
  executions(orderId: string): number;
  balancePaise(): bigint;
  setFaults(f: FaultOptions): void;
  /** Settles every pending payout and payin now. */
  settleAll(): void;
  createPayin(p: { orderId: string; amountPaise: bigint; userId?: string; method?: string; outcome?: 'Approved' | 'Rejected' }): void;
  /** API requests received (admin endpoints not counted). */
  requestCount(): number;
  /**
   * When each API request arrived (admin endpoints not counted), in ms since the epoch with sub-ms
   * precision, taken as the request arrives before anything else is done with it: where a server counts
   * its rate limit. The latest million are kept.
   */
  arrivals(): number[];
  /** Resolves when no webhook delivery is queued or being retried. */
  webhooksIdle(): Promise<void>;
  /** Webhook deliveries: sent, given up, still queued, held back by the webhookReorder fault. */
  webhookStats(): { sent: number; failed: number; pending: number; heldBack: number };
}

const MAX_BODY = 1024 * 1024;

/** The order_id of an initiate body, if it has one (for the log only; never throws). */
function orderIdOf(raw: string | Buffer): string | undefined {
  try {
    const j = JSON.parse(String(raw)) as { order_id?: unknown };
    return typeof j.order_id === 'string' ? j.order_id : undefined;
  } catch {
    return undefined;
  }
}
const MAX_ARRIVALS = 1_000_000;
const DEFAULT_CHARGE = 590n;

type Route =
  | { name: 'balance' }
  | { name: 'payinStatus' }
  | { name: 'initiate' }
  | { name: 'payoutStatus'; orderId: string }
  | { name: 'notFound' }
  | { name: 'methodNotAllowed' };

function route(method: string, path: string): Route {
  const m = method.toUpperCase();
  const want = (expected: string, r: Route): Route => (m === expected ? r : { name: 'methodNotAllowed' });
  if (path === 'api/v1/balance') return want('GET', { name: 'balance' });
  if (path === 'api/v1/payin/transactions') return want('POST', { name: 'payinStatus' });
  if (path === 'api/v1/payout/initiate') return want('POST', { name: 'initiate' });
  const s = /^api\/v1\/payout\/([^/]+)\/status$/.exec(path);
  if (s) {
    let orderId: string;
    try {
      orderId = decodeURIComponent(s[1]!);
    } catch {
      return { name: 'notFound' };
    }
    return want('GET', { name: 'payoutStatus', orderId });
  }
  return { name: 'notFound' };
}

interface Reply {
  status: number;
  body: Envelope | Record<string, unknown>;
  headers?: Record<string, string>;
}

/** The body as text, or undefined when it is larger than `max` (the rest is drained, not kept). */
function readBody(req: IncomingMessage, max: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) {
      resolve(undefined);
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        resolve(undefined);
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const TOO_LARGE: Reply = {
  status: 413,
  body: { error: 'Payload Too Large', data: null, message: 'The request body is too large.', success: false },
  headers: { connection: 'close' },
};

/** Compares tokens in constant time (hashing first makes the lengths equal). */
function tokenMatches(expected: string, received: string | undefined): boolean {
  if (!received) return false;
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(received).digest();
  return timingSafeEqual(a, b);
}

function adminTokenOf(req: IncomingMessage): string | undefined {
  const h = req.headers['x-admin-token'];
  if (typeof h === 'string' && h) return h.trim();
  const auth = req.headers['authorization'];
  const m = typeof auth === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(auth) : null;
  return m ? m[1] : undefined;
}

function isJsonContentType(req: IncomingMessage): boolean {
  const ct = req.headers['content-type'];
  return typeof ct === 'string' && /^application\/json\s*(;|$)/i.test(ct.trim());
}

/** Parses a JSON object body, or gives the 400 reply the API would send. */
function parseJsonObject(req: IncomingMessage, raw: string): Record<string, unknown> | Reply {
  if (!isJsonContentType(req)) {
    return { status: 400, body: fail('Bad Request', 'The request body must be JSON (Content-Type: application/json).') };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw === '' ? '{}' : raw);
  } catch {
    return { status: 400, body: fail('Bad Request', 'Malformed JSON body.') };
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return { status: 400, body: fail('Bad Request', 'The request body must be a JSON object.') };
  }
  return parsed as Record<string, unknown>;
}

function isReply(x: unknown): x is Reply {
  return !!x && typeof x === 'object' && 'status' in x && 'body' in x && typeof (x as Reply).status === 'number';
}

function send(res: ServerResponse, r: Reply): void {
  if (res.headersSent || res.destroyed) return;
  const json = JSON.stringify(r.body);
  res.writeHead(r.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(json),
    ...(r.headers ?? {}),
  });
  res.end(json);
}

export async function startSandbox(opts: SandboxOptions): Promise<Sandbox> {
  const seed = (opts.seed ?? Date.now()) >>> 0;
  const faultRng = new Rng(deriveSeed(seed, 'faults'));
  const ledgerRng = new Rng(deriveSeed(seed, 'ledger'));
  const webhookRng = new Rng(deriveSeed(seed, 'webhooks'));
  const log = opts.logger;
  const slowRng = new Rng(deriveSeed(seed, 'execute-delay'));
  let faults: FaultOptions = { ...(opts.faults ?? {}) };
  let requests = 0;
  const arrivals: number[] = [];
  const maxBody = opts.maxBodyBytes ?? MAX_BODY;
  const adminToken = opts.adminToken ?? randomBytes(18).toString('base64url');

  const maxSkewMs = opts.maxSkewMs ?? 5 * 60_000;
  const authCfg = {
    accessKey: opts.accessKey,
    secretKey: opts.secretKey,
    getBodyMode: opts.getBodyMode ?? 'either',
    reencode: opts.reencode ?? 'raw',
    timestampUnit: opts.timestampUnit ?? 'ms',
    maxSkewMs,
    allowIps: opts.allowIps,
  } as const;
  const replay = new ReplayCache(maxSkewMs);
  const limiter =
    opts.rate === undefined ? undefined : opts.rateMode === 'sliding' ? new SlidingWindowLimiter(opts.rate) : new RateLimiter(opts.rate);

  const webhooks = new WebhookSender({
    url: opts.webhookUrl,
    rng: webhookRng,
    faults: () => faults,
    logger: log,
    ...(opts.webhookAttempts === undefined ? {} : { attempts: opts.webhookAttempts }),
    ...(opts.webhookBaseDelayMs === undefined ? {} : { baseDelayMs: opts.webhookBaseDelayMs }),
    ...(opts.webhookReorderMs === undefined ? {} : { reorderMinMs: opts.webhookReorderMs[0], reorderMaxMs: opts.webhookReorderMs[1] }),
  });

  const ledger = new Ledger({
    balancePaise: opts.balancePaise,
    settleMs: opts.settleMs ?? 200,
    dedupOrderIds: opts.dedupOrderIds ?? true,
    chargePaise: opts.chargePaise ?? (() => DEFAULT_CHARGE),
    rejectAccount: opts.rejectAccount ?? ((acc) => acc.endsWith('0000')),
    rng: ledgerRng,
    onPayoutSettled: (p) =>
      webhooks.send(p.status === 'Approved' ? 'payout.succeeded' : 'payout.failed', payoutWebhookData(p)),
    onPayinCreated: (p) => webhooks.send('payin.initiated', payinData(p, true)),
    onPayinSettled: (p) => webhooks.send(p.status === 'Approved' ? 'payin.succeeded' : 'payin.failed', payinData(p)),
  });

  const delayTimers = new Set<NodeJS.Timeout>();
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        delayTimers.delete(t);
        resolve();
      }, ms);
      t.unref();
      delayTimers.add(t);
    });

  /** The API proper, after authentication and faults: runs the request against the ledger. */
  function execute(r: Route, req: IncomingMessage, raw: string): Reply {
    switch (r.name) {
      case 'balance':
        return { status: 200, body: ok({ balance: formatRupees(ledger.balancePaise()) }, 'Merchant wallet balance fetched.') };
      case 'payoutStatus': {
        const p = ledger.payout(r.orderId);
        if (!p) return { status: 404, body: fail('Not Found', 'Transaction not found.') };
        return { status: 200, body: ok(payoutStatusData(p), 'Payout status fetched.') };
      }
      case 'payinStatus': {
        const body = parseJsonObject(req, raw);
        if (isReply(body)) return body;
        const id = body['order_id'];
        if (id === undefined || id === null || (typeof id === 'string' && id.trim() === '')) {
          return { status: 422, body: invalid({ order_id: ['The order id field is required.'] }) };
        }
        if (typeof id !== 'string') return { status: 422, body: invalid({ order_id: ['The order id must be a string.'] }) };
        const p = ledger.payin(id.trim());
        if (!p) return { status: 404, body: fail('Not Found', 'Transaction not found.') };
        return { status: 200, body: ok(payinData(p), 'Payin transaction fetched successfully.') };
      }
      case 'initiate': {
        const body = parseJsonObject(req, raw);
        if (isReply(body)) return body;
        const v = validateInitiate(body, (id) => ledger.orderIdTaken(id), { mobileAsNumber: opts.requireMobileNumber ?? false });
        if (!v.ok) return { status: 422, body: invalid(v.errors) };
        const res = ledger.initiate(v.value);
        if (res.kind === 'insufficient') return { status: 422, body: invalid({ amount: ['Insufficient wallet balance.'] }) };
        return { status: 201, body: ok(initiateData(res.payout), 'Payout initiated.') };
      }
      case 'notFound':
        return { status: 404, body: fail('Not Found', 'The route could not be found.') };
      case 'methodNotAllowed':
        return { status: 405, body: fail('Method Not Allowed', 'The method is not supported for this route.') };
    }
  }

  async function handleApi(req: IncomingMessage, res: ServerResponse, pathname: string, arrivedAt: number): Promise<void> {
    const started = Date.now();
    requests++;
    const method = (req.method ?? 'GET').toUpperCase();
    const sp = pathname.replace(/^\/+/, '');
    const r = route(method, sp);
    // Drawn at arrival, before any await, so the n-th request's fate depends only on seed and n.
    const plan: FaultPlan = planFaults(faults, faultRng, sp);
    const slow =
      r.name === 'initiate' &&
      (faults.executeDelayMs ?? 0) > 0 &&
      (!faults.onlyPaths?.length || faults.onlyPaths.includes(sp)) &&
      slowRng.chance(faults.executeDelayRate ?? 1);
    let status = 0;
    let outcome: string | undefined = describePlan(plan);
    // For the log: which payout an initiate was about (an oracle tells a row's attempts apart by it).
    let orderId: string | undefined;
    const finish = (r: Reply) => {
      status = r.status;
      send(res, r);
    };
    try {
      const raw = await readBody(req, maxBody);
      if (raw === undefined) return finish(TOO_LARGE);
      if (r.name === 'initiate') orderId = orderIdOf(raw);
      if (plan.delayMs > 0) await sleep(plan.delayMs);

      if (r.name === 'notFound' || r.name === 'methodNotAllowed') return finish(execute(r, req, raw));

      const auth = authenticate(
        authCfg,
        { method, signingPath: sp, rawBody: raw, headers: req.headers, remoteAddress: req.socket.remoteAddress, now: Date.now() },
        replay,
      );
      if (!auth.ok) return finish({ status: 401, body: fail('Unauthorized', auth.message) });

      if (limiter) {
        const wait = limiter.take(opts.accessKey, arrivedAt);
        if (wait > 0) {
          outcome = 'rate_limited';
          return finish({ status: 429, body: fail('Too Many Requests', 'Too Many Attempts.'), headers: { 'retry-after': String(wait) } });
        }
      }
      if (plan.before === '429') {
        return finish({ status: 429, body: fail('Too Many Requests', 'Too Many Attempts.'), headers: { 'retry-after': '1' } });
      }
      if (plan.before === '500') return finish({ status: 500, body: fail('Server Error', 'Internal Server Error.') });

      if (slow) {
        // The client may give up meanwhile; the server carries on and executes all the same.
        outcome = [outcome, `execute_delay:${faults.executeDelayMs}`].filter(Boolean).join(',');
        await sleep(Math.max(0, arrivedAt + faults.executeDelayMs! - (performance.timeOrigin + performance.now())));
      }
      const reply = execute(r, req, raw);

      if (plan.after === 'hang') {
        // Executed; the answer never comes. close() destroys the socket.
        status = -1;
        return;
      }
      if (plan.after === 'drop') {
        status = -2;
        req.socket.destroy();
        return;
      }
      if (plan.after === '500') return finish({ status: 500, body: fail('Server Error', 'Internal Server Error.') });
      finish(reply);
    } catch (e) {
      outcome = `exception ${(e as Error).message}`;
      finish({ status: 500, body: fail('Server Error', 'Internal Server Error.') });
    } finally {
      log?.({ component: 'sandbox', method, path: sp, status, ...(outcome ? { fault: outcome } : {}), ...(orderId ? { order_id: orderId } : {}), ms: Date.now() - started, arrived_at: arrivedAt });
    }
  }

  async function handleAdmin(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    // With --host 0.0.0.0 anyone on the network could credit the wallet or settle payouts without it.
    if (!tokenMatches(adminToken, adminTokenOf(req))) {
      req.resume();
      return send(res, {
        status: 401,
        body: fail('Unauthorized', 'The admin endpoints need the admin token (x-admin-token header or Authorization: Bearer), printed when the sandbox started.'),
      });
    }
    const rawOrNone = await readBody(req, maxBody);
    if (rawOrNone === undefined) return send(res, TOO_LARGE);
    const raw = rawOrNone;
    const json = (): Record<string, unknown> | Reply => {
      try {
        const v: unknown = JSON.parse(raw === '' ? '{}' : raw);
        if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
      } catch {
        /* fall through */
      }
      return { status: 400, body: fail('Bad Request', 'Malformed JSON body.') };
    };
    if (method === 'GET' && pathname === '/__admin/ledger') {
      return send(res, {
        status: 200,
        body: {
          balance: formatRupees(ledger.balancePaise()),
          requests,
          seed,
          // Full account numbers never leave over HTTP: the library's ledger() has them for tests.
          payouts: ledger.entries().map(({ amountPaise, chargePaise, accountNo, ...e }) => ({
            ...e,
            accountNo: maskAccount(accountNo),
            amount: formatRupees(amountPaise),
            charge: formatRupees(chargePaise),
          })),
          payins: ledger.allPayins().map((p) => payinData(p)),
          webhooks: webhooks.stats(),
        },
      });
    }
    if (method === 'POST' && pathname === '/__admin/payins') {
      const b = json();
      if (isReply(b)) return send(res, b);
      const orderId = b['order_id'];
      const amount = parseApiAmount(b['amount']);
      const outcome = b['outcome'];
      if (typeof orderId !== 'string' || orderId === '' || amount === undefined || amount <= 0n) {
        const errors: Record<string, string[]> = {};
        if (typeof orderId !== 'string' || orderId === '') errors['order_id'] = ['The order id field is required.'];
        if (amount === undefined || amount <= 0n) errors['amount'] = ['The amount must be greater than 0.'];
        return send(res, { status: 422, body: invalid(errors) });
      }
      if (outcome !== undefined && outcome !== 'Approved' && outcome !== 'Rejected') {
        return send(res, { status: 422, body: invalid({ outcome: ['The selected outcome is invalid.'] }) });
      }
      if (ledger.payin(orderId)) return send(res, { status: 422, body: invalid({ order_id: ['The order id has already been taken.'] }) });
      const p = ledger.createPayin({
        orderId,
        amountPaise: amount,
        ...(typeof b['user_id'] === 'string' ? { userId: b['user_id'] } : {}),
        ...(typeof b['method'] === 'string' ? { method: b['method'] } : {}),
        ...(outcome === undefined ? {} : { outcome }),
      });
      return send(res, { status: 201, body: ok(payinData(p), 'Payin created.') });
    }
    if (method === 'POST' && pathname === '/__admin/faults') {
      const b = json();
      if (isReply(b)) return send(res, b);
      try {
        faults = parseFaultOptions(b);
      } catch (e) {
        return send(res, { status: 422, body: fail({ faults: [(e as Error).message] }, 'The given data was invalid.') });
      }
      return send(res, { status: 200, body: ok({ faults }, 'Faults updated.') });
    }
    if (method === 'POST' && pathname === '/__admin/settle') {
      return send(res, { status: 200, body: ok({ settled: ledger.settleAll() }, 'Settled.') });
    }
    send(res, { status: 404, body: fail('Not Found', 'Unknown admin endpoint.') });
  }

  const server: Server = createServer((req, res) => {
    const arrivedAt = performance.timeOrigin + performance.now();
    const pathname = (req.url ?? '/').split('?')[0] ?? '/';
    const admin = pathname.startsWith('/__admin/');
    if (!admin) {
      if (arrivals.length >= MAX_ARRIVALS) arrivals.splice(0, MAX_ARRIVALS / 10);
      arrivals.push(arrivedAt);
    }
    const p = admin ? handleAdmin(req, res, pathname) : handleApi(req, res, pathname, arrivedAt);
    p.catch(() => {
      if (!res.headersSent) send(res, { status: 500, body: fail('Server Error', 'Internal Server Error.') });
    });
  });
  // A hung request must stay hung until the client gives up; node's default would answer 408.
  server.requestTimeout = 0;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = opts.host ?? '127.0.0.1';
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const url = `http://${urlHost}:${addr.port}`;
  log?.({ component: 'sandbox', msg: 'listening', url, seed });

  let closing: Promise<void> | undefined;
  return {
    url,
    port: addr.port,
    seed,
    adminToken,
    close() {
      closing ??= new Promise<void>((resolve) => {
        ledger.close();
        webhooks.close();
        for (const t of delayTimers) clearTimeout(t);
        delayTimers.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
    ledger: () => ledger.entries(),
    executions: (orderId) => ledger.executions(orderId),
    balancePaise: () => ledger.balancePaise(),
    setFaults(f) {
      faults = { ...f };
    },
    settleAll() {
      ledger.settleAll();
    },
    createPayin(p) {
      ledger.createPayin(p);
    },
    requestCount: () => requests,
    arrivals: () => arrivals.slice(),
    webhooksIdle: () => webhooks.idle(),
    webhookStats: () => webhooks.stats(),
  };
}
