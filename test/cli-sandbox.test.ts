import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AllianceClient } from '../src/alliance/client.js';
import { AuthenticationError, ServerError, ValidationError } from '../src/alliance/errors.js';
import { bodyLine, sign } from '../src/alliance/signing.js';
import { runCli, startSandboxCli, type SandboxProcess } from './helpers/cli.js';
import { quietLogger } from './helpers/env.js';

/**
 * Every `payouts sandbox` flag as a user passes it: the built command in a child process, checked from
 * outside through the API it serves (and its admin API).
 */

// Child processes on a shared, busy machine: generous limits (a hung one is still killed).
vi.setConfig({ testTimeout: 240_000 });
const cli = (args: string[], o: Parameters<typeof runCli>[1] = {}) => runCli(args, { timeoutMs: 200_000, ...o });

const K = { accessKey: 'K-sb', secretKey: 'S-sb' };
const KEYS_ARGS = ['--access-key', K.accessKey, '--secret-key', K.secretKey];
const API_ENV = (url: string, over: Record<string, string> = {}) => ({ ALLIANCE_BASE_URL: url, ALLIANCE_ACCESS_KEY: K.accessKey, ALLIANCE_SECRET_KEY: K.secretKey, ...over });

const running: SandboxProcess[] = [];
const clients: AllianceClient[] = [];
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(running.splice(0).map((s) => s.stop()));
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r())))));
});

async function sandbox(args: string[], env: Record<string, string> = {}): Promise<SandboxProcess> {
  const sb = await startSandboxCli(['--port', '0', ...KEYS_ARGS, ...args], env);
  running.push(sb);
  return sb;
}

function client(url: string, over: Partial<ConstructorParameters<typeof AllianceClient>[0]> = {}): AllianceClient {
  const c = new AllianceClient({ baseUrl: url, ...K, timeoutMs: 3000, logger: quietLogger, ...over });
  clients.push(c);
  return c;
}

let seq = 0;
const payout = (over: { accountNumber?: string; orderId?: string } = {}) => ({
  beneficiaryName: 'Test Name',
  beneficiaryEmail: 't@example.com',
  beneficiaryMobile: '7878787878',
  beneficiaryAddress: 'NOIDA',
  paymentMethod: 'IMPS' as const,
  accountNumber: over.accountNumber ?? '99999999999',
  bankName: 'SBI',
  ifsc: 'SBIN0060589',
  amountPaise: 10_000n,
  orderId: over.orderId ?? `CLI-${process.pid}-${++seq}`,
  userId: 'u1',
  remarks: null,
});

async function admin(sb: SandboxProcess, method: string, path: string, body?: unknown, token = sb.adminToken): Promise<{ status: number; json: any }> {
  const res = await fetch(`${sb.url}/__admin/${path}`, {
    method,
    headers: token ? { 'x-admin-token': token } : {},
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: await res.json() };
}

async function until<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('payouts sandbox in one shell, payouts balance in another', () => {
  it('serves the API on the printed URL with the given keys and balance; a wrong key exits 6 (credentials refused)', async () => {
    const sb = await sandbox(['--balance', '1111.11']);
    const ok = await cli(['balance'], { env: API_ENV(sb.url) });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('₹1,111.11');
    const bad = await cli(['balance'], { env: API_ENV(sb.url, { ALLIANCE_SECRET_KEY: 'nope' }) });
    expect(bad.code).toBe(6);
    expect(bad.stderr).toMatch(/401/);
  });

  it('takes the keys from ALLIANCE_ACCESS_KEY / ALLIANCE_SECRET_KEY too, and refuses to start without them (exit 2)', async () => {
    const sb = await startSandboxCli(['--port', '0'], { ALLIANCE_ACCESS_KEY: K.accessKey, ALLIANCE_SECRET_KEY: K.secretKey });
    running.push(sb);
    expect((await client(sb.url).balance()).raw).toBe('500000.00');
    const none = await cli(['sandbox', '--port', '0']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('the sandbox needs --access-key and --secret-key');
  });
});

describe('every sandbox flag from the command line', () => {
  it('--port and --host: listens where asked', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const sb = await startSandboxCli(['--port', String(port), '--host', '127.0.0.1', ...KEYS_ARGS]);
    running.push(sb);
    expect(sb.url).toBe(`http://127.0.0.1:${port}`);
    expect((await client(sb.url).balance()).balancePaise).toBe(500_000_00n);
  });

  it('--no-dedup executes a repeated order_id again; without it the repeat gets 422', async () => {
    const [off, on] = await Promise.all([sandbox(['--no-dedup']), sandbox([])]);
    const req = payout();
    await client(off.url).initiatePayout(req);
    await client(off.url).initiatePayout(req);
    const ledger = await admin(off, 'GET', 'ledger');
    expect(ledger.json.payouts.map((p: any) => [p.orderId, p.executions])).toEqual([
      [req.orderId, 2],
      [req.orderId, 2],
    ]);
    await client(on.url).initiatePayout(req);
    const e = await client(on.url).initiatePayout(req).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ValidationError);
    expect((e as ValidationError).orderIdTaken).toBe(true);
    // --dedup (explicit) is the default.
    const explicit = await sandbox(['--dedup']);
    await client(explicit.url).initiatePayout(req);
    expect(await client(explicit.url).initiatePayout(req).catch((x: unknown) => x)).toBeInstanceOf(ValidationError);
  });

  it('--balance, --settle-ms, --reject-suffix and --seed', async () => {
    const sb = await sandbox(['--balance', '1000', '--settle-ms', '100', '--reject-suffix', '77', '--seed', '5']);
    expect(sb.stdout()).toContain('seed 5 (pass --seed 5');
    const c = client(sb.url);
    expect((await c.balance()).raw).toBe('1000.00');
    const rejected = payout({ accountNumber: '123456777' });
    const approved = payout({ accountNumber: '1234560000' });
    await c.initiatePayout(rejected);
    await c.initiatePayout(approved);
    const settled = await until(async () => {
      const [a, b] = await Promise.all([c.payoutStatus(rejected.orderId), c.payoutStatus(approved.orderId)]);
      return a.status !== 'Pending' && b.status !== 'Pending' && [a, b];
    }, 3000);
    expect(settled[0].status).toBe('Rejected');
    expect(settled[1].status).toBe('Approved');
    // The same seed gives the same UTR in another sandbox.
    const twin = await sandbox(['--balance', '1000', '--settle-ms', '100', '--reject-suffix', '77', '--seed', '5']);
    const t = client(twin.url);
    await t.initiatePayout(rejected);
    await t.initiatePayout(approved);
    const twinUtr = await until(async () => (await t.payoutStatus(approved.orderId)).transactionId, 3000);
    expect(twinUtr).toBe(settled[1].transactionId);
  });

  it('--accept-get-body, --reencode, --accept-timestamp and --require-mobile-number: doctor names each setting', async () => {
    const sb = await sandbox(['--accept-get-body', '{}', '--reencode', 'php', '--accept-timestamp', 's', '--require-mobile-number']);
    const r = await cli(['doctor', '--probe-initiate', '--json'], { env: API_ENV(sb.url) });
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(JSON.parse(r.stdout).settings).toEqual({ get_body_mode: '{}', json_escape: 'php', timestamp_unit: 's', mobile_as_number: true });
    const ascii = await sandbox(['--reencode', 'ascii', '--accept-get-body', 'empty']);
    const a = await cli(['doctor', '--json', '--get-body-mode', '{}'], { env: API_ENV(ascii.url) });
    expect(JSON.parse(a.stdout).settings).toMatchObject({ get_body_mode: 'empty', json_escape: 'ascii' });
  });

  it('--allow-ip: 127.0.0.1 allowed, another address refused', async () => {
    const [allowed, blocked] = await Promise.all([sandbox(['--allow-ip', '127.0.0.1']), sandbox(['--allow-ip', '10.9.9.9', '10.9.9.8'])]);
    expect((await client(allowed.url).balance()).balancePaise).toBeGreaterThan(0n);
    const e = await client(blocked.url).balance().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AuthenticationError);
    expect((e as Error).message).toContain('IP address is not whitelisted.');
  });

  it('--rate with --rate-mode sliding refuses within the second where the default bucket has refilled', async () => {
    const burst = async (sb: SandboxProcess) => {
      const c = client(sb.url);
      const first = await Promise.allSettled([c.balance(), c.balance()]);
      await new Promise((r) => setTimeout(r, 700));
      const later = await c.balance().then(
        () => 200,
        (e: { statusCode?: number }) => e.statusCode,
      );
      return { first: first.map((x) => x.status), later };
    };
    const [sliding, bucket] = await Promise.all([sandbox(['--rate', '2', '--rate-mode', 'sliding']), sandbox(['--rate', '2'])]);
    expect(await burst(bucket)).toEqual({ first: ['fulfilled', 'fulfilled'], later: 200 });
    expect(await burst(sliding)).toEqual({ first: ['fulfilled', 'fulfilled'], later: 429 });
  });

  it('--faults takes fault options as JSON; malformed JSON exits 2', async () => {
    const sb = await sandbox(['--faults', '{"error5xxBeforeRate":1}']);
    expect(await client(sb.url).balance().catch((x: unknown) => x)).toBeInstanceOf(ServerError);
    const bad = await cli(['sandbox', '--port', '0', ...KEYS_ARGS, '--faults', '{nope']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--faults must be a JSON object of fault options');
  });

  it('--webhook-url: a payin created with `payouts sandbox-payin` is announced there', async () => {
    const events: any[] = [];
    const rx = createServer((req, res) => {
      let b = '';
      req.on('data', (c) => (b += c));
      req.on('end', () => {
        events.push(JSON.parse(b));
        res.end('ok');
      });
    });
    servers.push(rx);
    await new Promise<void>((r) => rx.listen(0, '127.0.0.1', () => r()));
    const sb = await sandbox(['--webhook-url', `http://127.0.0.1:${(rx.address() as AddressInfo).port}/hook`, '--settle-ms', '100']);
    const r = await cli(['sandbox-payin', '--order-id', 'PAYIN-CLI-1', '--amount', '250.50'], {
      env: API_ENV(sb.url, { PAYOUTS_SANDBOX_ADMIN_TOKEN: sb.adminToken! }),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Payin PAYIN-CLI-1 created in the sandbox: ₹250.50');
    await until(() => events.length >= 2);
    expect(events.map((e) => [e.event, e.data.order_id])).toEqual([
      ['payin.initiated', 'PAYIN-CLI-1'],
      ['payin.succeeded', 'PAYIN-CLI-1'],
    ]);
  });

  it('--admin-token (or PAYOUTS_SANDBOX_ADMIN_TOKEN): admin needs it, the generated one is printed, the given one never is', async () => {
    const given = await sandbox(['--admin-token', 'tok-given-123456']);
    expect(given.stdout()).not.toContain('tok-given-123456');
    expect((await admin(given, 'GET', 'ledger', undefined, 'tok-given-123456')).status).toBe(200);
    expect((await admin(given, 'GET', 'ledger', undefined, 'other')).status).toBe(401);
    expect((await admin(given, 'POST', 'settle', undefined, '')).status).toBe(401);

    const fromEnv = await sandbox([], { PAYOUTS_SANDBOX_ADMIN_TOKEN: 'tok-env-654321' });
    expect((await admin(fromEnv, 'GET', 'ledger', undefined, 'tok-env-654321')).status).toBe(200);

    const generated = await sandbox([]);
    expect(generated.adminToken).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect((await admin(generated, 'GET', 'ledger')).status).toBe(200);
    expect((await admin(generated, 'GET', 'ledger', undefined, '')).status).toBe(401);
  });

  it('the admin ledger shows account numbers masked to the last 4', async () => {
    const sb = await sandbox([]);
    await client(sb.url).initiatePayout(payout({ accountNumber: '123456789012' }));
    const ledger = await admin(sb, 'GET', 'ledger');
    expect(ledger.json.payouts[0].accountNo).toBe('XXXXXXXX9012');
    expect(JSON.stringify(ledger.json)).not.toContain('123456789012');
  });

  it('the global --get-body-mode/--timestamp-unit flags reach the client: balance against a strict sandbox', async () => {
    const sb = await sandbox(['--accept-get-body', '{}', '--accept-timestamp', 's']);
    const refused = await cli(['balance'], { env: API_ENV(sb.url) });
    expect(refused.code).toBe(6);
    expect(refused.stderr).toContain("try --get-body-mode '{}'");
    const ok = await cli(['balance', '--get-body-mode', '{}', '--timestamp-unit', 's'], { env: API_ENV(sb.url) });
    expect(ok.code, ok.stderr).toBe(0);
    // A raw request signed the same way, as a cross-check of what the flags mean.
    const ts = Math.floor(Date.now() / 1000) + 1;
    const res = await fetch(`${sb.url}/api/v1/balance`, {
      headers: { 'access-key': K.accessKey, timestamp: String(ts), signature: sign(K.secretKey, 'GET', 'api/v1/balance', bodyLine('GET', undefined, '{}'), ts) },
    });
    expect(res.status).toBe(200);
  });
});

describe('payouts sandbox-payin', () => {
  it('refuses without a token, with a wrong token, with a bad amount, and a repeated order_id', async () => {
    const sb = await sandbox([]);
    const env = API_ENV(sb.url);
    const none = await cli(['sandbox-payin', '--order-id', 'P1', '--amount', '10'], { env });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('the sandbox admin token is missing');
    const wrong = await cli(['sandbox-payin', '--order-id', 'P1', '--amount', '10', '--admin-token', 'nope'], { env });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('refused the admin token');
    const amount = await cli(['sandbox-payin', '--order-id', 'P1', '--amount', '-5', '--admin-token', sb.adminToken!], { env });
    expect(amount.code).toBe(2);
    expect(amount.stderr).toContain('--amount must be rupees above zero');
    const ok = await cli(['sandbox-payin', '--order-id', 'P1', '--amount', '10', '--outcome', 'Rejected', '--url', sb.url, '--admin-token', sb.adminToken!, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ order_id: 'P1', request_amount: 10, status: 'Pending' });
    const again = await cli(['sandbox-payin', '--order-id', 'P1', '--amount', '10', '--admin-token', sb.adminToken!], { env });
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('order_id: The order id has already been taken.');
    const nothing = await cli(['sandbox-payin', '--order-id', 'P2', '--amount', '10', '--admin-token', 'x', '--url', 'http://127.0.0.1:9']);
    expect(nothing.code).toBe(6);
    expect(nothing.stderr).toContain('is `payouts sandbox` running there?');
  });
});
