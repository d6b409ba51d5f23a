import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, type Dispatcher } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AllianceClient, parsePayout, type ClientOptions, type PreparedRequest } from '../src/alliance/client.js';
import {
  AllianceError,
  AuthenticationError,
  EnvelopeError,
  MalformedResponseError,
  NetworkError,
  NotFoundError,
  RateLimitError,
  ResponseTooLargeError,
  ServerError,
  TimeoutError,
  ValidationError,
} from '../src/alliance/errors.js';
import { withRetry } from '../src/alliance/retry.js';
import { sign, type GetBodyMode, type JsonEscapeMode } from '../src/alliance/signing.js';
import type { PayoutRequest } from '../src/alliance/types.js';
import { createLogger } from '../src/log.js';
import type { Sandbox, SandboxOptions } from '../src/sandbox/server.js';
import { KEYS, sandbox as startSandbox } from './helpers/env.js';

// ---------------------------------------------------------------------------------------------
// Plumbing: every client records the signatures it sends (through an undici interceptor) and logs
// to a captured pino stream, so any test can check that nothing secret leaks.

const sentSignatures = new Set<string>();
const recording: Dispatcher = new Agent({ keepAliveTimeout: 1000 }).compose((dispatch) => (opts, handler) => {
  const h = opts.headers as Record<string, string> | undefined;
  if (h && typeof h === 'object' && !Array.isArray(h) && typeof h['signature'] === 'string') sentSignatures.add(h['signature']);
  return dispatch(opts, handler);
});

const logLines: string[] = [];
const logger = createLogger({ level: 'debug', destination: { write: (s: string) => void logLines.push(s) } });

function secrets(): string[] {
  return [KEYS.accessKey, KEYS.secretKey, ...sentSignatures];
}

function expectNoSecrets(text: string, what: string): void {
  for (const s of secrets()) {
    if (text.includes(s)) throw new Error(`${what} contains a secret (${s.slice(0, 6)}…): ${text.slice(0, 300)}`);
  }
}

/** Awaits a call that must fail with an AllianceError; checks its message and its log line for secrets. */
async function failure(p: Promise<unknown>): Promise<AllianceError> {
  const e = await p.then(
    (v) => {
      throw new Error(`expected a failure, got ${JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? String(x) : x))}`);
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AllianceError);
  const err = e as AllianceError;
  expectNoSecrets(err.message, 'error message');
  expectNoSecrets(String(err.stack), 'error stack');
  logger.error({ err }, 'api call failed');
  return err;
}

const sandboxes: Sandbox[] = [];
const servers: Server[] = [];
const clients: AllianceClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(sandboxes.splice(0).map((s) => s.close()));
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r())))));
});

afterAll(async () => {
  await recording.close();
});

async function sandbox(over: Partial<SandboxOptions> = {}): Promise<Sandbox> {
  const sb = await startSandbox({ settleMs: 60_000, ...over });
  sandboxes.push(sb);
  return sb;
}

function client(base: { url: string }, over: Partial<ClientOptions> = {}): AllianceClient {
  const c = new AllianceClient({ baseUrl: base.url, ...KEYS, timeoutMs: 2000, dispatcher: recording, logger, ...over });
  clients.push(c);
  return c;
}

let seq = 0;
function payoutReq(over: Partial<PayoutRequest> = {}): PayoutRequest {
  return {
    beneficiaryName: 'Test Name',
    beneficiaryEmail: 'test.test@gmail.com',
    beneficiaryMobile: '7878787878',
    beneficiaryAddress: 'NOIDA',
    paymentMethod: 'IMPS',
    accountNumber: '99999999999',
    bankName: 'SBI',
    ifsc: 'SBIN0060589',
    amountPaise: 10050n,
    orderId: `CT-${process.pid}-${++seq}`,
    userId: 'aseq-2d2fss-22a4sd-44a33',
    remarks: null,
    ...over,
  };
}

interface Captured {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A local HTTP server whose answers the test scripts; records every request (bytes and headers). */
async function fakeServer(
  handler: (req: Captured, res: ServerResponse, n: number) => void,
): Promise<{ url: string; captured: Captured[] }> {
  const captured: Captured[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const c: Captured = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      captured.push(c);
      handler(c, res, captured.length);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, captured };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

const PENDING_DATA = {
  beneficiary_name: 'Test Name',
  beneficiary_mobile_no: 7878787878,
  amount: 100.5,
  order_id: 'X-1',
  transaction_id: null,
  charge: 2,
  status: 'Pending',
  message: 'Payout has been processing.',
};

// ---------------------------------------------------------------------------------------------

describe('balance', () => {
  it('parses the string "1111.11" to exactly 111111 paise', async () => {
    const sb = await sandbox({ balancePaise: 111_111n });
    const b = await client(sb).balance();
    expect(b).toEqual({ balancePaise: 111_111n, raw: '1111.11' });
  });

  it('is exact for large and one-decimal strings and refuses three decimals', async () => {
    const answers = ['90071992547409.93', '1111.1', 1234.56, '12.345'];
    const fake = await fakeServer((_r, res, n) =>
      json(res, 200, { error: '', data: { balance: answers[n - 1] }, message: 'Merchant wallet balance fetched.', success: true }),
    );
    const c = client(fake);
    expect((await c.balance()).balancePaise).toBe(9_007_199_254_740_993n);
    expect((await c.balance()).balancePaise).toBe(111_110n);
    expect((await c.balance()).balancePaise).toBe(123_456n);
    const e = await failure(c.balance());
    expect(e).toBeInstanceOf(MalformedResponseError);
    expect(e.message).toContain('"12.345" is not an amount');
  });
});

describe('payout initiate and status', () => {
  it('round trip: 100.50 rupees goes out as 100.5 and comes back as 10050n, charge parsed', async () => {
    const sb = await sandbox({ balancePaise: 1_000_000n });
    const c = client(sb);
    const req = payoutReq({ amountPaise: 10050n });
    expect(c.preparePayout(req).body).toContain('"amount":100.5,');

    const created = await c.initiatePayout(req);
    expect(created).toMatchObject({ orderId: req.orderId, status: 'Pending', transactionId: null, amountPaise: 10050n, chargePaise: 590n });
    expect(sb.executions(req.orderId)).toBe(1);
    expect(sb.ledger()[0]).toMatchObject({ orderId: req.orderId, amountPaise: 10050n, chargePaise: 590n });
    expect(sb.balancePaise()).toBe(1_000_000n - 10050n - 590n);

    const pending = await c.payoutStatus(req.orderId);
    expect(pending).toMatchObject({ orderId: req.orderId, status: 'Pending', amountPaise: 10050n, chargePaise: 590n });

    sb.settleAll();
    const done = await c.payoutStatus(req.orderId);
    expect(done.status).toBe('Approved');
    expect(done.transactionId).toMatch(/^\d+$/);
    expect(done.amountPaise).toBe(10050n);
  });

  it('sends the mobile as a string by default and as a number with mobileAsNumber', async () => {
    const sb = await sandbox();
    expect(JSON.parse(client(sb).preparePayout(payoutReq()).body!).beneficiary_mobile_no).toBe('7878787878');
    const c = client(sb, { mobileAsNumber: true });
    const req = payoutReq();
    expect(JSON.parse(c.preparePayout(req).body!).beneficiary_mobile_no).toBe(7878787878);
    expect((await c.initiatePayout(req)).status).toBe('Pending');
  });

  it('a server that wants the mobile as a number refuses the default string and accepts mobileAsNumber', async () => {
    const sb = await sandbox({ requireMobileNumber: true });
    const e = (await failure(client(sb).initiatePayout(payoutReq()))) as ValidationError;
    expect(e).toBeInstanceOf(ValidationError);
    expect(e.fieldErrors['beneficiary_mobile_no']).toEqual(['The beneficiary mobile no must be a number.']);
    const req = payoutReq();
    expect((await client(sb, { mobileAsNumber: true }).initiatePayout(req)).status).toBe('Pending');
    expect(sb.executions(req.orderId)).toBe(1);
  });

  it('accepts a PreparedRequest, so a retry sends the very same bytes', async () => {
    const sb = await sandbox();
    const c = client(sb);
    const req = payoutReq();
    const prepared: PreparedRequest = c.preparePayout(req);
    const info = await c.initiatePayout(prepared);
    expect(info.orderId).toBe(req.orderId);
  });
});

describe('signatures the sandbox accepts', () => {
  const getCombos: Array<[SandboxOptions['getBodyMode'], GetBodyMode, boolean]> = [
    ['empty', 'empty', true],
    ['empty', '{}', false],
    ['{}', '{}', true],
    ['{}', 'empty', false],
    ['either', 'empty', true],
    ['either', '{}', true],
  ];

  it.each(getCombos)('sandbox GET mode %s, client %s: accepted=%s', async (serverMode, clientMode, accepted) => {
    const sb = await sandbox({ getBodyMode: serverMode });
    const c = client(sb, { getBodyMode: clientMode });
    // POST is signed over its body whatever the GET mode.
    const req = payoutReq();
    await c.initiatePayout(req);
    if (accepted) {
      expect((await c.balance()).balancePaise).toBeGreaterThan(0n);
      expect((await c.payoutStatus(req.orderId)).status).toBe('Pending');
    } else {
      const e = await failure(c.balance());
      expect(e).toBeInstanceOf(AuthenticationError);
      expect(e.statusCode).toBe(401);
      expect(await failure(c.payoutStatus(req.orderId))).toBeInstanceOf(AuthenticationError);
    }
  });

  const hindi = { beneficiaryName: 'राम शर्मा', beneficiaryAddress: '12/3 MG Road', userId: 'José' };
  const postCombos: Array<['raw' | 'php', JsonEscapeMode, boolean]> = [
    ['raw', 'none', true],
    ['raw', 'ascii', true],
    ['raw', 'php', true],
    ['php', 'php', true],
    // The documented hazard: a server that re-encodes with PHP's json_encode before checking.
    ['php', 'none', false],
    ['php', 'ascii', false],
  ];

  it.each(postCombos)('sandbox reencode %s, client escape %s, Hindi name and "12/3": accepted=%s', async (reencode, escape, accepted) => {
    const sb = await sandbox({ reencode });
    const c = client(sb, { escape });
    const req = payoutReq(hindi);
    if (accepted) {
      const info = await c.initiatePayout(req);
      // The server decoded the same values whatever the escaping.
      expect(info.raw['beneficiary_name']).toBe('राम शर्मा');
      expect(info.raw['beneficiary_address']).toBe('12/3 MG Road');
      expect(info.raw['user_id']).toBe('José');
      expect(sb.executions(req.orderId)).toBe(1);
    } else {
      const e = await failure(c.initiatePayout(req));
      expect(e).toBeInstanceOf(AuthenticationError);
      expect(e.ambiguous).toBe(false);
      expect(sb.executions(req.orderId)).toBe(0);
    }
  });

  it("a php-reencoding sandbox accepts the raw client for a plain ASCII body without '/'", async () => {
    const sb = await sandbox({ reencode: 'php' });
    const req = payoutReq();
    expect((await client(sb, { escape: 'none' }).initiatePayout(req)).status).toBe('Pending');
  });
});

describe('retries re-sign the same bytes', () => {
  it('429 then 201: identical POST body, new Timestamp and Signature, both valid', async () => {
    const fake = await fakeServer((_r, res, n) => {
      if (n === 1) json(res, 429, { error: 'Too Many Requests', data: null, message: 'Too Many Attempts.', success: false }, { 'retry-after': '0' });
      else json(res, 201, { error: '', data: PENDING_DATA, message: 'Payout initiated.', success: true });
    });
    // A frozen clock: the client must still never reuse a timestamp.
    const c = client(fake, { now: () => 1_790_431_844_701, escape: 'php' });
    const req = payoutReq({ beneficiaryName: 'राम शर्मा', beneficiaryAddress: '12/3 MG Road' });
    const prepared = c.preparePayout(req);
    const attempts: number[] = [];
    const info = await withRetry(
      (attempt) => {
        attempts.push(attempt);
        return c.initiatePayout(prepared);
      },
      { baseMs: 1 },
    );
    expect(info.status).toBe('Pending');
    expect(attempts).toEqual([1, 2]);

    const [a, b] = fake.captured as [Captured, Captured];
    expect(fake.captured).toHaveLength(2);
    expect(a.method).toBe('POST');
    expect(a.url).toBe('/api/v1/payout/initiate');
    expect(b.body.equals(a.body)).toBe(true);
    expect(a.body.toString('utf8')).toBe(prepared.body);
    expect(a.body.toString('utf8')).toContain('12\\/3 MG Road');
    expect(a.headers['timestamp']).not.toBe(b.headers['timestamp']);
    expect(a.headers['signature']).not.toBe(b.headers['signature']);
    expect(a.headers['access-key']).toBe(KEYS.accessKey);
    expect(a.headers['content-type']).toBe('application/json');
    for (const r of [a, b]) {
      const ts = String(r.headers['timestamp']);
      expect(ts).toMatch(/^\d{13}$/);
      expect(r.headers['signature']).toBe(sign(KEYS.secretKey, 'POST', 'api/v1/payout/initiate', r.body.toString('utf8'), ts));
    }
  });

  it('GET retries after a 5xx against the sandbox, re-signed (the sandbox refuses a replayed signature)', async () => {
    const sb = await sandbox({ balancePaise: 500n, faults: { error5xxBeforeRate: 1 } });
    const c = client(sb);
    let n = 0;
    const bal = await withRetry(
      async () => {
        n++;
        if (n === 2) sb.setFaults({});
        return c.balance();
      },
      { baseMs: 1 },
    );
    expect(bal.balancePaise).toBe(500n);
    expect(n).toBe(2);
  });
});

describe('error typing', () => {
  it('a password in the base URL never shows in a message; a query in it is refused without echoing it', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const c = new AllianceClient({ baseUrl: `http://admin:hunter2pass@127.0.0.1:${port}/v2`, accessKey: KEYS.accessKey, secretKey: KEYS.secretKey, timeoutMs: 2000 });
    const e = await failure(c.balance());
    expect(e.message).toMatch(new RegExp(`connection refused by http://admin:\\*{4}@127\\.0\\.0\\.1:${port}/v2`));
    expect(e.message).not.toContain('hunter2pass');
    await c.close();
    expect(() => new AllianceClient({ baseUrl: `http://127.0.0.1:${port}/?token=QTOKEN123`, accessKey: 'a', secretKey: 'b' })).toThrow(/without a query or fragment/);
    expect(() => new AllianceClient({ baseUrl: `http://127.0.0.1:${port}/?token=QTOKEN123`, accessKey: 'a', secretKey: 'b' })).not.toThrow(/QTOKEN123/);
  });

  it('401 wrong secret: AuthenticationError naming the keys, IP and clock', async () => {
    const sb = await sandbox();
    const e = await failure(client(sb, { secretKey: 'wrong-secret' }).balance());
    expect(e).toBeInstanceOf(AuthenticationError);
    expect(e).toMatchObject({ statusCode: 401, retryable: false, ambiguous: false, method: 'GET', path: 'api/v1/balance' });
    expect(e.message).toContain('Invalid signature.');
    expect(e.message).toContain('ALLIANCE_ACCESS_KEY');
    expect(e.message).toContain('ALLIANCE_SECRET_KEY');
    expect(e.message).toMatch(/clock/);
    // The sandbox sends a Date header; our clock agrees with it.
    expect(Math.abs((e as AuthenticationError).clockSkewMs!)).toBeLessThan(5000);
  });

  it('401 with a server Date 10 minutes ahead: the message names the skew', async () => {
    const fake = await fakeServer((_r, res) =>
      json(res, 401, { error: 'Unauthorized', data: null, message: 'Request timestamp expired.', success: false }, {
        date: new Date(Date.now() + 10 * 60_000).toUTCString(),
      }),
    );
    const e = (await failure(client(fake).balance())) as AuthenticationError;
    expect(e).toBeInstanceOf(AuthenticationError);
    expect(e.clockSkewMs).toBeGreaterThan(595_000);
    expect(e.clockSkewMs).toBeLessThan(605_000);
    expect(e.message).toMatch(/clock is (599|600|601)s behind the server's/);
    expect(e.message).toMatch(/NTP/);
  });

  it('401 from the real sandbox when our clock is 10 minutes slow: the message says so', async () => {
    const sb = await sandbox();
    const e = (await failure(client(sb, { now: () => Date.now() - 10 * 60_000 }).balance())) as AuthenticationError;
    expect(e).toBeInstanceOf(AuthenticationError);
    expect(e.message).toContain('Request timestamp expired.');
    expect(e.message).toMatch(/clock is \d+s behind the server's/);
  });

  it('401 with a server Date 10 minutes behind: "ahead of"', async () => {
    const fake = await fakeServer((_r, res) =>
      json(res, 401, { error: 'Unauthorized', data: null, message: 'Unauthorized', success: false }, {
        date: new Date(Date.now() - 10 * 60_000).toUTCString(),
      }),
    );
    const e = await failure(client(fake).balance());
    expect(e.message).toMatch(/clock is \d+s ahead of the server's/);
  });

  it('401 on a GET suggests the other --get-body-mode and `payouts doctor`; on a POST only doctor', async () => {
    const braces = await sandbox({ getBodyMode: '{}' });
    const e = await failure(client(braces).balance());
    expect(e).toBeInstanceOf(AuthenticationError);
    expect(e.message).toContain("try --get-body-mode '{}'");
    expect(e.message).toContain('payouts doctor');
    const empty = await sandbox({ getBodyMode: 'empty' });
    const e2 = await failure(client(empty, { getBodyMode: '{}' }).balance());
    expect(e2.message).toContain('try --get-body-mode empty');
    const post = await failure(client(braces, { secretKey: 'wrong' }).initiatePayout(payoutReq()));
    expect(post.message).not.toContain('--get-body-mode');
    expect(post.message).toContain('payouts doctor');
  });

  it('403 (e.g. IP not whitelisted) is an AuthenticationError that says 403, not 401', async () => {
    const fake = await fakeServer((_r, res) =>
      json(res, 403, { error: 'Forbidden', data: null, message: 'IP address is not whitelisted.', success: false }),
    );
    const e = await failure(client(fake).balance());
    expect(e).toBeInstanceOf(AuthenticationError);
    expect(e.statusCode).toBe(403);
    expect(e.message).toMatch(/^GET api\/v1\/balance: 403 Forbidden \(IP address is not whitelisted\.\)/);
    expect(e.message).toMatch(/whitelisted/);
  });

  it('the sandbox refusing our IP: AuthenticationError naming the whitelist', async () => {
    const sb = await sandbox({ allowIps: ['10.9.8.7'] });
    const e = await failure(client(sb).balance());
    expect(e).toBeInstanceOf(AuthenticationError);
    expect(e.message).toContain('IP address is not whitelisted.');
  });

  it('404 for an unknown order: NotFoundError, final', async () => {
    const sb = await sandbox();
    const e = await failure(client(sb).payoutStatus('NO-SUCH-ORDER'));
    expect(e).toBeInstanceOf(NotFoundError);
    expect(e).toMatchObject({ statusCode: 404, retryable: false, ambiguous: false, path: 'api/v1/payout/NO-SUCH-ORDER/status' });
  });

  it('422 on a duplicate order_id: ValidationError with fieldErrors and orderIdTaken', async () => {
    const sb = await sandbox();
    const c = client(sb);
    const req = payoutReq();
    await c.initiatePayout(req);
    const e = (await failure(c.initiatePayout(req))) as ValidationError;
    expect(e).toBeInstanceOf(ValidationError);
    expect(e).toMatchObject({ statusCode: 422, retryable: false, ambiguous: false });
    expect(e.fieldErrors).toEqual({ order_id: ['The order id has already been taken.'] });
    expect(e.orderIdTaken).toBe(true);
    expect(e.message).toContain('order_id: The order id has already been taken.');
    expect(sb.executions(req.orderId)).toBe(1);
  });

  it('422 on other fields: fieldErrors per field, orderIdTaken false', async () => {
    const sb = await sandbox();
    const e = (await failure(client(sb).initiatePayout(payoutReq({ ifsc: 'bad', beneficiaryEmail: 'nope' })))) as ValidationError;
    expect(e).toBeInstanceOf(ValidationError);
    expect(Object.keys(e.fieldErrors).sort()).toEqual(['beneficiary_email', 'ifsc']);
    expect(e.fieldErrors['ifsc']).toEqual(['The ifsc format is invalid.']);
    expect(e.orderIdTaken).toBe(false);
  });

  it('429: RateLimitError with retryAfterMs from Retry-After (seconds)', async () => {
    const sb = await sandbox({ rate: 1 });
    const c = client(sb);
    await c.balance();
    const e = (await failure(c.balance())) as RateLimitError;
    expect(e).toBeInstanceOf(RateLimitError);
    expect(e).toMatchObject({ statusCode: 429, retryable: true, ambiguous: false, retryAfterMs: 1000 });
  });

  it('5xx: ServerError, ambiguous on POST but not on GET', async () => {
    const sb = await sandbox({ faults: { error5xxAfterRate: 1 } });
    const c = client(sb);
    const req = payoutReq();
    const post = await failure(c.initiatePayout(req));
    expect(post).toBeInstanceOf(ServerError);
    expect(post).toMatchObject({ statusCode: 500, retryable: true, ambiguous: true, method: 'POST' });
    // And indeed it was executed.
    expect(sb.executions(req.orderId)).toBe(1);
    const get = await failure(c.balance());
    expect(get).toBeInstanceOf(ServerError);
    expect(get).toMatchObject({ statusCode: 500, retryable: true, ambiguous: false, method: 'GET' });
  });

  it('a 502 HTML page from a proxy: ServerError carrying a snippet of the text', async () => {
    const fake = await fakeServer((_r, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html><body>Bad Gateway</body></html>');
    });
    const e = await failure(client(fake).initiatePayout(payoutReq()));
    expect(e).toBeInstanceOf(ServerError);
    expect(e).toMatchObject({ statusCode: 502, ambiguous: true });
    expect(String(e.raw)).toContain('Bad Gateway');
  });

  it('dropped connection after executing: NetworkError, ambiguous on POST (and not on GET)', async () => {
    const sb = await sandbox({ faults: { dropAfterRate: 1 } });
    const c = client(sb);
    const req = payoutReq();
    const post = await failure(c.initiatePayout(req));
    expect(post).toBeInstanceOf(NetworkError);
    expect(post).toMatchObject({ retryable: true, ambiguous: true, method: 'POST' });
    expect(sb.executions(req.orderId)).toBe(1);
    const get = await failure(c.balance());
    expect(get).toBeInstanceOf(NetworkError);
    expect(get.ambiguous).toBe(false);
  });

  it('hang after executing, short client timeout: TimeoutError, ambiguous on POST', async () => {
    const sb = await sandbox({ faults: { hangAfterRate: 1 } });
    const c = client(sb, { timeoutMs: 300 });
    const req = payoutReq();
    const started = Date.now();
    const e = await failure(c.initiatePayout(req));
    const took = Date.now() - started;
    expect(e).toBeInstanceOf(TimeoutError);
    expect(e).toMatchObject({ retryable: true, ambiguous: true });
    expect(e.message).toContain('300 ms');
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(2000);
    expect(sb.executions(req.orderId)).toBe(1);
    const get = await failure(c.balance());
    expect(get).toBeInstanceOf(TimeoutError);
    expect(get.ambiguous).toBe(false);
  });

  it('connection refused: NetworkError, not ambiguous even on POST, naming ALLIANCE_BASE_URL', async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    const c = client({ url: `http://127.0.0.1:${port}` });
    const e = (await failure(c.initiatePayout(payoutReq()))) as NetworkError;
    expect(e).toBeInstanceOf(NetworkError);
    expect(e).toMatchObject({ retryable: true, ambiguous: false, code: 'ECONNREFUSED' });
    expect(e.message).toContain('ALLIANCE_BASE_URL');
    expect(e.message).toContain(`127.0.0.1:${port}`);
  });

  it('HTML with 200: MalformedResponseError saying the body is not JSON', async () => {
    const fake = await fakeServer((_r, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><html><head><title>Login</title></head><body>Please sign in</body></html>');
    });
    const c = client(fake);
    const e = await failure(c.balance());
    expect(e).toBeInstanceOf(MalformedResponseError);
    expect(e.message).toMatch(/^GET api\/v1\/balance: HTTP 200 but the body is not JSON \(text\/html; charset=utf-8: "<!doctype html>/);
    expect(e.ambiguous).toBe(false);
    const post = await failure(c.initiatePayout(payoutReq()));
    expect(post).toBeInstanceOf(MalformedResponseError);
    // A POST answered with garbage may have executed.
    expect(post.ambiguous).toBe(true);
  });

  it('200 JSON without a data object, or an unknown status: MalformedResponseError', async () => {
    const answers = [
      { error: '', data: null, message: 'x', success: true },
      { error: '', data: { ...PENDING_DATA, status: 'Processing' }, message: 'x', success: true },
    ];
    const fake = await fakeServer((_r, res, n) => json(res, 200, answers[n - 1]));
    const c = client(fake);
    expect((await failure(c.payoutStatus('X-1'))).message).toContain('no data object');
    expect((await failure(c.payoutStatus('X-1'))).message).toContain('unknown payout status "Processing"');
  });
});

describe('timestamp unit', () => {
  it("timestampUnit 's' sends whole seconds, and a seconds server accepts it where the default ms is refused", async () => {
    const sb = await sandbox({ timestampUnit: 's' });
    const fake = await fakeServer((_r, res) => json(res, 200, { error: '', data: { balance: '1.00' }, message: 'ok', success: true }));
    await client(fake, { timestampUnit: 's' }).balance();
    await client(fake).balance();
    const [s, ms] = fake.captured.map((c) => Number(c.headers['timestamp']));
    expect(Math.abs(s! - Date.now() / 1000)).toBeLessThan(5);
    expect(Math.abs(ms! - Date.now())).toBeLessThan(5000);

    expect((await client(sb, { timestampUnit: 's' }).balance()).balancePaise).toBeGreaterThan(0n);
    const e = await failure(client(sb).balance());
    expect(e).toBeInstanceOf(AuthenticationError);
  });

  it('in seconds, the same request twice in one second waits for the next second instead of repeating a signature', async () => {
    const sb = await sandbox({ timestampUnit: 's' });
    const c = client(sb, { timestampUnit: 's', timeoutMs: 5000 });
    // Three identical GETs back to back: the sandbox refuses a repeated signature as a replay.
    for (let i = 0; i < 3; i++) expect((await c.balance()).balancePaise).toBeGreaterThan(0n);
    // One request each, none refused.
    expect(sb.requestCount()).toBe(3);
  });
});

describe('envelopes', () => {
  const envelopes = [
    { error: 'Insufficient balance', data: null, message: 'Payout failed.', success: false },
    { error: '', data: { ...PENDING_DATA }, message: 'Something failed.', success: false },
    { error: 'Duplicate order', data: { ...PENDING_DATA }, message: 'Payout initiated.', success: true },
    { error: { order_id: ['taken'] }, data: { ...PENDING_DATA }, message: 'x', success: true },
  ];

  it('a 2xx saying "success": false or carrying an error is an EnvelopeError: ambiguous on an initiate, never retried blind', async () => {
    const fake = await fakeServer((_r, res, n) => json(res, n <= 4 ? 201 : 200, envelopes[(n - 1) % 4]));
    const c = client(fake);
    for (let i = 0; i < 4; i++) {
      const e = await failure(c.initiatePayout(payoutReq()));
      expect(e).toBeInstanceOf(EnvelopeError);
      expect(e).toMatchObject({ type: 'envelope_error', statusCode: 201, method: 'POST', retryable: false, ambiguous: true });
      expect(e.message).toMatch(/ask its status before sending it again/);
    }
    const get = await failure(c.payoutStatus('X-1'));
    expect(get).toBeInstanceOf(EnvelopeError);
    expect(get).toMatchObject({ ambiguous: false, retryable: false, statusCode: 200 });
    expect(get.message).toBe('GET api/v1/payout/X-1/status: HTTP 200 but the response says "success": false (Insufficient balance: Payout failed.)');
    const { retryDecision } = await import('../src/alliance/retry.js');
    expect(retryDecision(get, 1).retry).toBe(false);
  });

  it('the documented successes pass: "error": "" (and null, {} or [] with success true)', async () => {
    const ok = [
      { error: '', data: { balance: '1.00' }, message: 'ok', success: true },
      { error: null, data: { balance: '2.00' }, message: 'ok', success: true },
      { error: {}, data: { balance: '3.00' }, message: 'ok' },
      { error: [], data: { balance: '4.00' }, success: true },
    ];
    const fake = await fakeServer((_r, res, n) => json(res, 200, ok[n - 1]));
    const c = client(fake);
    for (let i = 1; i <= 4; i++) expect((await c.balance()).balancePaise).toBe(BigInt(i * 100));
  });
});

describe('bounded reads', () => {
  it('a body streaming without end is cut off at the limit: ResponseTooLargeError, retryable on GET, ambiguous on POST', async () => {
    let written = 0;
    const closed: Promise<void>[] = [];
    const fake = await fakeServer((_r, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      closed.push(new Promise((r) => res.on('close', () => r())));
      const pump = () => {
        while (!res.destroyed && res.write(chunk)) written += chunk.length;
        if (!res.destroyed) res.once('drain', pump);
      };
      res.write('{"error":"","data":{"balance":"');
      pump();
    });
    const c = client(fake, { maxResponseBytes: 256 * 1024, timeoutMs: 10_000 });
    const get = await failure(c.balance());
    expect(get).toBeInstanceOf(ResponseTooLargeError);
    expect(get).toMatchObject({ retryable: true, ambiguous: false, statusCode: 200 });
    expect(get.message).toMatch(/262144-byte limit: cut off/);
    const post = await failure(c.initiatePayout(payoutReq()));
    expect(post).toBeInstanceOf(ResponseTooLargeError);
    expect(post.ambiguous).toBe(true);
    // Cut off (a ResponseTooLargeError, not the 10 s timeout), and the server saw the connection close.
    await Promise.all(closed);
    expect(written).toBeLessThan(64 * 1024 * 1024);
  });

  it('a declared Content-Length over the limit is refused before reading; the default limit is 1 MiB', async () => {
    const big = JSON.stringify({ error: '', data: { balance: '1.00', pad: 'x'.repeat(1024 * 1024) }, message: 'ok', success: true });
    const fake = await fakeServer((_r, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(big) });
      res.end(big);
    });
    const e = await failure(client(fake).balance());
    expect(e).toBeInstanceOf(ResponseTooLargeError);
    expect(e.message).toMatch(/of 1048\d{3} bytes, over the 1048576-byte limit/);
    // Under the limit it is read whole.
    expect((await client(fake, { maxResponseBytes: 2 * 1024 * 1024 }).balance()).balancePaise).toBe(100n);
  });

  it('an error answer (5xx) with an endless body is cut off too', async () => {
    const fake = await fakeServer((_r, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      const pump = () => {
        while (!res.destroyed && res.write(Buffer.alloc(16 * 1024, 0x41)));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    });
    const e = await failure(client(fake, { maxResponseBytes: 64 * 1024 }).balance());
    expect(e).toBeInstanceOf(ResponseTooLargeError);
    expect(e.statusCode).toBe(502);
  });
});

describe('parsePayout', () => {
  const prepared: PreparedRequest = { method: 'GET', path: 'api/v1/payout/X-1/status', body: undefined };

  it('tolerates mobile as number or string, nulls and extra fields; statuses in any case', () => {
    const a = parsePayout({ ...PENDING_DATA, beneficiary_mobile_no: 7878787878, brand_new_field: { x: 1 } }, prepared, 'X-1');
    const b = parsePayout(
      { order_id: 'X-1', status: 'APPROVED', beneficiary_mobile_no: '7878787878', transaction_id: 2517319122, amount: '100.50', charge: 5.9, message: null, vpa: null, remarks: null },
      prepared,
      'X-1',
    );
    expect(a).toMatchObject({ orderId: 'X-1', status: 'Pending', transactionId: null, amountPaise: 10050n, chargePaise: 200n, message: 'Payout has been processing.' });
    expect(a.raw['beneficiary_mobile_no']).toBe(7878787878);
    expect(a.raw['brand_new_field']).toEqual({ x: 1 });
    expect(b).toMatchObject({ orderId: 'X-1', status: 'Approved', transactionId: '2517319122', amountPaise: 10050n, chargePaise: 590n, message: null });
    expect(b.raw['beneficiary_mobile_no']).toBe('7878787878');
  });

  it('falls back to the requested order_id and null amounts when fields are missing or null', () => {
    const p = parsePayout({ status: 'rejected', amount: null, charge: undefined, order_id: null }, prepared, 'FALLBACK-1');
    expect(p).toEqual({
      orderId: 'FALLBACK-1',
      status: 'Rejected',
      transactionId: null,
      amountPaise: null,
      chargePaise: null,
      message: null,
      raw: { status: 'rejected', amount: null, charge: undefined, order_id: null },
    });
  });

  it('refuses a missing or unknown status', () => {
    expect(() => parsePayout({ order_id: 'X-1' }, prepared, 'X-1')).toThrow(MalformedResponseError);
    expect(() => parsePayout({ status: 'Done' }, prepared, 'X-1')).toThrow(/unknown payout status "Done"/);
  });
});

describe('secrets', () => {
  it('the client object does not show its keys when printed or serialized', async () => {
    const sb = await sandbox();
    const c = client(sb);
    expect(Object.keys(c)).not.toContain('secretKey');
    expect(Object.keys(c)).not.toContain('accessKey');
    const { inspect } = await import('node:util');
    expectNoSecrets(inspect(c, { depth: 0 }), 'inspect(client)');
  });

  it('no log line contains a key or a signature, across successes and failures', async () => {
    const before = logLines.length;
    const sb = await sandbox({ faults: { error5xxBeforeRate: 0 } });
    const c = client(sb);
    await c.balance();
    await c.initiatePayout(payoutReq());
    await failure(client(sb, { secretKey: 'wrong-secret' }).balance());
    await failure(c.payoutStatus('NO-SUCH'));
    sb.setFaults({ dropAfterRate: 1 });
    await failure(c.initiatePayout(payoutReq()));
    expect(logLines.length - before).toBeGreaterThanOrEqual(5);
    // Debug lines of responses are there, so the logger really was wired.
    expect(logLines.some((l) => l.includes('"api response"'))).toBe(true);
    expect(sentSignatures.size).toBeGreaterThanOrEqual(5);
    for (const line of logLines) expectNoSecrets(line, 'log line');
  });
});
