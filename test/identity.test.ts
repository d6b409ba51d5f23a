/**
 * Issue 7: the right person, the right amount, once — at the edges. Against a sandbox that refuses a repeated
 * order_id (422 "The order id has already been taken."), as the API does.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BACKENDS, freshDb, type TestDb } from './helpers/db.js';
import { clientFor, quietLogger, sandbox, tmpDir } from './helpers/env.js';
import { runBatch, type RunOptions } from '../src/engine/run.js';
import { reconcileBatch } from '../src/engine/reconcile.js';
import { rowsOfBatch } from '../src/db/rows.js';
import { RefusedError, UsageError } from '../src/errors.js';
import type { Sandbox } from '../src/sandbox/server.js';

const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount';
const A = 'Asha Rao,asha@example.com,9876543210,Pune,IMPS,001234567890,SBI,SBIN0000691,1000';
const B = 'Bala K,bala@example.com,9876543211,Pune,IMPS,223456789012,HDFC,HDFC0000001,2000';
const C = 'Chitra S,chitra@example.com,9876543212,Pune,IMPS,323456789012,ICICI,ICIC0000001,3000';

const FAST: Partial<RunOptions> = {
  yes: true,
  rate: 500,
  concurrency: 4,
  pollIntervalMs: 20,
  pollMaxIntervalMs: 50,
  pollTimeoutMs: 10_000,
  requestTimeoutMs: 2000,
  leaseMs: 5000,
  ambiguousGraceMs: 200,
  retry: { retries: 2, baseMs: 5, maxMs: 20 },
};

const OCT = () => new Date('2026-10-28T06:00:00Z');
const NOV = () => new Date('2026-11-27T06:00:00Z');

describe.each(BACKENDS)('payout identity on %s', (kind) => {
  let sb: Sandbox;
  let dir: string;
  const dbs: TestDb[] = [];
  beforeAll(async () => {
    dir = tmpDir('payouts-identity-');
  });
  // One API per test: order_ids derive from the payment (issue 17), so two tests paying the same people the
  // same amounts this month against one API would be the very duplicate the API refuses. Within a test, a
  // second database against the same API is "another machine".
  beforeEach(async () => {
    sb = await sandbox({ settleMs: 20 });
  });
  afterEach(async () => {
    await Promise.all(dbs.splice(0).map((d) => d.close()));
    await sb?.close();
  });

  /** A new database: another machine, another directory, or a lost data directory. */
  async function machine(): Promise<TestDb> {
    const d = await freshDb(kind);
    dbs.push(d);
    return d;
  }

  async function run(db: TestDb, o: Partial<RunOptions> & { batch: string }) {
    const client = clientFor(sb);
    try {
      return await runBatch({ reportDir: path.join(dir, 'reports'), defaultUserId: 'M1', ...FAST, ...o }, { db: db.knex, client, logger: quietLogger });
    } finally {
      await client.close();
    }
  }

  function file(name: string, lines: string[], header = HEADER): string {
    const f = path.join(dir, `${kind}-${name}`);
    writeFileSync(f, [header, ...lines].join('\n') + '\n');
    return f;
  }

  it("never reports last month's payout as this month's: a new month pays, the same month on a fresh database is a loud collision", async () => {
    const csv = file('payroll.csv', [A, B]);
    const oct = await run(await machine(), { batch: 'payroll', csvPath: csv, now: OCT });
    expect(oct.exitCode).toBe(0);
    expect(sb.ledger()).toHaveLength(2);
    const octUtrs = sb.ledger().map((e) => e.transactionId);

    // Next month, the same file name on a new machine: new order_ids, two new payouts, their own UTRs.
    const nov = await run(await machine(), { batch: 'payroll', csvPath: csv, now: NOV });
    expect(nov.exitCode).toBe(0);
    expect(nov.message).toMatch(/all 2 rows paid/);
    expect(sb.ledger()).toHaveLength(4);
    // (checked against the ledger below through the rows' UTRs)

    // The same month again, on a database that never sent them: the API refuses the order_ids; nothing is adopted.
    const again = await machine();
    const dup = await run(again, { batch: 'payroll', csvPath: csv, now: OCT });
    expect(sb.ledger()).toHaveLength(4);
    expect(dup.exitCode).toBe(1);
    expect(dup.message).toMatch(/2 order_ids collided/);
    expect(dup.message).not.toMatch(/all .* paid/);
    const rows = await rowsOfBatch(again.knex, 'payroll');
    expect(rows.map((r) => r.state)).toEqual(['needs_review', 'needs_review']);
    for (const r of rows) {
      expect(r.last_error).toMatch(/collided.*NOT paid/s);
      expect(octUtrs).not.toContain(r.transaction_id);
      expect(r.transaction_id).toBeNull();
    }
  });

  it('explicit order_ids reused from an earlier payroll are never adopted, and reconcile does not mark never-sent rows paid', async () => {
    const header = `${HEADER},order_id`;
    const csv = file('explicit.csv', [`${A},ORD-A-1`, `${B},ORD-B-1`], header);
    const first = await run(await machine(), { batch: 'explicit', csvPath: csv });
    expect(first.exitCode).toBe(0);
    const before = sb.ledger().length;

    // A fresh database that is told about the file but does not send it (no yes), then reconciled.
    const fresh = await machine();
    const held = await run(fresh, { batch: 'explicit', csvPath: csv, yes: false });
    expect(held.exitCode).toBe(3);
    const client = clientFor(sb);
    try {
      const rec = await reconcileBatch({ batch: 'explicit', reviewAfterMs: 0, ...FAST }, { db: fresh.knex, client, logger: quietLogger });
      expect(rec.changed.adopted).toBe(0);
    } finally {
      await client.close();
    }
    const rows = await rowsOfBatch(fresh.knex, 'explicit');
    expect(rows.every((r) => r.state !== 'approved')).toBe(true);
    expect(rows.every((r) => r.state === 'needs_review' && /collided/.test(r.last_error ?? ''))).toBe(true);

    // And sending them is a collision too, never an adoption.
    const fresh2 = await machine();
    const sent = await run(fresh2, { batch: 'explicit', csvPath: csv });
    expect(sent.exitCode).toBe(1);
    expect((await rowsOfBatch(fresh2.knex, 'explicit')).map((r) => r.state)).toEqual(['needs_review', 'needs_review']);
    expect(sb.ledger()).toHaveLength(before);
  });

  it('a never-sent row in review (its order_id taken at the API) is kept by a corrected copy; a new order_id for it is a decision', async () => {
    // An earlier payroll paid under explicit order_ids; this month's file reuses them by mistake, on a new
    // machine, and reconcile finds the API holding payouts under them before anything was sent.
    const header = `${HEADER},order_id`;
    const old = file('reused-old.csv', [`${A},ORD-R-1`, `${B},ORD-R-2`], header);
    expect((await run(await machine(), { batch: 'reused-old', csvPath: old })).exitCode).toBe(0);
    const before = sb.ledger().length;
    const db = await machine();
    const dec = file('reused-dec.csv', [`${A},ORD-R-1`, `${B},ORD-R-2`], header);
    expect((await run(db, { batch: 'reused', csvPath: dec, yes: false })).exitCode).toBe(3);
    const client = clientFor(sb);
    try {
      await reconcileBatch({ batch: 'reused', reviewAfterMs: 0, ...FAST }, { db: db.knex, client, logger: quietLogger });
    } finally {
      await client.close();
    }
    const held = await rowsOfBatch(db.knex, 'reused');
    expect(held.map((r) => [r.state, r.first_claimed_at])).toEqual([
      ['needs_review', null],
      ['needs_review', null],
    ]);

    // The same file again: the rows stand, still with the person, nothing sent.
    const same = await run(db, { batch: 'reused', csvPath: file('reused-dec-copy.csv', [`${A},ORD-R-1`, `${B},ORD-R-2`, C + ',ORD-R-3'], header), revise: true });
    expect(same.ingest!.revisionSummary).toMatchObject({ kept: 2, toInsert: 1 });
    expect(sb.ledger().length - before).toBe(1); // Chitra, new
    // The person gives the two rows new order_ids, as the collision's message says: refused until decided,
    // naming both order_ids; nothing stored or sent.
    const fixed = file('reused-dec-v3.csv', [`${A},ORD-D-1`, `${B},ORD-D-2`, C + ',ORD-R-3'], header);
    const refused = await run(db, { batch: 'reused', csvPath: fixed, revise: true }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RefusedError);
    expect((refused as Error).message).toMatch(/row 2 \(was row 2, needs_review.*order_id "ORD-R-1" -> "ORD-D-1".*API holds a payout under the old order_id/);
    expect((refused as Error).message).toMatch(/--accept-change 2 --accept-change 3/);
    expect(sb.ledger().length - before).toBe(1);
    // Decided: paid under the new order_ids, the rows in review kept as they were.
    const paid = await run(db, { batch: 'reused', csvPath: fixed, revise: true, acceptChanges: [2, 3] });
    expect(sb.ledger().length - before).toBe(3);
    const rows = await rowsOfBatch(db.knex, 'reused');
    expect(rows.map((r) => [r.order_id, r.state])).toEqual([
      ['ORD-R-1', 'needs_review'],
      ['ORD-D-1', 'approved'],
      ['ORD-R-2', 'needs_review'],
      ['ORD-D-2', 'approved'],
      ['ORD-R-3', 'approved'],
    ]);
    expect(paid.exitCode).toBe(1);
  });

  it('a corrected copy that lost its order_id column pays only the new person', async () => {
    const db = await machine();
    const v1 = file('lost-ids-v1.csv', [`${A},ID-A`, `${B},ID-B`], `${HEADER},order_id`);
    expect((await run(db, { batch: 'lostids', csvPath: v1 })).exitCode).toBe(0);
    const before = sb.ledger().length;
    const v2 = file('lost-ids-v2.csv', [A, B, C]);
    const res = await run(db, { batch: 'lostids', csvPath: v2, revise: true });
    expect(res.exitCode).toBe(0);
    expect(res.ingest!.revisionSummary).toMatchObject({ kept: 2, toInsert: 1 });
    expect(sb.ledger().length - before).toBe(1); // 3 payouts for 3 people
    const rows = await rowsOfBatch(db.knex, 'lostids');
    expect(rows.filter((r) => r.state === 'approved')).toHaveLength(3);
  });

  it('an amount changed on a paid row is a conflict: refused with old and new values until accepted explicitly', async () => {
    const db = await machine();
    const v1 = file('amount-v1.csv', [A, B]);
    expect((await run(db, { batch: 'amount', csvPath: v1 })).exitCode).toBe(0);
    const before = sb.ledger().length;
    const v2 = file('amount-v2.csv', [A.replace(/,1000$/, ',1500'), B]);
    const err = await run(db, { batch: 'amount', csvPath: v2, revise: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RefusedError);
    expect((err as Error).message).toMatch(/row 2 .*amount ₹1,000\.00 -> ₹1,500\.00/);
    expect((err as Error).message).toMatch(/--accept-change 2/);
    expect(sb.ledger().length).toBe(before);
    // A dry run shows the same refusal; nothing stored either way.
    await expect(run(db, { batch: 'amount', csvPath: v2, revise: true, dryRun: true })).rejects.toBeInstanceOf(RefusedError);
    expect((await rowsOfBatch(db.knex, 'amount')).map((r) => String(r.amount_paise))).toEqual(['100000', '200000']);

    // An explicit decision: pay the new line in addition.
    const accepted = await run(db, { batch: 'amount', csvPath: v2, revise: true, acceptChanges: [2] });
    expect(accepted.exitCode).toBe(0);
    expect(sb.ledger().length - before).toBe(1);
    const rows = await rowsOfBatch(db.knex, 'amount');
    const paidA = rows.filter((r) => r.account_no === '001234567890' && r.state === 'approved');
    expect(paidA.map((r) => String(r.amount_paise)).sort()).toEqual(['100000', '150000']);
    expect(String(rows.find((r) => String(r.amount_paise) === '150000')!.replaces_row_id)).toBe(String(rows.find((r) => String(r.amount_paise) === '100000')!.id));
  });

  it('an account whose leading zeros a spreadsheet stripped is the same payee: not paid again', async () => {
    const db = await machine();
    const v1 = file('zeros-v1.csv', [A, B]);
    expect((await run(db, { batch: 'zeros', csvPath: v1 })).exitCode).toBe(0);
    const before = sb.ledger().length;
    const v2 = file('zeros-v2.csv', [A.replace('001234567890', '1234567890'), B]);
    const res = await run(db, { batch: 'zeros', csvPath: v2, revise: true });
    expect(res.exitCode).toBe(0);
    expect(res.ingest!.revisionSummary).toMatchObject({ kept: 2, toInsert: 0 });
    expect(sb.ledger().length).toBe(before);
  });

  it('a corrected copy before anything was sent replaces the rows, and flags an account that lost its zeros', async () => {
    const db = await machine();
    const v1 = file('unsent-v1.csv', [A, B]);
    expect((await run(db, { batch: 'unsent', csvPath: v1, yes: false })).exitCode).toBe(3);
    const v2 = file('unsent-v2.csv', [A.replace('001234567890', '1234567890'), B.replace(/,2000$/, ',2500'), C]);
    const res = await run(db, { batch: 'unsent', csvPath: v2, yes: false });
    expect(res.ingest).toMatchObject({ kind: 'revised', invalid: 1 });
    const rows = await rowsOfBatch(db.knex, 'unsent');
    expect(rows.map((r) => [r.row_no, r.state, String(r.amount_paise)])).toEqual([
      [2, 'invalid', '100000'],
      [3, 'ready', '250000'],
      [4, 'ready', '300000'],
    ]);
    expect(JSON.stringify(rows[0]!.errors)).toMatch(/without its leading zeros/);
  });

  it('payees removed from a corrected copy are kept when they were sent, dropped when not', async () => {
    const db = await machine();
    const v1 = file('removed-v1.csv', [A, B]);
    expect((await run(db, { batch: 'removed', csvPath: v1 })).exitCode).toBe(0);
    const v2 = file('removed-v2.csv', [C]);
    const res = await run(db, { batch: 'removed', csvPath: v2, revise: true });
    expect(res.ingest!.revisionSummary).toMatchObject({ keptNotInFile: 2, toInsert: 1 });
    const rows = await rowsOfBatch(db.knex, 'removed');
    expect(rows).toHaveLength(3);
    expect(rows.filter((r) => !r.in_file).map((r) => r.state)).toEqual(['approved', 'approved']);
  });

  it('a corrected copy that leaves out payees never sent names each of them (REMOVED), and counts the unsent rows it keeps apart from them', async () => {
    const db = await machine();
    const v1 = file('cut-v1.csv', [A, B, C]);
    // Nothing sent yet (no yes): then a copy with only A and C, and C's amount corrected.
    expect((await run(db, { batch: 'cut', csvPath: v1, yes: false })).exitCode).toBe(3);
    const v2 = file('cut-v2.csv', [A, C.replace(/,3000$/, ',3100')]);
    const res = await run(db, { batch: 'cut', csvPath: v2, yes: false, dryRun: true });
    expect(res.ingest!.revisionSummary).toMatchObject({ kept: 0, toInsert: 2, toPay: 2, removedCount: 1 });
    expect(res.ingest!.revisionSummary!.removed).toEqual([{ row: 3, name: 'Bala K', account: expect.stringMatching(/^X+9012$/), amountPaise: 200000n }]);
    // The dry run stored nothing: B is still there.
    expect((await rowsOfBatch(db.knex, 'cut')).map((r) => r.row_no)).toEqual([2, 3, 4]);
  });

  it('finds what can fail locally before any payout: a report directory that is a file, a batch name too long', async () => {
    const db = await machine();
    const csv = file('local.csv', [A]);
    const requests = sb.requestCount();
    const notDir = path.join(dir, 'a-file');
    writeFileSync(notDir, 'x');
    await expect(run(db, { batch: 'local', csvPath: csv, reportDir: notDir })).rejects.toThrow(/is a file, not a directory/);
    await expect(run(db, { batch: 'x'.repeat(250), csvPath: csv })).rejects.toBeInstanceOf(UsageError);
    expect(sb.requestCount()).toBe(requests);
    expect(await db.knex('batches').count('* as n').first()).toMatchObject({ n: expect.anything() });
    expect(Number(((await db.knex('batches').count('* as n').first()) as { n: string }).n)).toBe(0);
  });
});
