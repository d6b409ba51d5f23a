/**
 * Issue 10: webhooks instead of blind polling, used safely. A run listens for Alliance's webhooks; each
 * payout hint leads to one authenticated status check; forged hints change nothing.
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, freshDb, type TestDb } from './helpers/db.js';
import { clientFor, quietLogger, sandbox, tmpDir } from './helpers/env.js';
import { runBatch, type RunOptions } from '../src/engine/run.js';
import { rowsOfBatch } from '../src/db/rows.js';

const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount';
const TOKEN = 'test-webhook-token-0123456789';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const FAST: Partial<RunOptions> = {
  yes: true,
  rate: 200,
  concurrency: 4,
  requestTimeoutMs: 2000,
  leaseMs: 5000,
  ambiguousGraceMs: 200,
  retry: { retries: 2, baseMs: 5, maxMs: 20 },
  // The fallback poll comes long after the run's poll timeout: only webhooks can finish this run in time.
  pollIntervalMs: 60_000,
  pollMaxIntervalMs: 120_000,
  pollTimeoutMs: 8_000,
};

describe.each(BACKENDS)('webhooks during a run on %s', (kind) => {
  let db: TestDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDb(kind);
    dir = tmpDir('payouts-webhooks-run-');
  });
  afterAll(async () => db?.close());

  function csv(name: string, accounts: string[]): string {
    const f = path.join(dir, `${kind}-${name}.csv`);
    writeFileSync(f, [HEADER, ...accounts.map((a, i) => `P ${i},p${i}@example.com,9876543210,A,IMPS,${a},B,SBIN0000691,${100 + i}`)].join('\n') + '\n');
    return f;
  }

  it('finishes on webhooks, one status check per payout, duplicated and reordered deliveries included', async () => {
    const port = await freePort();
    const sb = await sandbox({
      settleMs: 300,
      webhookUrl: `http://127.0.0.1:${port}/alliance/webhook/${TOKEN}`,
      faults: { webhookDuplicateRate: 0.5, webhookReorder: true },
    });
    const client = clientFor(sb);
    try {
      const file = csv('hooks', Array.from({ length: 12 }, (_, i) => `${3100000 + i}1`));
      const res = await runBatch(
        { batch: `${kind}-hooks`, csvPath: file, defaultUserId: 'M1', reportDir: path.join(dir, 'r'), ...FAST, webhooks: { port, token: TOKEN } },
        { db: db.knex, client, logger: quietLogger },
      );
      expect(res.exitCode, res.message).toBe(0);
      expect(sb.ledger()).toHaveLength(12);
      // One initiate and one status check per payout, one balance check; duplicates dedupe to nothing more
      // than a check of a row already final (which costs none: the row is no longer pending).
      expect(sb.requestCount()).toBeLessThanOrEqual(12 * 2 + 1);
    } finally {
      await client.close();
      await sb.close();
    }
  });

  it('a forged payout.succeeded for a payout the API rejects, and a forged payout.failed for one it approves, change nothing', async () => {
    const port = await freePort();
    const sb = await sandbox({ settleMs: 600_000, webhookUrl: `http://127.0.0.1:${port}/alliance/webhook/${TOKEN}` });
    const client = clientFor(sb);
    try {
      // The first account ends in 0000: the sandbox's bank rejects it. The second is approved.
      const file = csv('forged', ['77700000', '77711111']);
      const batch = `${kind}-forged`;
      const forge = async (orderId: string, event: string, status: string) => {
        const r = await fetch(`http://127.0.0.1:${port}/alliance/webhook/${TOKEN}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ event, data: { order_id: orderId, status, transaction_id: '999999999999', amount: 1 } }),
        });
        expect(r.status).toBe(200);
      };
      const run = runBatch(
        {
          batch,
          csvPath: file,
          defaultUserId: 'M1',
          reportDir: path.join(dir, 'r'),
          ...FAST,
          pollTimeoutMs: 20_000,
          webhooks: { port, token: TOKEN },
          onEvent: (e) => {
            if (e.type !== 'row' || e.state !== 'pending') return;
            void (async () => {
              const rows = await rowsOfBatch(db.knex, batch);
              if (rows.filter((r) => r.state === 'pending').length < 2) return;
              const [rejectMe, approveMe] = rows;
              // Forgeries while the payouts are pending at the API: each only leads to a status check (Pending).
              await forge(rejectMe!.order_id!, 'payout.succeeded', 'Approved');
              await forge(approveMe!.order_id!, 'payout.failed', 'Rejected');
              await new Promise((r) => setTimeout(r, 300));
              const mid = await rowsOfBatch(db.knex, batch);
              expect(mid.map((r) => r.state)).toEqual(['pending', 'pending']);
              // The bank settles; the real webhooks arrive and finish the run.
              sb.settleAll();
              // And forgeries after the fact change nothing either.
              await forge(rejectMe!.order_id!, 'payout.succeeded', 'Approved');
              await forge(approveMe!.order_id!, 'payout.failed', 'Rejected');
            })();
          },
        },
        { db: db.knex, client, logger: quietLogger },
      );
      const res = await run;
      const rows = await rowsOfBatch(db.knex, batch);
      expect(rows.map((r) => r.state)).toEqual(['rejected', 'approved']);
      expect(rows[0]!.transaction_id).toBeNull();
      expect(rows[1]!.transaction_id).toBe(sb.ledger().find((e) => e.orderId === rows[1]!.order_id)!.transactionId);
      expect(res.exitCode).toBe(1); // one rejected
    } finally {
      await client.close();
      await sb.close();
    }
  });
});
