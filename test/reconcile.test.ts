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

  it('moves a row the API never saw to needs_review after the review age, and never sends it', async () => {
    const sb = await sandbox({ seed: 4, settleMs: 10 });
    try {
      const first = await start(sb, `${kind}-review`, {}, crashAt('intent_committed', 1));
      expect(first).toBeInstanceOf(CrashError);
      const stuck = (await rowsOfBatch(db.knex, `${kind}-review`)).find((r) => r.state === 'submitting')!;
      await new Promise((r) => setTimeout(r, FAST.leaseMs! + 50));
      // Young: only listed.
      const young = await reconcile(sb, `${kind}-review`, 3_600_000);
      expect(young.findings.find((x) => x.orderId === stuck.order_id)?.action).toBe('flagged');
      // Old: needs an operator.
      const requests = sb.requestCount();
      const old = await reconcile(sb, `${kind}-review`, 0);
      expect(old.findings.find((x) => x.orderId === stuck.order_id)?.action).toBe('needs_review');
      expect((await state(`${kind}-review`))[stuck.row_no]).toBe('needs_review');
      expect(sb.executions(stuck.order_id!)).toBe(0);
      expect(sb.ledger().length).toBe(0);
      expect(sb.requestCount()).toBeGreaterThan(requests); // it asked, it did not pay
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
});
