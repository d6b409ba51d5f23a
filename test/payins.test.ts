import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError } from '../src/alliance/errors.js';
import { payinJson } from '../src/commands/api.js';
import { parseSince } from '../src/commands/payins.js';
import { getPayin, listPayins, upsertPayin, type PayinFacts } from '../src/db/payins.js';
import { fetchAndStorePayin } from '../src/engine/payins.js';
import { UsageError } from '../src/errors.js';
import type { Sandbox } from '../src/sandbox/server.js';
import { runCli } from './helpers/cli.js';
import { BACKENDS, freshDb, type TestDb } from './helpers/db.js';
import { clientFor, KEYS, sandbox, tmpDir } from './helpers/env.js';

function facts(over: Partial<PayinFacts> = {}): PayinFacts {
  return {
    orderId: 'PIN-1',
    userId: 'u-1',
    amountPaise: null,
    requestAmountPaise: 10_000n,
    method: 'UPI',
    utr: null,
    bankUpi: null,
    bankName: null,
    status: 'Pending',
    comments: 'Pending',
    timeOfProcessing: '2026-11-27 10:00:00',
    apiCreatedAt: '2026-11-27T04:30:00.000000Z',
    apiUpdatedAt: '2026-11-27T04:30:00.000000Z',
    rawResponse: { status: 'Pending' },
    ...over,
  };
}

const sandboxes: Sandbox[] = [];
afterEach(async () => {
  await Promise.all(sandboxes.splice(0).map((s) => s.close()));
});

describe.each(BACKENDS)('payins table on %s', (kind) => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDb(kind);
  });
  afterAll(async () => db?.close());

  it('stores a payin once; its status only moves forward (Pending -> Approved, never back, never to Rejected)', async () => {
    const k = db.knex;
    expect((await upsertPayin(k, facts())).outcome).toBe('inserted');
    expect((await upsertPayin(k, facts({ comments: 'still pending' }))).outcome).toBe('refreshed');
    const approved = await upsertPayin(
      k,
      facts({ status: 'Approved', amountPaise: 10_000n, utr: '98675644343', bankName: 'SOME BANK', comments: 'Auto Approved', rawResponse: { status: 'Approved' } }),
    );
    expect(approved).toMatchObject({ outcome: 'advanced', previousStatus: 'Pending' });
    expect(approved.row).toMatchObject({ status: 'Approved', utr: '98675644343' });
    expect([BigInt(approved.row.amount_paise!), BigInt(approved.row.request_amount_paise!)]).toEqual([10_000n, 10_000n]);

    // A late Pending (a stale answer or a reordered hint) and a contradicting final: the stored status stays.
    const late = await upsertPayin(k, facts({ status: 'Pending', comments: 'late' }), { event: 'payin.initiated', receivedAt: new Date('2026-11-27T05:00:00Z') });
    expect(late).toMatchObject({ outcome: 'unchanged', previousStatus: 'Approved' });
    expect(late.row).toMatchObject({ status: 'Approved', comments: 'Auto Approved', utr: '98675644343' });
    // ...but the hint that came is recorded.
    expect(late.row.raw_event).toEqual({ event: 'payin.initiated', received_at: '2026-11-27T05:00:00.000Z' });
    expect((await upsertPayin(k, facts({ status: 'Rejected', amountPaise: 0n }))).outcome).toBe('unchanged');

    // The same final status again refreshes the other fields (a bank name filled in later).
    const again = await upsertPayin(k, facts({ status: 'Approved', amountPaise: 10_000n, utr: '98675644343', bankName: 'SOME BANK LTD' }));
    expect(again.outcome).toBe('refreshed');
    const row = (await getPayin(k, 'PIN-1'))!;
    expect(row).toMatchObject({ status: 'Approved', bank_name: 'SOME BANK LTD', raw_response: { status: 'Pending' } });
    expect(Number(((await k('payins').where({ order_id: 'PIN-1' }).count({ n: '*' })) as Array<{ n: string }>)[0]!.n)).toBe(1);
  });

  it('keeps money exact in paise, API times as instants, unparsable times as NULL (the raw response keeps the text)', async () => {
    const k = db.knex;
    await upsertPayin(k, facts({ orderId: 'PIN-BIG', status: 'Approved', amountPaise: 9_999_999_999_99n, requestAmountPaise: 9_999_999_999_99n, apiUpdatedAt: 'yesterday' }));
    const r = (await getPayin(k, 'PIN-BIG'))!;
    expect(BigInt(r.amount_paise!)).toBe(9_999_999_999_99n);
    expect(new Date(r.api_created_at!).toISOString()).toBe('2026-11-27T04:30:00.000Z');
    expect(r.api_updated_at).toBeNull();
    await expect(k('payins').insert({ order_id: 'NEG', status: 'Pending', amount_paise: '-1' })).rejects.toThrow(/check/i);
  });

  it('lists by status (any case) and since, newest first', async () => {
    const k = db.knex;
    await upsertPayin(k, facts({ orderId: 'L-OLD', status: 'Rejected', apiCreatedAt: '2026-10-01T00:00:00Z' }));
    await upsertPayin(k, facts({ orderId: 'L-NEW', status: 'Approved', amountPaise: 500n, apiCreatedAt: '2026-11-20T00:00:00Z' }));
    await upsertPayin(k, facts({ orderId: 'L-MID', status: 'Approved', amountPaise: 700n, apiCreatedAt: '2026-11-02T00:00:00Z' }));
    // PIN-1 and PIN-BIG (earlier tests) were created 2026-11-27 04:30, PIN-BIG after PIN-1.
    const approved = await listPayins(k, { status: 'approved', since: new Date('2026-11-01T00:00:00Z') });
    expect(approved.map((r) => r.order_id)).toEqual(['PIN-BIG', 'PIN-1', 'L-NEW', 'L-MID']);
    expect((await listPayins(k, { status: 'REJECTED' })).map((r) => r.order_id)).toEqual(['L-OLD']);
    expect((await listPayins(k, { since: new Date('2026-11-10T00:00:00Z') })).map((r) => r.order_id)).toEqual(['PIN-BIG', 'PIN-1', 'L-NEW']);
    expect((await listPayins(k, { status: 'pending' })).map((r) => r.order_id)).toEqual([]);
  });

  it('fetchAndStorePayin: looks up the sandbox, stores Pending, then Approved; an unknown order_id is NotFoundError, nothing stored', async () => {
    const sb = await sandbox({ settleMs: 60_000 });
    sandboxes.push(sb);
    const client = clientFor(sb);
    try {
      sb.createPayin({ orderId: 'SB-PIN-1', amountPaise: 25_050n, userId: 'payer-9' });
      const first = await fetchAndStorePayin({ client, db: db.knex }, 'SB-PIN-1');
      expect(first.outcome).toBe('inserted');
      expect(first.row).toMatchObject({ status: 'Pending', user_id: 'payer-9', method: 'UPI' });
      expect(BigInt(first.row.request_amount_paise!)).toBe(25_050n);
      sb.settleAll();
      const second = await fetchAndStorePayin({ client, db: db.knex }, 'SB-PIN-1');
      expect(second.outcome).toBe('advanced');
      expect(second.row).toMatchObject({ status: 'Approved', bank_name: 'SANDBOX BANK' });
      expect(BigInt(second.row.amount_paise!)).toBe(25_050n);
      expect(second.row.utr).toMatch(/^\d{10,12}$/);
      expect(second.row.raw_response).toMatchObject({ order_id: 'SB-PIN-1', status: 'Approved', amount: 250.5 });
      await expect(fetchAndStorePayin({ client, db: db.knex }, 'SB-NOPE')).rejects.toBeInstanceOf(NotFoundError);
      expect(await getPayin(db.knex, 'SB-NOPE')).toBeUndefined();
    } finally {
      await client.close();
    }
  });
});

describe('payinJson', () => {
  it('every field the API returned, snake_case, amounts as rupee decimal strings, extra fields kept', () => {
    const raw = {
      user_id: 'a42332',
      order_id: 'adsd-1',
      transaction_id: '98675644343',
      amount: 100,
      request_amount: 100.5,
      method: 'UPI',
      comments: 'Auto Approved',
      status: 'Approved',
      time_of_processing: '2025-08-04 16:58:30',
      created_at: '2025-08-04T06:16:03.000000Z',
      updated_at: '2025-08-04T11:28:30.000000Z',
      bank_upi: 'x@yesbankltd',
      bank_name: null,
      something_new: 7,
    };
    const j = payinJson({
      orderId: 'adsd-1',
      userId: 'a42332',
      status: 'Approved',
      transactionId: '98675644343',
      amountPaise: 10_000n,
      requestAmountPaise: 10_050n,
      method: 'UPI',
      comments: 'Auto Approved',
      timeOfProcessing: raw.time_of_processing,
      createdAt: raw.created_at,
      updatedAt: raw.updated_at,
      bankUpi: raw.bank_upi,
      bankName: null,
      raw,
    });
    expect(j).toEqual({ ...raw, amount: '100.00', request_amount: '100.50' });
  });
});

describe('parseSince', () => {
  const now = Date.parse('2026-11-27T12:00:00Z');
  it('takes a date (local midnight), an ISO time or an age', () => {
    expect(parseSince('2026-11-01', now).getTime()).toBe(new Date(2026, 10, 1).getTime());
    expect(parseSince('2026-11-01T10:00:00+05:30', now).toISOString()).toBe('2026-11-01T04:30:00.000Z');
    expect(parseSince('7d', now).toISOString()).toBe('2026-11-20T12:00:00.000Z');
    expect(parseSince('12h', now).toISOString()).toBe('2026-11-27T00:00:00.000Z');
    expect(parseSince('30m', now).toISOString()).toBe('2026-11-27T11:30:00.000Z');
  });
  it('refuses anything else with the forms it takes', () => {
    for (const bad of ['last week', '2026-13-01', '2026-02-30', '7w', '']) {
      expect(() => parseSince(bad, now)).toThrow(UsageError);
    }
    expect(() => parseSince('7w', now)).toThrow(/a date like 2026-11-01.*an age like 7d/);
  });
});

describe.each(BACKENDS)('payin-status and payins from the command line (%s)', (kind) => {
  let db: TestDb | undefined;
  let env: Record<string, string>;
  let sb: Sandbox;
  // Child processes on a shared, busy machine: generous limits (a hung one is still killed).
  const cli = (args: string[]) => runCli(args, { env, timeoutMs: 200_000 });
  beforeAll(async () => {
    sb = await sandbox({ settleMs: 60_000 });
    const api = { ALLIANCE_BASE_URL: sb.url, ALLIANCE_ACCESS_KEY: KEYS.accessKey, ALLIANCE_SECRET_KEY: KEYS.secretKey };
    if (kind === 'postgres') {
      db = await freshDb('postgres');
      env = { ...api, DATABASE_URL: db.url! };
    } else {
      // Initialise the embedded database here, once, rather than in the first command.
      const dir = tmpDir('payins-cli-');
      const { openDb } = await import('../src/db/connect.js');
      await (await openDb({ dataDir: dir })).close();
      env = { ...api, PAYOUTS_DATA_DIR: dir };
    }
  }, 240_000);
  afterAll(async () => {
    await sb?.close();
    await db?.close();
  });

  it('payin-status stores what it fetched and prints every field; payins lists what is stored', { timeout: 240_000 }, async () => {
    sb.createPayin({ orderId: 'CLI-PIN-A', amountPaise: 100_00n, userId: 'payer-a' });
    sb.createPayin({ orderId: 'CLI-PIN-R', amountPaise: 50_00n, outcome: 'Rejected' });
    const pending = await cli(['payin-status', 'CLI-PIN-A', '--json']);
    expect(pending.code, pending.stderr).toBe(0);
    const p = JSON.parse(pending.stdout);
    expect(p).toMatchObject({ order_id: 'CLI-PIN-A', status: 'Pending', request_amount: '100.00', user_id: 'payer-a', stored: { outcome: 'inserted', status: 'Pending' } });
    for (const k of ['transaction_id', 'amount', 'method', 'comments', 'time_of_processing', 'created_at', 'updated_at', 'bank_upi', 'bank_name']) expect(p).toHaveProperty(k);

    sb.settleAll();
    const done = await cli(['payin-status', 'CLI-PIN-A', '--json']);
    expect(JSON.parse(done.stdout)).toMatchObject({ status: 'Approved', amount: '100.00', stored: { outcome: 'advanced', status: 'Approved' } });
    const text = await cli(['payin-status', 'CLI-PIN-R']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('CLI-PIN-R: Rejected');
    expect(text.stdout).toMatch(/stored \(inserted\)/);

    const unknown = await cli(['payin-status', 'CLI-PIN-NOPE']);
    // no such payin: the API answered, so a usage/input error (2), not "unreachable" (6)
    expect(unknown.code, unknown.stderr).toBe(2);
    expect(unknown.stderr).toMatch(/no payin with order_id CLI-PIN-NOPE \(404\)/);

    const all = await cli(['payins', '--json']);
    expect(all.code, all.stderr).toBe(0);
    const listed = JSON.parse(all.stdout);
    expect(listed.count).toBe(2);
    expect(listed.payins.map((x: { order_id: string }) => x.order_id).sort()).toEqual(['CLI-PIN-A', 'CLI-PIN-R']);
    expect(listed.payins.find((x: { order_id: string }) => x.order_id === 'CLI-PIN-A')).toMatchObject({ status: 'Approved', amount: '100.00', request_amount: '100.00' });

    const approved = await cli(['payins', '--status', 'approved', '--since', '1d']);
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stdout).toContain('1 payin (status approved, since');
    expect(approved.stdout).toContain('CLI-PIN-A  Approved');
    expect(approved.stdout).not.toContain('CLI-PIN-R');
    expect(approved.stdout).toContain('Approved total: ₹100.00');

    const bad = await cli(['payins', '--since', 'last week']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--since must be a date like 2026-11-01');
  });
});
