import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, freshDb, type TestDb } from './helpers/db.js';
import { clientFor, quietLogger, sandbox, tmpDir } from './helpers/env.js';
import { writeChaosCsv } from './helpers/oracle.js';
import { runBatch, type RunOptions } from '../src/engine/run.js';
import { reconcileBatch } from '../src/engine/reconcile.js';
import { CrashError, crashAt } from '../src/engine/crash.js';
import { rowsOfBatch } from '../src/db/rows.js';
import type { Sandbox } from '../src/sandbox/server.js';

const FAST: Partial<RunOptions> = {
  // Several batches here read the same file on purpose; duplicate uploads have tests of their own (test/duplicates.test.ts).
  allowDuplicateFile: true,
  // The engine sends only after an explicit yes; these tests are not about confirmation.
  yes: true,
  rate: 1000,
  pollIntervalMs: 20,
  pollMaxIntervalMs: 50,
  pollTimeoutMs: 2000,
  requestTimeoutMs: 200,
  leaseMarginMs: 50,
  leaseMs: 500,
  ambiguousGraceMs: 100,
  retry: { retries: 2, baseMs: 5, maxMs: 20 },
};

describe.each(BACKENDS)('reconcile on %s', (kind) => {
  let db: TestDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDb(kind);
    dir = tmpDir('payouts-reconcile-');
  });
  afterAll(async () => db?.close());

  async function start(sb: Sandbox, batch: string, over: Partial<RunOptions> = {}, crash?: ReturnType<typeof crashAt>) {
    const csv = path.join(dir, `${batch}.csv`);
    writeChaosCsv(csv, 6, 3);
    const client = clientFor(sb, { timeoutMs: 200 });
    try {
      return await runBatch(
        { batch, csvPath: csv, defaultUserId: 'u', reportDir: path.join(dir, 'r'), concurrency: 1, ...FAST, ...over },
        { db: db.knex, client, logger: quietLogger, crash },
      ).catch((e: unknown) => (e instanceof CrashError ? e : Promise.reject(e)));
    } finally {
      await client.close();
    }
  }

  async function reconcile(sb: Sandbox, batch: string, reviewAfterMs: number) {
    const client = clientFor(sb);
    try {
      return await reconcileBatch({ batch, reviewAfterMs, ...FAST }, { db: db.knex, client, logger: quietLogger });
    } finally {
      await client.close();
    }
  }

  const state = async (batch: string) => Object.fromEntries((await rowsOfBatch(db.knex, batch)).map((r) => [r.row_no, r.state]));

  it('adopts a payout a crashed runner created but never recorded, and flags one it never sent', async () => {
    const sb = await sandbox({ seed: 3, settleMs: 10 });
    try {
      // Crash after the API answered (created) but before the answer was committed.
      const first = await start(sb, `${kind}-adopt`, {}, crashAt('response_received', 1));
      expect(first).toBeInstanceOf(CrashError);
      const rows = await rowsOfBatch(db.knex, `${kind}-adopt`);
      const stuck = rows.find((r) => r.state === 'submitting')!;
      expect(sb.executions(stuck.order_id!)).toBe(1);
      await new Promise((r) => setTimeout(r, FAST.leaseMs! + 50));
      sb.settleAll();
      const res = await reconcile(sb, `${kind}-adopt`, 3_600_000);
      const f = res.findings.find((x) => x.orderId === stuck.order_id)!;
      expect(f.action).toBe('adopted');
      const after = await rowsOfBatch(db.knex, `${kind}-adopt`);
      expect(['approved', 'rejected']).toContain(after.find((r) => r.id === stuck.id)!.state);
      expect(sb.executions(stuck.order_id!)).toBe(1);
    } finally {
      await sb.close();
    }
  });

  it('puts a row the API certainly never saw back to ready, never sends it itself, and the next resume pays it once', async () => {
    const sb = await sandbox({ seed: 4, settleMs: 10 });
    try {
      const first = await start(sb, `${kind}-review`, {}, crashAt('intent_committed', 1));
      expect(first).toBeInstanceOf(CrashError);
      const claimed = (await rowsOfBatch(db.knex, `${kind}-review`)).filter((r) => r.state === 'submitting');
      const stuck = claimed[0]!;
      // Past the claim's send deadline and the grace period, a 404 is certain: the payout was never created.
      await new Promise((r) => setTimeout(r, FAST.leaseMs! + FAST.ambiguousGraceMs! + 50));
      const requests = sb.requestCount();
      const rec = await reconcile(sb, `${kind}-review`, 3_600_000);
      expect(rec.findings.find((x) => x.orderId === stuck.order_id)?.action).toBe('requeued');
      expect(rec.changed.requeued).toBe(claimed.length);
      expect((await state(`${kind}-review`))[stuck.row_no]).toBe('ready');
      expect(sb.executions(stuck.order_id!)).toBe(0);
      expect(sb.ledger().length).toBe(0);
      expect(sb.requestCount()).toBeGreaterThan(requests); // it asked, it did not pay
      // Liveness: the next run pays every valid row, this one once.
      const client = clientFor(sb);
      try {
        const res = await runBatch({ batch: `${kind}-review`, reportDir: path.join(dir, 'r'), ...FAST }, { db: db.knex, client, logger: quietLogger });
        expect(res.counts!.not_sent + res.counts!.sending + res.counts!.pending + res.counts!.needs_review).toBe(0);
      } finally {
        await client.close();
      }
      expect(sb.executions(stuck.order_id!)).toBe(1);
    } finally {
      await sb.close();
    }
  });

  it('adopts final states for rows still pending, and only lists a final row that disagrees', async () => {
    const sb = await sandbox({ seed: 5, settleMs: 600_000 });
    try {
      const res = await start(sb, `${kind}-pending`, { pollTimeoutMs: 100 });
      expect(res).not.toBeInstanceOf(CrashError);
      expect((res as { exitCode: number }).exitCode).toBe(4);
      sb.settleAll();
      const rec = await reconcile(sb, `${kind}-pending`, 3_600_000);
      expect(rec.findings.filter((f) => f.action === 'adopted').length).toBeGreaterThan(0);
      const rows = await rowsOfBatch(db.knex, `${kind}-pending`);
      expect(rows.filter((r) => r.state === 'pending')).toHaveLength(0);
      // Tamper: the database claims approved where the API says rejected.
      const rejected = rows.find((r) => r.state === 'rejected')!;
      await db.knex('payout_rows').where({ id: rejected.id }).update({ state: 'approved' });
      const again = await reconcile(sb, `${kind}-pending`, 3_600_000);
      const f = again.findings.find((x) => x.orderId === rejected.order_id)!;
      expect(f.action).toBe('flagged');
      expect((await state(`${kind}-pending`))[rejected.row_no]).toBe('approved');
    } finally {
      await sb.close();
    }
  });

  it('flags payouts stuck Pending at the API past --review-after, instead of calling them agreed', async () => {
    const sb = await sandbox({ seed: 6, settleMs: 600_000 });
    try {
      const res = await start(sb, `${kind}-stuck`, { pollTimeoutMs: 100 });
      expect((res as { exitCode: number }).exitCode).toBe(4);
      const pending = (await rowsOfBatch(db.knex, `${kind}-stuck`)).filter((r) => r.state === 'pending');
      expect(pending.length).toBeGreaterThan(0);
      // Young: they agree with the API (Pending both sides) and stay pending.
      const young = await reconcile(sb, `${kind}-stuck`, 3_600_000);
      expect(young.changed.needs_review).toBe(0);
      expect((await rowsOfBatch(db.knex, `${kind}-stuck`)).filter((r) => r.state === 'pending')).toHaveLength(pending.length);
      // Past the review age: every one goes to an operator, listed as such.
      await new Promise((r) => setTimeout(r, 300));
      const old = await reconcile(sb, `${kind}-stuck`, 200);
      expect(old.changed.needs_review).toBe(pending.length);
      for (const p of pending) {
        expect(old.findings.find((f) => f.orderId === p.order_id)).toMatchObject({ action: 'needs_review', api: 'Pending' });
      }
      const after = await rowsOfBatch(db.knex, `${kind}-stuck`);
      expect(after.filter((r) => r.state === 'needs_review')).toHaveLength(pending.length);
      expect(after.find((r) => r.state === 'needs_review')!.last_error).toMatch(/still Pending at the API/);
    } finally {
      await sb.close();
    }
  });

  it('works through a backlog far longer than a lease: chunked claims, and only changes it made are counted', async () => {
    // 120 rows left submitting by a dead runner, checked at 150 requests/s under a 300 ms lease: claiming them all
    // up front would see the leases lapse long before the last check.
    const sb = await sandbox({ seed: 7, settleMs: 10 });
    const batch = `${kind}-backlog`;
    const client = clientFor(sb);
    try {
      const csv = path.join(dir, `${batch}.csv`);
      writeChaosCsv(csv, 121, 7);
      await runBatch({ batch, csvPath: csv, defaultUserId: 'u', reportDir: path.join(dir, 'r'), ...FAST, dryRun: false, yes: false, confirm: async () => false }, { db: db.knex, client, logger: quietLogger });
      const ready = await rowsOfBatch(db.knex, batch, ['ready']);
      // Half of them reached the API before the runner died.
      const created = ready.filter((_r, i) => i % 2 === 0);
      for (const r of created) {
        const { payoutRequestOf } = await import('../src/engine/payout.js');
        await client.initiatePayout(payoutRequestOf(r));
      }
      sb.settleAll();
      await db.knex('payout_rows').whereIn('id', ready.map((r) => r.id)).update({
        state: 'submitting',
        lease_owner: 'gone-host~x~y:1:1',
        lease_expires_at: new Date(Date.now() - 60_000),
        first_claimed_at: new Date(Date.now() - 120_000),
        send_deadline: new Date(Date.now() - 60_000),
      });
      const rec = await reconcileBatch({ batch, reviewAfterMs: 3_600_000, ...FAST, rate: 150, leaseMs: 300, leaseMarginMs: 20, requestTimeoutMs: 200 }, { db: db.knex, client, logger: quietLogger });
      const after = await rowsOfBatch(db.knex, batch);
      const byId = new Map(after.map((r) => [r.id, r]));
      expect(after.filter((r) => r.state === 'submitting')).toHaveLength(0);
      for (const r of created) expect(['approved', 'rejected']).toContain(byId.get(r.id)!.state);
      for (const r of ready.filter((_r, i) => i % 2 === 1)) expect(byId.get(r.id)!.state).toBe('ready');
      expect(rec.changed.adopted).toBe(created.length);
      expect(rec.changed.requeued).toBe(ready.length - created.length);
      for (const r of ready) expect(sb.executions(r.order_id!)).toBe(created.includes(r) ? 1 : 0);
    } finally {
      await client.close();
      await sb.close();
    }
  });
});
