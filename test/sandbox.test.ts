import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { bodyLine, serializeBody, sign, signingPath, type GetBodyMode, type JsonEscapeMode } from '../src/alliance/signing.js';
import { startSandbox, type Sandbox, type SandboxOptions } from '../src/sandbox/server.js';
import { runSandboxCommand } from '../src/sandbox/cli.js';

const KEY = 'ak_test_key';
const SECRET = 'sk_test_secret';

const open: Sandbox[] = [];
const servers: Server[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r())))));
});

async function sandbox(o: Partial<SandboxOptions> = {}): Promise<Sandbox> {
  const sb = await startSandbox({ accessKey: KEY, secretKey: SECRET, balancePaise: 1_000_000n, settleMs: 60_000, seed: 7, ...o });
  open.push(sb);
  return sb;
}

interface CallOpts {
  body?: unknown;
  /** Exact bytes to send (overrides body). */
  raw?: string;
  escape?: JsonEscapeMode;
  getBody?: GetBodyMode;
  key?: string;
  secret?: string;
  ts?: number | string;
  /** Body line to sign instead of the one sent (tampering). */
  signBody?: string;
  signature?: string;
  contentType?: string;
  signal?: AbortSignal;
}

interface Answer {
  status: number;
  headers: Headers;
  json: any;
}

/**
 * Two identical GETs signed in the same millisecond have identical signatures, which the server
 * rightly refuses as a replay; a client must never reuse a timestamp for the same request.
 */
let lastTs = 0;
function uniqueNow(): number {
  lastTs = Math.max(Date.now(), lastTs + 1);
  return lastTs;
}

async function call(sb: Sandbox, method: string, path: string, o: CallOpts = {}): Promise<Answer> {
  const sp = signingPath(path);
  const raw = o.raw ?? (o.body === undefined ? undefined : serializeBody(o.body, o.escape ?? 'none'));
  const ts = o.ts ?? uniqueNow();
  const line = o.signBody ?? bodyLine(method, raw, o.getBody ?? 'empty');
  const signature = o.signature ?? sign(o.secret ?? SECRET, method, sp, line, ts);
  const headers: Record<string, string> = { 'Access-Key': o.key ?? KEY, Timestamp: String(ts), Signature: signature };
  if (raw !== undefined) headers['Content-Type'] = o.contentType ?? 'application/json';
  const res = await fetch(`${sb.url}/${sp}`, { method, headers, ...(raw === undefined ? {} : { body: raw }), ...(o.signal ? { signal: o.signal } : {}) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
}

let orderSeq = 0;
function payout(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    beneficiary_name: 'Test Name',
    beneficiary_email: 'test.test@gmail.com',
    beneficiary_mobile_no: '7878787878',
    beneficiary_address: '12/3 MG Road',
    payment_method: 'IMPS',
    beneficiary_acc_no: '99999999999',
    bank_name: 'SBI',
    ifsc: 'SBIN0060589',
    amount: 100,
    order_id: `ORD-${++orderSeq}`,
    user_id: 'aseq-2d2fss-22a4sd-44a33',
    remarks: null,
    ...over,
  };
}

async function until<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('balance and authentication', () => {
  it('returns the balance as a rupee string in the envelope, with a Date header', async () => {
    const sb = await sandbox({ balancePaise: 111_111n });
    const r = await call(sb, 'GET', 'api/v1/balance');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ error: '', data: { balance: '1111.11' }, message: 'Merchant wallet balance fetched.', success: true });
    expect(r.headers.get('date')).toBeTruthy();
    expect(sb.requestCount()).toBe(1);
  });

  it('rejects a wrong access key, wrong secret, stale or seconds timestamp, and a replayed signature with 401', async () => {
    const sb = await sandbox();
    const wrongKey = await call(sb, 'GET', 'api/v1/balance', { key: 'nope' });
    expect(wrongKey.status).toBe(401);
    expect(wrongKey.json).toMatchObject({ error: 'Unauthorized', data: null, success: false });

    expect((await call(sb, 'GET', 'api/v1/balance', { secret: 'wrong' })).json.message).toBe('Invalid signature.');
    expect((await call(sb, 'GET', 'api/v1/balance', { ts: Date.now() - 6 * 60_000 })).status).toBe(401);
    expect((await call(sb, 'GET', 'api/v1/balance', { ts: Date.now() + 6 * 60_000 })).status).toBe(401);
    // The header table's seconds example is far outside a millisecond window.
    expect((await call(sb, 'GET', 'api/v1/balance', { ts: Math.floor(Date.now() / 1000) })).status).toBe(401);
    expect((await call(sb, 'GET', 'api/v1/balance', { signature: 'abc' })).status).toBe(401);

    const ts = Date.now();
    expect((await call(sb, 'GET', 'api/v1/balance', { ts })).status).toBe(200);
    const replay = await call(sb, 'GET', 'api/v1/balance', { ts });
    expect(replay.status).toBe(401);
    expect(replay.json.message).toMatch(/already used/);
  });

  it('rejects a body that differs from the signed one', async () => {
    const sb = await sandbox();
    const sent = payout();
    const signed = serializeBody({ ...sent, amount: 1 });
    const r = await call(sb, 'POST', 'api/v1/payout/initiate', { body: sent, signBody: signed });
    expect(r.status).toBe(401);
    expect(sb.ledger()).toHaveLength(0);
  });

  it("accepts GET signed with an empty body line and with '{}' in 'either' mode, only one in strict modes", async () => {
    const either = await sandbox();
    expect((await call(either, 'GET', 'api/v1/balance', { getBody: 'empty' })).status).toBe(200);
    expect((await call(either, 'GET', 'api/v1/balance', { getBody: '{}' })).status).toBe(200);

    const empty = await sandbox({ getBodyMode: 'empty' });
    expect((await call(empty, 'GET', 'api/v1/balance', { getBody: 'empty' })).status).toBe(200);
    expect((await call(empty, 'GET', 'api/v1/balance', { getBody: '{}' })).status).toBe(401);

    const braces = await sandbox({ getBodyMode: '{}' });
    expect((await call(braces, 'GET', 'api/v1/balance', { getBody: '{}' })).status).toBe(200);
    expect((await call(braces, 'GET', 'api/v1/balance', { getBody: 'empty' })).status).toBe(401);
  });

  it("'php' reencode rejects raw UTF-8 with '/' but accepts the PHP-escaped serialization", async () => {
    const sb = await sandbox({ reencode: 'php' });
    const body = payout({ beneficiary_name: 'राम कुमार', beneficiary_address: '12/3 MG Road' });
    const raw = await call(sb, 'POST', 'api/v1/payout/initiate', { body, escape: 'none' });
    expect(raw.status).toBe(401);
    const php = await call(sb, 'POST', 'api/v1/payout/initiate', { body: { ...body }, escape: 'php' });
    expect(php.status).toBe(201);
    expect(php.json.data.beneficiary_name).toBe('राम कुमार');
    expect(php.json.data.beneficiary_address).toBe('12/3 MG Road');

    // The default 'raw' server is the opposite: the exact bytes, UTF-8 as is.
    const rawServer = await sandbox();
    expect((await call(rawServer, 'POST', 'api/v1/payout/initiate', { body: payout({ beneficiary_address: '12/3 MG Road' }) })).status).toBe(201);
  });

  it("'ascii' reencode (Python's json.dumps) accepts only non-ASCII escaped as \\uXXXX, '/' kept", async () => {
    const sb = await sandbox({ reencode: 'ascii' });
    const body = payout({ beneficiary_name: 'Jürgen', beneficiary_address: '12/3 MG Road' });
    expect((await call(sb, 'POST', 'api/v1/payout/initiate', { body, escape: 'none' })).status).toBe(401);
    expect((await call(sb, 'POST', 'api/v1/payout/initiate', { body, escape: 'php' })).status).toBe(401);
    const ascii = await call(sb, 'POST', 'api/v1/payout/initiate', { body, escape: 'ascii' });
    expect(ascii.status).toBe(201);
    expect(ascii.json.data.beneficiary_name).toBe('Jürgen');
  });

  it("timestampUnit 's' reads the Timestamp header in seconds: seconds pass, milliseconds are refused", async () => {
    const sb = await sandbox({ timestampUnit: 's' });
    const nowS = Math.floor(Date.now() / 1000);
    expect((await call(sb, 'GET', 'api/v1/balance', { ts: nowS })).status).toBe(200);
    expect((await call(sb, 'GET', 'api/v1/balance', { ts: uniqueNow() })).status).toBe(401);
    expect((await call(sb, 'GET', 'api/v1/balance', { ts: nowS - 6 * 60 })).json.message).toBe('Request timestamp expired.');
    // The same request in the same second carries the same signature: a replay.
    const replay = await call(sb, 'GET', 'api/v1/balance', { ts: nowS });
    expect(replay.status).toBe(401);
    expect(replay.json.message).toMatch(/already used/);
  });

  it('requireMobileNumber refuses beneficiary_mobile_no as a string (422) and accepts it as a number', async () => {
    const sb = await sandbox({ requireMobileNumber: true });
    const asString = await call(sb, 'POST', 'api/v1/payout/initiate', { body: payout({ beneficiary_mobile_no: '7878787878' }) });
    expect(asString.status).toBe(422);
    expect(asString.json.error).toEqual({ beneficiary_mobile_no: ['The beneficiary mobile no must be a number.'] });
    expect((await call(sb, 'POST', 'api/v1/payout/initiate', { body: payout({ beneficiary_mobile_no: 7878787878 }) })).status).toBe(201);
    // The default server takes either.
    const either = await sandbox();
    expect((await call(either, 'POST', 'api/v1/payout/initiate', { body: payout({ beneficiary_mobile_no: '7878787878' }) })).status).toBe(201);
    expect((await call(either, 'POST', 'api/v1/payout/initiate', { body: payout({ beneficiary_mobile_no: 7878787878 }) })).status).toBe(201);
  });

  it('answers 413 to a request body over the limit, declared or streamed, API and admin alike, executing nothing', async () => {
    const sb = await sandbox({ maxBodyBytes: 2000 });
    const big = payout({ remarks: 'x'.repeat(3000) });
    const declared = await call(sb, 'POST', 'api/v1/payout/initiate', { body: big });
    expect(declared.status).toBe(413);
    expect(declared.json).toMatchObject({ success: false, message: 'The request body is too large.' });
    // Chunked, no Content-Length: counted as it arrives.
    const streamed = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${sb.url}/api/v1/payout/initiate`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      for (let i = 0; i < 10; i++) req.write('x'.repeat(500));
      req.end();
    });
    expect(streamed).toBe(413);
    const admin = await fetch(`${sb.url}/__admin/payins`, {
      method: 'POST',
      headers: { 'x-admin-token': sb.adminToken },
      body: JSON.stringify({ order_id: 'BIG', amount: 1, user_id: 'u'.repeat(3000) }),
    });
    expect(admin.status).toBe(413);
    expect(sb.ledger()).toHaveLength(0);
    // A body under the limit is fine.
    expect((await call(sb, 'POST', 'api/v1/payout/initiate', { body: payout() })).status).toBe(201);
  });

  it('refuses a caller outside the IP allowlist and accepts one inside it', async () => {
    const blocked = await sandbox({ allowIps: ['10.1.2.3'] });
    const r = await call(blocked, 'GET', 'api/v1/balance');
    expect(r.status).toBe(401);
    expect(r.json.message).toMatch(/IP/);
    const allowed = await sandbox({ allowIps: ['127.0.0.1'] });
    expect((await call(allowed, 'GET', 'api/v1/balance')).status).toBe(200);
  });
});

describe('payout initiate and status', () => {
  it('lists every missing required field in one Laravel-style 422', async () => {
    const sb = await sandbox();
    const r = await call(sb, 'POST', 'api/v1/payout/initiate', { body: {} });
    expect(r.status).toBe(422);
    expect(r.json.message).toBe('The given data was invalid.');
    expect(r.json.success).toBe(false);
    expect(r.json.data).toBeNull();
    expect(Object.keys(r.json.error).sort()).toEqual(
      [
        'amount',
        'bank_name',
        'beneficiary_acc_no',
        'beneficiary_address',
        'beneficiary_email',
        'beneficiary_mobile_no',
        'beneficiary_name',
        'ifsc',
        'order_id',
        'payment_method',
        'user_id',
      ].sort(),
    );
    expect(r.json.error.order_id).toEqual(['The order id field is required.']);
  });

  it('rejects invalid values: method, ifsc, email, amount <= 0 or with 3 decimals', async () => {
    const sb = await sandbox();
    const r = await call(sb, 'POST', 'api/v1/payout/initiate', {
      body: payout({ payment_method: 'CHEQUE', ifsc: 'sbin123', beneficiary_email: 'nope', amount: 1.005 }),
    });
    expect(r.status).toBe(422);
    expect(Object.keys(r.json.error).sort()).toEqual(['amount', 'beneficiary_email', 'ifsc', 'payment_method']);
    const zero = await call(sb, 'POST', 'api/v1/payout/initiate', { body: payout({ amount: 0 }) });
    expect(zero.json.error.amount).toEqual(['The amount must be greater than 0.']);
    expect(sb.balancePaise()).toBe(1_000_000n);
  });

  it('answers 400 to a form body and to malformed JSON', async () => {
    const sb = await sandbox();
    const form = await call(sb, 'POST', 'api/v1/payin/transactions', { raw: 'order_id=a1', contentType: 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(400);
    const bad = await call(sb, 'POST', 'api/v1/payout/initiate', { raw: '{"amount": 1,' });
    expect(bad.status).toBe(400);
    expect(bad.json.success).toBe(false);
  });

  it('creates a Pending payout (201), debits amount + charge, then settles Approved with a UTR', async () => {
    const sb = await sandbox({ balancePaise: 100_000n, settleMs: 50 });
    const body = payout({ amount: 100.5, beneficiary_mobile_no: 7878787878 });
    const r = await call(sb, 'POST', 'api/v1/payout/initiate', { body });
    expect(r.status).toBe(201);
    expect(r.json.message).toBe('Payout initiated.');
    expect(r.json.data).toMatchObject({
      order_id: body['order_id'],
      amount: 100.5,
      charge: 5.9,
      status: 'Pending',
      transaction_id: null,
      beneficiary_mobile_no: 7878787878,
      message: 'Payout has been processing.',
    });
    expect(r.json.data.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000000Z$/);
    expect(sb.balancePaise()).toBe(100_000n - 10_050n - 590n);
    expect(sb.executions(String(body['order_id']))).toBe(1);

    const pending = await call(sb, 'GET', `api/v1/payout/${body['order_id']}/status`);
    expect(pending.status).toBe(200);
    expect(pending.json.data.status).toBe('Pending');

    const done = await until(async () => {
      const s = await call(sb, 'GET', `api/v1/payout/${body['order_id']}/status`);
      return s.json.data.status === 'Approved' && s;
    });
    expect(done.json.message).toBe('Payout status fetched.');
    expect(done.json.data.transaction_id).toMatch(/^[1-9]\d{9,11}$/);
    expect(done.json.data.beneficiary_mobile_no).toBe('7878787878');
    expect(done.json.data.message).toBe('Payout has been completed.');
    expect(sb.ledger()[0]).toMatchObject({ status: 'Approved', amountPaise: 10_050n, chargePaise: 590n, executions: 1 });
    // Approval does not refund.
    expect(sb.balancePaise()).toBe(100_000n - 10_640n);
  });

  it('refunds amount and charge when the account is rejected', async () => {
    const sb = await sandbox({ balancePaise: 50_000n });
    const body = payout({ beneficiary_acc_no: '12340000', amount: 200 });
    expect((await call(sb, 'POST', 'api/v1/payout/initiate', { body })).status).toBe(201);
    expect(sb.balancePaise()).toBe(50_000n - 20_000n - 590n);
    sb.settleAll();
    expect(sb.balancePaise()).toBe(50_000n);
    const s = await call(sb, 'GET', `api/v1/payout/${body['order_id']}/status`);
    expect(s.json.data).toMatchObject({ status: 'Rejected', transaction_id: null });
  });

  it('refuses a payout the wallet cannot cover, charge included', async () => {
    const sb = await sandbox({ balancePaise: 10_000n });
    const r = await call(sb, 'POST', 'api/v1/payout/initiate', { body: payout({ amount: 100 }) });
    expect(r.status).toBe(422);
    expect(r.json.error).toEqual({ amount: ['Insufficient wallet balance.'] });
    expect(sb.balancePaise()).toBe(10_000n);
    expect(sb.ledger()).toHaveLength(0);
  });

  it('refuses a used order_id with 422 when dedup is on and executes it again when off', async () => {
    const on = await sandbox();
    const body = payout();
    expect((await call(on, 'POST', 'api/v1/payout/initiate', { body })).status).toBe(201);
    const again = await call(on, 'POST', 'api/v1/payout/initiate', { body });
    expect(again.status).toBe(422);
    expect(again.json.error).toEqual({ order_id: ['The order id has already been taken.'] });
    expect(on.executions(String(body['order_id']))).toBe(1);

    const off = await sandbox({ dedupOrderIds: false });
    expect((await call(off, 'POST', 'api/v1/payout/initiate', { body })).status).toBe(201);
    expect((await call(off, 'POST', 'api/v1/payout/initiate', { body })).status).toBe(201);
    expect(off.executions(String(body['order_id']))).toBe(2);
    expect(off.ledger()).toHaveLength(2);
    expect(off.balancePaise()).toBe(1_000_000n - 2n * 10_590n);
  });

  it('answers 404 for an unknown order and an unknown route', async () => {
    const sb = await sandbox();
    const r = await call(sb, 'GET', 'api/v1/payout/NO-SUCH-ORDER/status');
    expect(r.status).toBe(404);
    expect(r.json).toMatchObject({ data: null, success: false });
    expect((await call(sb, 'GET', 'api/v1/nothing')).status).toBe(404);
  });

  it('finds an order_id with characters that need percent-encoding', async () => {
    const sb = await sandbox();
    const body = payout({ order_id: 'A B/C' });
    expect((await call(sb, 'POST', 'api/v1/payout/initiate', { body })).status).toBe(201);
    const s = await call(sb, 'GET', `api/v1/payout/${encodeURIComponent('A B/C')}/status`);
    expect(s.status).toBe(200);
    expect(s.json.data.order_id).toBe('A B/C');
  });
});

describe('payins', () => {
  it('answers payin status (Pending, then Approved) and credits the wallet on approval', async () => {
    const sb = await sandbox({ balancePaise: 0n });
    sb.createPayin({ orderId: 'PIN-1', amountPaise: 25_000n, userId: 'u1' });
    const p = await call(sb, 'POST', 'api/v1/payin/transactions', { body: { order_id: 'PIN-1' } });
    expect(p.status).toBe(200);
    expect(p.json.message).toBe('Payin transaction fetched successfully.');
    expect(p.json.data).toMatchObject({ order_id: 'PIN-1', user_id: 'u1', status: 'Pending', request_amount: 250 });
    sb.settleAll();
    const a = await call(sb, 'POST', 'api/v1/payin/transactions', { body: { order_id: 'PIN-1' } });
    expect(a.json.data).toMatchObject({ status: 'Approved', amount: 250, comments: 'Auto Approved' });
    expect(a.json.data.transaction_id).toMatch(/^\d{10,12}$/);
    expect(a.json.data.time_of_processing).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(sb.balancePaise()).toBe(25_000n);

    expect((await call(sb, 'POST', 'api/v1/payin/transactions', { body: { order_id: 'NOPE' } })).status).toBe(404);
    expect((await call(sb, 'POST', 'api/v1/payin/transactions', { body: {} })).status).toBe(422);
  });
});

describe('rate limit', () => {
  it('answers 429 with Retry-After above the rate and does not execute those requests', async () => {
    const sb = await sandbox({ rate: 2 });
    const rs = await Promise.all(
      Array.from({ length: 4 }, (_, i) => call(sb, 'POST', 'api/v1/payout/initiate', { body: payout({ order_id: `RL-${i}` }) })),
    );
    const codes = rs.map((r) => r.status).sort();
    expect(codes).toEqual([201, 201, 429, 429]);
    const limited = rs.find((r) => r.status === 429)!;
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(sb.ledger()).toHaveLength(2);

    await new Promise((r) => setTimeout(r, 600));
    expect((await call(sb, 'GET', 'api/v1/balance')).status).toBe(200);
  });
});

describe('arrivals', () => {
  it('records when every API request arrived, high-resolution, before any processing (refused ones too), admin calls not', async () => {
    const sb = await sandbox({ faults: { latencyMs: 150 } });
    const windows: Array<[number, number]> = [];
    for (const o of [{}, { secret: 'wrong' }, {}]) {
      const before = performance.timeOrigin + performance.now();
      await call(sb, 'GET', 'api/v1/balance', o);
      windows.push([before, performance.timeOrigin + performance.now()]);
    }
    await fetch(`${sb.url}/__admin/ledger`, { headers: { 'x-admin-token': sb.adminToken } });
    const a = sb.arrivals();
    expect(a).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      // At arrival: inside the call's window, and at least the injected latency before its answer.
      expect(a[i]!).toBeGreaterThanOrEqual(windows[i]![0] - 1);
      expect(a[i]!).toBeLessThanOrEqual(windows[i]![1] - 140);
    }
    expect(a.some((t) => !Number.isInteger(t))).toBe(true);
    // A copy: the caller cannot change the record.
    a.length = 0;
    expect(sb.arrivals()).toHaveLength(3);
  });
});

describe('sliding-window rate limit', () => {
  it('refuses a request when `rate` others arrived in the last second, where a token bucket would have refilled', async () => {
    const burstThenOne = async (rateMode: 'bucket' | 'sliding') => {
      const sb = await sandbox({ rate: 5, rateMode });
      const burst = await Promise.all(Array.from({ length: 5 }, () => call(sb, 'GET', 'api/v1/balance')));
      const t0 = sb.arrivals()[0]!;
      await new Promise((r) => setTimeout(r, 350));
      const one = await call(sb, 'GET', 'api/v1/balance');
      return { sb, t0, burst: burst.map((r) => r.status), one };
    };
    const bucket = await burstThenOne('bucket');
    expect(bucket.burst).toEqual([200, 200, 200, 200, 200]);
    expect(bucket.one.status).toBe(200);

    const sliding = await burstThenOne('sliding');
    expect(sliding.burst).toEqual([200, 200, 200, 200, 200]);
    expect(sliding.one.status).toBe(429);
    expect(Number(sliding.one.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Once the burst is more than a second old the window has room again.
    const wait = sliding.t0 + 1100 - (performance.timeOrigin + performance.now());
    await new Promise((r) => setTimeout(r, Math.max(0, wait)));
    expect((await call(sliding.sb, 'GET', 'api/v1/balance')).status).toBe(200);
  });

  it('refuses exactly the arrivals that found `rate` others in the second before them', async () => {
    const sb = await sandbox({ rate: 5, rateMode: 'sliding' });
    const statuses: number[] = [];
    let last = 0;
    for (let i = 0; i < 14; i++) {
      // Mostly 260 ms apart with a quick one every fourth: some seconds hold more than 5 arrivals, most do not.
      const gap = i % 4 === 3 ? 20 : 260;
      await new Promise((r) => setTimeout(r, Math.max(0, last + gap - Date.now())));
      last = Date.now();
      statuses.push((await call(sb, 'GET', 'api/v1/balance')).status);
    }
    const a = sb.arrivals();
    expect(a).toHaveLength(14);
    // Judged from the server's own record of arrivals (its clock), refused ones counted too.
    const expected = a.map((t) => (a.filter((x) => x > t - 1000 && x <= t).length > 5 ? 429 : 200));
    expect(statuses).toEqual(expected);
    expect(statuses).toContain(200);
  });
});

describe('slow POST: executed long after it arrived (executeDelayMs)', () => {
  const slowRun = async (dedupOrderIds: boolean) => {
    const sb = await sandbox({ dedupOrderIds, faults: { executeDelayMs: 2000 } });
    const body = payout();
    const id = String(body['order_id']);
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 200);
    // The client gives up after 200 ms, as a client with a short timeout would.
    await expect(call(sb, 'POST', 'api/v1/payout/initiate', { body, signal: ctl.signal })).rejects.toThrow();
    clearTimeout(timer);
    const arrived = sb.arrivals()[0]!;
    // Not executed yet: a status check now says 404, which is exactly what makes a blind resend dangerous.
    expect(sb.executions(id)).toBe(0);
    expect((await call(sb, 'GET', `api/v1/payout/${id}/status`)).status).toBe(404);
    // A resend now (faults off so it runs at once) executes immediately.
    sb.setFaults({});
    const resend = await call(sb, 'POST', 'api/v1/payout/initiate', { body });
    expect(resend.status).toBe(201);
    expect(sb.executions(id)).toBe(1);
    // Then the first request is executed, 2 s after it arrived.
    await until(() => performance.timeOrigin + performance.now() > arrived + 2100, 10_000);
    return { sb, id };
  };

  it('with order_id dedup on, the late execution finds the order_id taken: paid once', async () => {
    const { sb, id } = await slowRun(true);
    expect(sb.executions(id)).toBe(1);
    expect(sb.ledger()).toHaveLength(1);
  });

  it('with dedup off, the late execution pays the order_id a second time (the case a client must prevent)', async () => {
    const { sb, id } = await slowRun(false);
    expect(sb.executions(id)).toBe(2);
    expect(sb.ledger()).toHaveLength(2);
  });

  it('counts the delay from arrival and answers a client still waiting after executing; only initiates are slow', async () => {
    const lines: Array<{ path?: string; fault?: string }> = [];
    const sb = await sandbox({ faults: { executeDelayMs: 300 }, logger: (l) => lines.push(l as { path?: string; fault?: string }) });
    const started = Date.now();
    const r = await call(sb, 'POST', 'api/v1/payout/initiate', { body: payout() });
    expect(r.status).toBe(201);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect((await call(sb, 'GET', 'api/v1/balance')).status).toBe(200);
    expect((await call(sb, 'POST', 'api/v1/payin/transactions', { body: { order_id: 'NONE' } })).status).toBe(404);
    const faults = lines.filter((l) => l.path).map((l) => [l.path, l.fault]);
    expect(faults).toEqual([
      ['api/v1/payout/initiate', 'execute_delay:300'],
      ['api/v1/balance', undefined],
      ['api/v1/payin/transactions', undefined],
    ]);
  });

  it('executeDelayRate makes only some initiates slow, replayably from the seed', async () => {
    const slowOnes = async (seed: number) => {
      const lines: Array<{ path?: string; fault?: string }> = [];
      const sb = await sandbox({ seed, faults: { executeDelayMs: 20, executeDelayRate: 0.5 }, logger: (l) => lines.push(l as { path?: string; fault?: string }) });
      for (let i = 0; i < 10; i++) await call(sb, 'POST', 'api/v1/payout/initiate', { body: payout() });
      return lines.filter((l) => l.path).map((l) => l.fault === 'execute_delay:20');
    };
    const a = await slowOnes(11);
    expect(a.some(Boolean)).toBe(true);
    expect(a.every(Boolean)).toBe(false);
    expect(await slowOnes(11)).toEqual(a);
  });
});

describe('faults', () => {
  it('5xx-before answers 500 without executing', async () => {
    const sb = await sandbox({ faults: { error5xxBeforeRate: 1 } });
    const body = payout();
    const r = await call(sb, 'POST', 'api/v1/payout/initiate', { body });
    expect(r.status).toBe(500);
    expect(sb.executions(String(body['order_id']))).toBe(0);
    expect(sb.balancePaise()).toBe(1_000_000n);
  });

  it('5xx-after executes the payout, then answers 500; status then finds it', async () => {
    const sb = await sandbox({ faults: { error5xxAfterRate: 1, onlyPaths: ['api/v1/payout/initiate'] } });
    const body = payout();
    const r = await call(sb, 'POST', 'api/v1/payout/initiate', { body });
    expect(r.status).toBe(500);
    expect(sb.executions(String(body['order_id']))).toBe(1);
    const s = await call(sb, 'GET', `api/v1/payout/${body['order_id']}/status`);
    expect(s.status).toBe(200);
    expect(s.json.data.status).toBe('Pending');
  });

  it('drop-after executes, then resets the connection', async () => {
    const sb = await sandbox({ faults: { dropAfterRate: 1 } });
    const body = payout();
    await expect(call(sb, 'POST', 'api/v1/payout/initiate', { body })).rejects.toThrow();
    expect(sb.executions(String(body['order_id']))).toBe(1);
  });

  it('hang-after executes and never answers, so the client times out', async () => {
    const sb = await sandbox({ faults: { hangAfterRate: 1 } });
    const body = payout();
    const t0 = Date.now();
    await expect(call(sb, 'POST', 'api/v1/payout/initiate', { body, signal: AbortSignal.timeout(300) })).rejects.toThrow();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(sb.executions(String(body['order_id']))).toBe(1);
  });

  it('burst429 answers 429 regardless of rate; latency delays the answer', async () => {
    const sb = await sandbox({ faults: { burst429Rate: 1 } });
    const r = await call(sb, 'GET', 'api/v1/balance');
    expect(r.status).toBe(429);
    expect(r.headers.get('retry-after')).toBe('1');

    sb.setFaults({ latencyMs: 150 });
    const t0 = Date.now();
    expect((await call(sb, 'GET', 'api/v1/balance')).status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
  });

  it('onlyPaths limits faults to the listed paths', async () => {
    const sb = await sandbox({ faults: { error5xxBeforeRate: 1, onlyPaths: ['api/v1/payout/initiate'] } });
    expect((await call(sb, 'GET', 'api/v1/balance')).status).toBe(200);
    expect((await call(sb, 'POST', 'api/v1/payout/initiate', { body: payout() })).status).toBe(500);
  });

  it('the same seed gives the same fault sequence; another seed a different one', async () => {
    const faults = { error5xxBeforeRate: 0.3, burst429Rate: 0.2 };
    const run = async (seed: number) => {
      const sb = await sandbox({ seed, faults });
      const out: number[] = [];
      for (let i = 0; i < 40; i++) out.push((await call(sb, 'GET', 'api/v1/balance')).status);
      return out;
    };
    const a = await run(42);
    const b = await run(42);
    const c = await run(43);
    expect(a).toEqual(b);
    expect(new Set(a)).toEqual(new Set([200, 429, 500]));
    expect(c).not.toEqual(a);
  });

  it('the same seed gives the same UTRs', async () => {
    const utrs = async () => {
      const sb = await sandbox({ seed: 99 });
      for (let i = 0; i < 3; i++) await call(sb, 'POST', 'api/v1/payout/initiate', { body: payout() });
      sb.settleAll();
      return sb.ledger().map((e) => e.transactionId);
    };
    const a = await utrs();
    expect(a.every((u) => typeof u === 'string' && /^\d{10,12}$/.test(u))).toBe(true);
    expect(await utrs()).toEqual(a);
  });
});

describe('webhooks', () => {
  async function receiver(failFirst = 0): Promise<{ url: string; events: any[]; times: number[]; hits: () => number }> {
    const events: any[] = [];
    const times: number[] = [];
    let hits = 0;
    const srv = createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => (raw += c));
      req.on('end', () => {
        hits++;
        if (hits <= failFirst) {
          res.writeHead(500).end();
          return;
        }
        events.push(JSON.parse(raw));
        times.push(Date.now());
        res.writeHead(200).end('ok');
      });
    });
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/hook`, events, times, hits: () => hits };
  }

  it('posts payout.succeeded and payout.failed in the document shape after settlement', async () => {
    const rx = await receiver();
    const sb = await sandbox({ webhookUrl: rx.url, settleMs: 30 });
    const good = payout();
    const bad = payout({ beneficiary_acc_no: '55550000' });
    await call(sb, 'POST', 'api/v1/payout/initiate', { body: good });
    await call(sb, 'POST', 'api/v1/payout/initiate', { body: bad });
    await until(() => rx.events.length >= 2);
    const byOrder = new Map(rx.events.map((e) => [e.data.order_id, e]));
    expect(byOrder.get(good['order_id'])).toMatchObject({
      event: 'payout.succeeded',
      data: { status: 'Approved', amount: 100, charge: 5.9, message: 'Payout has been approved.', beneficiary_mobile_no: '7878787878' },
    });
    expect(byOrder.get(good['order_id']).data.transaction_id).toMatch(/^\d{10,12}$/);
    expect(byOrder.get(bad['order_id'])).toMatchObject({ event: 'payout.failed', data: { status: 'Rejected', transaction_id: null } });
  });

  it('retries a failed delivery with backoff', async () => {
    const rx = await receiver(2);
    const sb = await sandbox({ webhookUrl: rx.url, webhookBaseDelayMs: 20 });
    await call(sb, 'POST', 'api/v1/payout/initiate', { body: payout() });
    sb.settleAll();
    await sb.webhooksIdle();
    expect(rx.hits()).toBe(3);
    expect(rx.events).toHaveLength(1);
  });

  it('sends duplicates at webhookDuplicateRate 1', async () => {
    const rx = await receiver();
    const sb = await sandbox({ webhookUrl: rx.url, faults: { webhookDuplicateRate: 1 } });
    const body = payout();
    await call(sb, 'POST', 'api/v1/payout/initiate', { body });
    sb.settleAll();
    await sb.webhooksIdle();
    expect(rx.events).toHaveLength(2);
    expect(rx.events[0]).toEqual(rx.events[1]);
  });

  it('reorder holds some deliveries back so later events arrive first', async () => {
    // Held back 1.5 to 2 s: a delivery sent at once beats it by far more than any scheduling delay, so the
    // outcome depends on the sandbox's seeded choices, not on how loaded the machine is.
    const settleBatch = async (reorder: boolean) => {
      const rx = await receiver();
      const sb = await sandbox({ webhookUrl: rx.url, seed: 3, faults: { webhookReorder: reorder }, webhookReorderMs: [1500, 2000] });
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) {
        const b = payout();
        ids.push(String(b['order_id']));
        await call(sb, 'POST', 'api/v1/payout/initiate', { body: b });
      }
      sb.settleAll();
      await sb.webhooksIdle();
      const arrived = rx.events.map((e) => e.data.order_id);
      expect([...arrived].sort()).toEqual([...ids].sort());
      // Overtaken: an event arrived after one that settled later than it.
      const overtaken = arrived.some((id, i) => arrived.slice(0, i).some((other) => ids.indexOf(other) > ids.indexOf(id)));
      return { held: sb.webhookStats().heldBack, overtaken };
    };
    const plain = await settleBatch(false);
    expect(plain.held).toBe(0);
    const reordered = await settleBatch(true);
    expect(reordered.held).toBeGreaterThan(0);
    expect(reordered.held).toBeLessThan(12);
    expect(reordered.overtaken).toBe(true);
  });

  it('sends payin.initiated then payin.succeeded / payin.failed, via createPayin and the admin endpoint', async () => {
    const rx = await receiver();
    const sb = await sandbox({ webhookUrl: rx.url, settleMs: 30, balancePaise: 0n });
    sb.createPayin({ orderId: 'PIN-A', amountPaise: 10_000n });
    const admin = await fetch(`${sb.url}/__admin/payins`, {
      method: 'POST',
      headers: { 'x-admin-token': sb.adminToken },
      body: JSON.stringify({ order_id: 'PIN-B', amount: 50, outcome: 'Rejected' }),
    });
    expect(admin.status).toBe(201);
    await until(() => rx.events.length >= 4);
    const events = (id: string) => rx.events.filter((e) => e.data.order_id === id).map((e) => e.event);
    expect(events('PIN-A')).toEqual(['payin.initiated', 'payin.succeeded']);
    expect(events('PIN-B')).toEqual(['payin.initiated', 'payin.failed']);
    expect(rx.events.find((e) => e.event === 'payin.initiated').data.status).toBe('Initiated');
    expect(sb.balancePaise()).toBe(10_000n);
  });
});

describe('admin endpoints and cli', () => {
  it('ledger lists payouts with rupee strings; faults and settle can be driven over HTTP', async () => {
    const sb = await sandbox();
    const body = payout({ amount: 12.5 });
    await call(sb, 'POST', 'api/v1/payout/initiate', { body });

    const admin = { 'x-admin-token': sb.adminToken };
    const settle = await fetch(`${sb.url}/__admin/settle`, { method: 'POST', headers: admin });
    expect(((await settle.json()) as any).data.settled).toBe(1);

    // The Bearer form works as well as the header.
    const ledger = (await (await fetch(`${sb.url}/__admin/ledger`, { headers: { authorization: `Bearer ${sb.adminToken}` } })).json()) as any;
    expect(ledger.balance).toBe(formatted(1_000_000n - 1_250n - 590n));
    expect(ledger.payouts[0]).toMatchObject({ orderId: body['order_id'], amount: '12.50', charge: '5.90', status: 'Approved', executions: 1 });
    // Account numbers leave the sandbox masked to their last 4 digits.
    expect(ledger.payouts[0].accountNo).toBe('XXXXXXX9999');
    expect(JSON.stringify(ledger)).not.toContain('99999999999');

    const f = await fetch(`${sb.url}/__admin/faults`, { method: 'POST', headers: admin, body: JSON.stringify({ error5xxBeforeRate: 1 }) });
    expect(f.status).toBe(200);
    expect((await call(sb, 'GET', 'api/v1/balance')).status).toBe(500);
    const bad = await fetch(`${sb.url}/__admin/faults`, { method: 'POST', headers: admin, body: JSON.stringify({ latencyMs: 'slow' }) });
    expect(bad.status).toBe(422);
    // Admin calls are not API requests.
    expect(sb.requestCount()).toBe(2);
  });

  it('every admin endpoint refuses a missing or wrong token with 401 and changes nothing', async () => {
    const sb = await sandbox({ adminToken: 'right-token-123' });
    expect(sb.adminToken).toBe('right-token-123');
    const attempts: Array<[string, string, Record<string, string>]> = [];
    for (const [method, path] of [
      ['GET', 'ledger'],
      ['POST', 'payins'],
      ['POST', 'faults'],
      ['POST', 'settle'],
    ] as const) {
      attempts.push([method, path, {}], [method, path, { 'x-admin-token': 'wrong-token-123' }], [method, path, { authorization: 'Bearer wrong-token-123' }]);
    }
    for (const [method, path, headers] of attempts) {
      const res = await fetch(`${sb.url}/__admin/${path}`, {
        method,
        headers,
        ...(method === 'POST' ? { body: JSON.stringify({ order_id: 'P-X', amount: 10, error5xxBeforeRate: 1 }) } : {}),
      });
      expect(res.status, `${method} ${path} ${JSON.stringify(headers)}`).toBe(401);
      expect(((await res.json()) as any).message).toMatch(/admin token/);
    }
    expect((await call(sb, 'GET', 'api/v1/balance')).status).toBe(200);
    expect(sb.balancePaise()).toBe(1_000_000n);
    const ok = await fetch(`${sb.url}/__admin/ledger`, { headers: { 'x-admin-token': 'right-token-123' } });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as any).payins).toEqual([]);
  });

  it('generates a different admin token per sandbox when none is given', async () => {
    const a = await sandbox();
    const b = await sandbox();
    expect(a.adminToken).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(a.adminToken).not.toBe(b.adminToken);
  });

  it('runSandboxCommand prints the URL', async () => {
    const lines: string[] = [];
    const sb = await runSandboxCommand({ accessKey: KEY, secretKey: SECRET, balancePaise: 0n, seed: 1, print: (s) => lines.push(s) });
    open.push(sb);
    expect(lines[0]).toBe(`Sandbox listening on http://127.0.0.1:${sb.port}`);
    expect(lines.join('\n')).toContain(`admin token: ${sb.adminToken}`);
  });

  it('close() ends hung requests and pending timers', async () => {
    const sb = await startSandbox({ accessKey: KEY, secretKey: SECRET, balancePaise: 1_000_000n, faults: { hangAfterRate: 1 } });
    const pending = call(sb, 'POST', 'api/v1/payout/initiate', { body: payout() });
    await until(() => sb.ledger().length === 1);
    await sb.close();
    await expect(pending).rejects.toThrow();
  });
});

function formatted(p: bigint): string {
  return `${p / 100n}.${(p % 100n).toString().padStart(2, '0')}`;
}
