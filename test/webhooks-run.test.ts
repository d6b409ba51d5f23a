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

/** A sandbox that counts the payout status checks it receives (where the requests are paid for). */
async function countingSandbox(over: Parameters<typeof sandbox>[0]) {
  let status = 0;
  const sb = await sandbox({
    ...over,
    logger: (line) => {
      const l = line as { method?: string; path?: string };
      if (l.method === 'GET' && l.path?.startsWith('api/v1/payout/') && l.path.endsWith('/status')) status++;
    },
  });
  return Object.assign(sb, { statusRequests: () => status });
}

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

  it('with webhooks, a pending payout is asked about when its webhook comes, not every poll interval (issue 20)', async () => {
    const port = await freePort();
    const sb = await countingSandbox({ settleMs: 1500, webhookUrl: `http://127.0.0.1:${port}/alliance/webhook/${TOKEN}` });
    const client = clientFor(sb);
    try {
      const file = csv('schedule', Array.from({ length: 8 }, (_, i) => `${4100000 + i}1`));
      const res = await runBatch(
        {
          batch: `${kind}-schedule`,
          csvPath: file,
          defaultUserId: 'M1',
          reportDir: path.join(dir, 'r'),
          ...FAST,
          // A short poll interval: without webhooks each payout would be asked about 6 times before it settles.
          pollIntervalMs: 100,
          pollMaxIntervalMs: 400,
          webhookWaitMs: 10_000,
          webhooks: { port, token: TOKEN },
        },
        { db: db.knex, client, logger: quietLogger },
      );
      expect(res.exitCode, res.message).toBe(0);
      expect(sb.statusRequests()).toBe(8);
    } finally {
      await client.close();
      await sb.close();
    }
  });

  it('a webhook that never comes: the fallback check comes after --webhook-wait and finishes the payout', async () => {
    const port = await freePort();
    // The sandbox posts its webhooks where nobody listens: all are lost.
    const sb = await countingSandbox({ settleMs: 300, webhookUrl: `http://127.0.0.1:${await freePort()}/alliance/webhook/${TOKEN}`, webhookAttempts: 1 });
    const client = clientFor(sb);
    try {
      const file = csv('lost', Array.from({ length: 6 }, (_, i) => `${4200000 + i}1`));
      const res = await runBatch(
        {
          batch: `${kind}-lost`,
          csvPath: file,
          defaultUserId: 'M1',
          reportDir: path.join(dir, 'r'),
          ...FAST,
          pollIntervalMs: 100,
          pollMaxIntervalMs: 400,
          webhookWaitMs: 1500,
          webhooks: { port, token: TOKEN },
        },
        { db: db.knex, client, logger: quietLogger },
      );
      expect(res.exitCode, res.message).toBe(0);
      // One check each, at the fallback: settled by then.
      expect(sb.statusRequests()).toBe(6);
    } finally {
      await client.close();
      await sb.close();
    }
  });

  it('a flood of payin hints takes at most a fifth of the rate while payouts are sent (issue 18)', { timeout: 120_000 }, async () => {
    const port = await freePort();
    const arrivals: { at: number; what: string }[] = [];
    const sb = await sandbox({
      // The payouts settle after the last send: in the send span, only initiates and the flood's lookups.
      settleMs: 10_000,
      webhookUrl: `http://127.0.0.1:${port}/alliance/webhook/${TOKEN}`,
      logger: (line) => {
        const l = line as { method?: string; path?: string; arrived_at?: number };
        if (l.method && l.path) arrivals.push({ at: l.arrived_at ?? 0, what: `${l.method} ${l.path}` });
      },
    });
    const client = clientFor(sb);
    const url = `http://127.0.0.1:${port}/alliance/webhook/${TOKEN}`;
    let flood: Promise<void> = Promise.resolve();
    try {
      const file = csv('flood', Array.from({ length: 100 }, (_, i) => `${4300000 + i}1`));
      const res = await runBatch(
        {
          batch: `${kind}-flood`,
          csvPath: file,
          defaultUserId: 'M1',
          reportDir: path.join(dir, 'r'),
          ...FAST,
          rate: 20,
          pollTimeoutMs: 30_000,
          webhooks: {
            port,
            token: TOKEN,
            // Distinct order_ids the API does not know: each one a lookup, if nothing stopped them.
            onListening: () => {
              flood = (async () => {
                for (let i = 0; i < 400; i += 8) {
                  await Promise.all(
                    Array.from({ length: 8 }, (_, k) =>
                      fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event: 'payin.succeeded', data: { order_id: `FORGED-${i + k}` } }) }).then((r) => r.text()),
                    ),
                  );
                }
              })();
            },
          },
        },
        { db: db.knex, client, logger: quietLogger },
      );
      await flood;
      expect(res.exitCode, res.message).toBe(0);
      expect(sb.ledger()).toHaveLength(100);
      const sorted = arrivals.sort((a, b) => a.at - b.at);
      const initiates = sorted.filter((a) => a.what.includes('payout/initiate'));
      const first = initiates[0]!.at;
      const last = initiates[initiates.length - 1]!.at;
      const span = sorted.filter((a) => a.at >= first && a.at <= last);
      const lookups = span.filter((a) => a.what.includes('payin'));
      // The flood was served, but as a fifth of the rate at most: the payouts had the rest.
      expect(lookups.length).toBeGreaterThan(0);
      expect(lookups.length / span.length).toBeLessThanOrEqual(0.25);
    } finally {
      await flood.catch(() => {});
      await client.close();
      await sb.close();
    }
  });

  it('a stop (Ctrl-C, SIGTERM) drops the hints waiting: no lookup after the run has ended (issue 18)', { timeout: 60_000 }, async () => {
    const port = await freePort();
    let lookups = 0;
    const sb = await sandbox({
      settleMs: 600_000,
      webhookUrl: `http://127.0.0.1:${port}/alliance/webhook/${TOKEN}`,
      logger: (line) => {
        if ((line as { path?: string }).path?.includes('payin')) lookups++;
      },
    });
    const client = clientFor(sb);
    const url = `http://127.0.0.1:${port}/alliance/webhook/${TOKEN}`;
    const stop = new AbortController();
    let posted = 0;
    let flood: Promise<void> = Promise.resolve();
    try {
      const file = csv('stop', Array.from({ length: 30 }, (_, i) => `${4400000 + i}1`));
      const res = await runBatch(
        {
          batch: `${kind}-stop`,
          csvPath: file,
          defaultUserId: 'M1',
          reportDir: path.join(dir, 'r'),
          ...FAST,
          rate: 10,
          stopSignal: stop.signal,
          webhooks: {
            port,
            token: TOKEN,
            onListening: () => {
              flood = (async () => {
                for (let i = 0; i < 300; i++) {
                  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event: 'payin.succeeded', data: { order_id: `STOPPED-${i}` } }) }).catch(() => undefined);
                  if (!r) return; // the receiver has closed
                  await r.text();
                  posted++;
                }
              })();
            },
          },
          onEvent: (e) => {
            if (e.type === 'row' && e.state === 'pending' && posted >= 300) stop.abort();
          },
        },
        { db: db.knex, client, logger: quietLogger },
      );
      await flood;
      expect(stop.signal.aborted).toBe(true);
      expect(res.exitCode).toBe(4);
      const atEnd = lookups;
      await new Promise((r) => setTimeout(r, 1500));
      // Before this, the waiting hints went on being looked up after the run had returned (at the account's rate).
      expect(lookups).toBe(atEnd);
      expect(lookups).toBeLessThan(posted);
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
