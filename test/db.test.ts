import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, freshDb, type TestDb } from './helpers/db.js';
import { ROW_STATES } from '../src/states.js';
import { insertBatch } from '../src/db/batches.js';
import { countByState, insertRows, type NewRow } from '../src/db/rows.js';
import { advance, claimReady, commitOutcome, renewForSend } from '../src/db/claims.js';
import { MOVES } from '../src/engine/machine.js';

let seq = 0;

function row(batch: string, n: number, over: Partial<NewRow> = {}): NewRow {
  return {
    batch, revision: 1, row_no: n + 1, order_id: `${batch}-PO${n}`, order_id_source: 'derived', state: 'ready',
    name: 'A', email: 'a@b.in', mobile: '9876543210', address: 'X', method: 'IMPS', account_no: '12345678',
    bank_name: 'SBI', ifsc: 'SBIN0000001', amount_paise: 10000n, remarks: null, user_id: 'u', errors: [], warnings: [],
    ...over,
  };
}

// Each test makes its own batch, so the tests pass in any order (vitest --sequence.shuffle) and alone.
describe.each(BACKENDS)('storage on %s', (kind) => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDb(kind);
  });
  afterAll(async () => db?.close());

  /** A batch with rows 1..n ready; its file completely read unless said otherwise. */
  async function batchWith(n: number, complete = true): Promise<string> {
    const name = `b${++seq}`;
    await insertBatch(db.knex, { name, sourceFile: 'x.csv', sha256: `h${seq}`, defaultUserId: null });
    if (n > 0) await insertRows(db.knex, Array.from({ length: n }, (_, i) => row(name, i)));
    if (complete) await db.knex('batches').where({ name }).update({ ingest_complete: true });
    return name;
  }

  it('sends nothing from a batch whose file is not completely read', async () => {
    const b = await batchWith(3, false);
    expect(await claimReady(db.knex, b, 'r0', 60_000, 10)).toEqual([]);
    await db.knex('batches').where({ name: b }).update({ ingest_complete: true });
    expect(await claimReady(db.knex, b, 'r0', 60_000, 10)).toHaveLength(3);
  });

  it('refuses a state outside the CHECK constraint and a non-positive amount', async () => {
    const b = await batchWith(0);
    await expect(db.knex('payout_rows').insert({ ...row(b, 9), errors: '[]', warnings: '[]', amount_paise: '1', state: 'bogus' })).rejects.toThrow(/check/i);
    await expect(db.knex('payout_rows').insert({ ...row(b, 10), errors: '[]', warnings: '[]', amount_paise: '0' })).rejects.toThrow(/check/i);
  });

  it('accepts every state the TypeScript side knows (the CHECK constraint mirrors ROW_STATES)', async () => {
    const b = await batchWith(0);
    let n = 100;
    for (const state of Object.values(ROW_STATES)) {
      await db.knex('payout_rows').insert({ ...row(b, n++), errors: '[]', warnings: '[]', amount_paise: '1', state, row_no: n, first_claimed_at: new Date() });
    }
    const stored = await db.knex('payout_rows').where({ batch: b }).pluck('state');
    expect([...stored].sort()).toEqual([...Object.values(ROW_STATES)].sort());
  });

  it('refuses a row that may exist at the API but was never claimed', async () => {
    const b = await batchWith(0);
    for (const state of ['submitting', 'pending', 'approved', 'rejected']) {
      await expect(db.knex('payout_rows').insert({ ...row(b, 200), errors: '[]', warnings: '[]', amount_paise: '1', state })).rejects.toThrow(/check/i);
    }
  });

  it('claims each ready row once, fences stale writers and only moves status forward', async () => {
    const batch = await batchWith(3);
    const a = await claimReady(db.knex, batch, 'r1', 60_000, 2);
    const b = await claimReady(db.knex, batch, 'r2', 60_000, 5);
    expect(a.map((r) => r.row_no)).toEqual([1, 2]);
    expect(b.map((r) => r.row_no)).toEqual([3]);
    expect(await claimReady(db.knex, batch, 'r3', 60_000, 5)).toEqual([]);
    const first = a[0]!;
    // Wrong fence: refused.
    expect(await commitOutcome(db.knex, first.id, String(Number(first.fence) + 1000), { state: 'pending' })).toBe(false);
    expect(await commitOutcome(db.knex, first.id, first.fence, { state: 'approved', transaction_id: 'UTR1' })).toBe(true);
    // A late status never overwrites Approved: the poll moves only a pending row.
    expect(await advance(db.knex, MOVES.poll, first.id, { state: 'rejected' })).toBe(false);
    const counts = await countByState(db.knex, batch);
    expect(counts.approved).toBe(1);
    expect(counts.submitting).toBe(2);
  });

  it('an expired lease can neither renew nor commit', async () => {
    const batch = await batchWith(1);
    const [d] = await claimReady(db.knex, batch, 'r3', 1, 1);
    expect(d).toBeDefined();
    await new Promise((r) => setTimeout(r, 20));
    expect(await renewForSend(db.knex, d!.id, d!.fence, 60_000)).toBeUndefined();
    expect(await commitOutcome(db.knex, d!.id, d!.fence, { state: 'pending' })).toBe(false);
  });
});
