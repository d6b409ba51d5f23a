import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, freshDb, type TestDb } from './helpers/db.js';
import { ROW_STATES } from '../src/states.js';
import { insertBatch } from '../src/db/batches.js';
import { countByState, insertRows, type NewRow } from '../src/db/rows.js';
import { advance, claimReady, commitOutcome, renewForSend } from '../src/db/claims.js';

function row(n: number, over: Partial<NewRow> = {}): NewRow {
  return {
    batch: 'b1', revision: 1, row_no: n + 1, order_id: `PO${n}`, order_id_source: 'derived', state: 'ready',
    name: 'A', email: 'a@b.in', mobile: '9876543210', address: 'X', method: 'IMPS', account_no: '12345678',
    bank_name: 'SBI', ifsc: 'SBIN0000001', amount_paise: 10000n, remarks: null, user_id: 'u', errors: [], warnings: [],
    ...over,
  };
}

describe.each(BACKENDS)('storage on %s', (kind) => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDb(kind);
    await insertBatch(db.knex, { name: 'b1', sourceFile: 'x.csv', sha256: 'h', defaultUserId: null });
    await insertRows(db.knex, [row(1), row(2), row(3)]);
  });

  it('sends nothing from a batch whose file is not completely read', async () => {
    expect(await claimReady(db.knex, 'b1', 'r0', 60_000, 10)).toEqual([]);
    await db.knex('batches').where({ name: 'b1' }).update({ ingest_complete: true });
  });
  afterAll(async () => db?.close());

  it('refuses a state outside the CHECK constraint and a non-positive amount', async () => {
    await expect(db.knex('payout_rows').insert({ ...row(9), errors: '[]', warnings: '[]', amount_paise: '1', state: 'bogus' })).rejects.toThrow(/check/i);
    await expect(db.knex('payout_rows').insert({ ...row(10), errors: '[]', warnings: '[]', amount_paise: '0' })).rejects.toThrow(/check/i);
  });

  it('accepts every state the TypeScript side knows (the CHECK constraint mirrors ROW_STATES)', async () => {
    let n = 100;
    for (const state of Object.values(ROW_STATES)) {
      await db.knex('payout_rows').insert({ ...row(n++), batch: 'b1', errors: '[]', warnings: '[]', amount_paise: '1', state, row_no: n, first_claimed_at: new Date() });
    }
    await db.knex('payout_rows').where('row_no', '>', 100).del();
  });

  it('refuses a row that may exist at the API but was never claimed', async () => {
    for (const state of ['submitting', 'pending', 'approved', 'rejected']) {
      await expect(db.knex('payout_rows').insert({ ...row(200), errors: '[]', warnings: '[]', amount_paise: '1', state })).rejects.toThrow(/check/i);
    }
  });

  it('claims each ready row once, fences stale writers and only moves status forward', async () => {
    const a = await claimReady(db.knex, 'b1', 'r1', 60_000, 2);
    const b = await claimReady(db.knex, 'b1', 'r2', 60_000, 5);
    expect(a.map((r) => r.row_no)).toEqual([2, 3]);
    expect(b.map((r) => r.row_no)).toEqual([4]);
    const first = a[0]!;
    // Wrong fence: refused.
    expect(await commitOutcome(db.knex, first.id, String(Number(first.fence) + 1000), { state: 'pending' })).toBe(false);
    expect(await commitOutcome(db.knex, first.id, first.fence, { state: 'approved', transaction_id: 'UTR1' })).toBe(true);
    // A late Pending never overwrites Approved.
    expect(await advance(db.knex, first.id, ['pending'], { state: 'pending' })).toBe(false);
    const counts = await countByState(db.knex, 'b1');
    expect(counts.approved).toBe(1);
    expect(counts.submitting).toBe(2);
  });

  it('an expired lease can neither renew nor commit', async () => {
    const [c] = await claimReady(db.knex, 'b1', 'r3', 60_000, 1).then(async (r) => (r.length ? r : []));
    // all claimed above: create a fresh one
    await insertRows(db.knex, [row(20)]);
    const [d] = await claimReady(db.knex, 'b1', 'r3', 1, 1);
    expect(c).toBeUndefined();
    await new Promise((r) => setTimeout(r, 20));
    expect(await renewForSend(db.knex, d!.id, d!.fence, 60_000)).toBeUndefined();
    expect(await commitOutcome(db.knex, d!.id, d!.fence, { state: 'pending' })).toBe(false);
  });
});
