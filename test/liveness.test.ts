/**
 * Issue 8: every valid row gets paid once the API is healthy, nothing sent is ever forgotten. Each test ends
 * with the oracle's liveness check: valid rows approved or rejected, nothing stranded in needs_review.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, freshDb, type TestDb } from './helpers/db.js';
import { clientFor, quietLogger, sandbox, tmpDir } from './helpers/env.js';
import { checkInvariants } from './helpers/oracle.js';
import { runBatch, type RunOptions } from '../src/engine/run.js';
import { reconcileBatch } from '../src/engine/reconcile.js';
import { ingestFile } from '../src/engine/ingest.js';
import { Runner } from '../src/engine/context.js';
import { processRow } from '../src/engine/submit.js';
import { crashAt, CrashError } from '../src/engine/crash.js';
import { claimReady } from '../src/db/claims.js';
import { rowsOfBatch } from '../src/db/rows.js';
import { openDb } from '../src/db/connect.js';
import { payoutRequestOf } from '../src/engine/payout.js';
import type { Sandbox } from '../src/sandbox/server.js';

const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount';
const IFSCS = ['SBIN0000691', 'HDFC0000001', 'ICIC0000001', 'UTIB0000001'];

/** `n` valid rows, none rejected by the sandbox's bank. */
function payroll(file: string, n: number, from = 0): number[] {
  const lines = [HEADER];
  for (let i = from; i < from + n; i++) {
    lines.push(`Person ${i},p${i}@example.com,98765${String(10000 + i).slice(-5)},Addr ${i},IMPS,${5000000 + i}1,Bank,${IFSCS[i % 4]},${100 + i}`);
  }
  writeFileSync(file, lines.join('\n') + '\n');
  return Array.from({ length: n }, (_, i) => i + 2);
}

const FAST: Partial<RunOptions> = {
  yes: true,
  rate: 500,
  concurrency: 4,
  pollIntervalMs: 20,
  pollMaxIntervalMs: 50,
  pollTimeoutMs: 10_000,
  requestTimeoutMs: 300,
  leaseMarginMs: 50,
  leaseMs: 1000,
  ambiguousGraceMs: 200,
  retry: { retries: 3, baseMs: 5, maxMs: 20 },
};

describe.each(BACKENDS)('liveness on %s', (kind) => {
  let db: TestDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDb(kind);
    dir = tmpDir('payouts-liveness-');
  });
  afterAll(async () => db?.close());

  async function run(sb: Sandbox, o: Partial<RunOptions> & { batch: string }) {
    const client = clientFor(sb, { timeoutMs: o.requestTimeoutMs ?? FAST.requestTimeoutMs! });
    try {
      return await runBatch({ reportDir: path.join(dir, 'reports'), defaultUserId: 'M1', ...FAST, ...o }, { db: db.knex, client, logger: quietLogger });
    } finally {
      await client.close();
    }
  }

  async function expectAllPaid(sb: Sandbox, batch: string, rowNumbers: number[]) {
    const report = await checkInvariants(db.knex, sb, batch, rowNumbers.length, { rowNumbers });
    expect(report.doublePaid).toEqual([]);
    expect(report.lost).toEqual([]);
    expect(report.notFinal).toEqual([]);
    expect(report.disagreements).toEqual([]);
  }

  it('a short API outage strands nothing: refused attempts are not sends, and the resume pays every row', async () => {
    const sb = await sandbox({ seed: 21, settleMs: 20, faults: { burst429Rate: 1, onlyPaths: ['api/v1/payout/initiate'] } });
    try {
      const csv = path.join(dir, `${kind}-outage.csv`);
      const rows = payroll(csv, 20);
      // A generous timeout: every answer is a 429 (nothing ambiguous), however loaded the machine is.
      const first = await run(sb, { batch: `${kind}-outage`, csvPath: csv, rate: 20, requestTimeoutMs: 5000, leaseMs: 8000 });
      expect(first.exitCode).toBe(4);
      expect(first.message).toMatch(/API stayed unavailable/);
      expect(sb.ledger()).toHaveLength(0);
      const after = await rowsOfBatch(db.knex, `${kind}-outage`);
      expect(after.every((r) => r.state === 'ready' && Number(r.send_count) === 0 && r.send_deadline === null)).toBe(true);
      // The API recovers; the same command again pays everyone, once.
      sb.setFaults({});
      const again = await run(sb, { batch: `${kind}-outage` });
      expect(again.exitCode).toBe(0);
      expect(sb.ledger()).toHaveLength(20);
      await expectAllPaid(sb, `${kind}-outage`, rows);
    } finally {
      await sb.close();
    }
  });

  it('Ctrl-C mid-run: the summary separates sent from not sent, and the resume finishes without paying twice', async () => {
    const sb = await sandbox({ seed: 22, settleMs: 60_000 });
    try {
      const csv = path.join(dir, `${kind}-ctrlc.csv`);
      const rows = payroll(csv, 30);
      const stop = new AbortController();
      const first = await run(sb, {
        batch: `${kind}-ctrlc`,
        csvPath: csv,
        rate: 100,
        concurrency: 2,
        stopSignal: stop.signal,
        onEvent: (e) => {
          if (e.type === 'row' && e.state === 'pending' && sb.ledger().length >= 8) stop.abort();
        },
      });
      expect(first.exitCode).toBe(4);
      const c = first.counts!;
      expect(c.pending).toBe(sb.ledger().length);
      expect(c.not_sent).toBe(30 - sb.ledger().length);
      expect(c.not_sent).toBeGreaterThan(0);
      sb.settleAll();
      const again = await run(sb, { batch: `${kind}-ctrlc` });
      sb.settleAll();
      const last = again.exitCode === 0 ? again : await run(sb, { batch: `${kind}-ctrlc` });
      expect(last.exitCode).toBe(0);
      await expectAllPaid(sb, `${kind}-ctrlc`, rows);
    } finally {
      await sb.close();
    }
  });

  it('the resend cap: after three sends the API never kept, a person is asked; --retry-review resets the cap and pays it', async () => {
    // Every initiate fails with a 500 before executing: ambiguous for a POST, so status first, 404, resend.
    const sb = await sandbox({ seed: 23, settleMs: 20, faults: { error5xxBeforeRate: 1, onlyPaths: ['api/v1/payout/initiate'] } });
    try {
      const csv = path.join(dir, `${kind}-cap.csv`);
      const rows = payroll(csv, 2, 100);
      const first = await run(sb, { batch: `${kind}-cap`, csvPath: csv, maxSendsPerRow: 3 });
      expect(first.exitCode).toBe(1);
      const review = await rowsOfBatch(db.knex, `${kind}-cap`, ['needs_review']);
      expect(review).toHaveLength(2);
      expect(review[0]!.last_error).toMatch(/sent 3 times and each time the API later had no such payout/);
      sb.setFaults({});
      // Without the operator's word nothing changes…
      expect((await run(sb, { batch: `${kind}-cap` })).exitCode).toBe(1);
      // …with it, the count starts again and the rows are paid (status first).
      const retried = await run(sb, { batch: `${kind}-cap`, retryReview: true });
      expect(retried.exitCode).toBe(0);
      await expectAllPaid(sb, `${kind}-cap`, rows);
    } finally {
      await sb.close();
    }
  });

  it('an amount the API holds differently under our order_id goes to an operator, never adopted', async () => {
    const sb = await sandbox({ seed: 24, settleMs: 20 });
    try {
      const csv = path.join(dir, `${kind}-amount.csv`);
      payroll(csv, 1, 200);
      const batch = `${kind}-amount`;
      const client = clientFor(sb);
      try {
        // The runner dies right after claiming the row; meanwhile the API holds a payout under its order_id for another amount.
        const crashed = await runBatch(
          { batch, csvPath: csv, defaultUserId: 'M1', reportDir: path.join(dir, 'reports'), ...FAST },
          { db: db.knex, client, logger: quietLogger, crash: crashAt('intent_committed', 1) },
        ).catch((e: unknown) => e);
        expect(crashed).toBeInstanceOf(CrashError);
        const [row] = await rowsOfBatch(db.knex, batch);
        await client.initiatePayout({ ...payoutRequestOf(row!), amountPaise: 99_00n });
        await new Promise((r) => setTimeout(r, FAST.leaseMs! + 50));
        const res = await run(sb, { batch });
        expect(res.exitCode).toBe(1);
        const [after] = await rowsOfBatch(db.knex, batch);
        expect(after!.state).toBe('needs_review');
        expect(after!.last_error).toMatch(/the API holds order_id .* with amount ₹99\.00, this row has ₹300\.00/);
        expect(sb.ledger()).toHaveLength(1);
      } finally {
        await client.close();
      }
    } finally {
      await sb.close();
    }
  });

  it('a paid row put back to ready by an operator is never deleted by a corrected copy, and is asked about before anything else', async () => {
    const sb = await sandbox({ seed: 25, settleMs: 60_000 });
    const batch = `${kind}-keep`;
    try {
      const v1 = path.join(dir, `${kind}-keep-v1.csv`);
      payroll(v1, 2, 300);
      expect((await run(sb, { batch, csvPath: v1, pollTimeoutMs: 50 })).exitCode).toBe(4);
      // Pending at the API too long: reconcile hands them to an operator…
      const client = clientFor(sb);
      await reconcileBatch({ batch, reviewAfterMs: 0, ...FAST }, { db: db.knex, client, logger: quietLogger });
      await client.close();
      expect((await rowsOfBatch(db.knex, batch)).map((r) => r.state)).toEqual(['needs_review', 'needs_review']);
      // …who retries them while the API is down: both go back to ready, nothing is sent.
      const down = clientFor({ url: 'http://127.0.0.1:9' });
      const res = await runBatch({ batch, retryReview: true, reportDir: path.join(dir, 'reports'), ...FAST }, { db: db.knex, client: down, logger: quietLogger });
      await down.close();
      expect(res.exitCode).toBe(6);
      expect((await rowsOfBatch(db.knex, batch)).map((r) => r.state)).toEqual(['ready', 'ready']);
      // A corrected copy without the first person: the row is kept (it was sent), the new person added.
      const v2 = path.join(dir, `${kind}-keep-v2.csv`);
      writeFileSync(v2, [HEADER, ...(await import('node:fs')).readFileSync(v1, 'utf8').trim().split('\n').slice(2), 'New Person,n@example.com,9876500999,Addr,IMPS,77777777771,Bank,SBIN0000691,500'].join('\n') + '\n');
      const revised = await run(sb, { batch, csvPath: v2, revise: true, pollTimeoutMs: 50 });
      expect(revised.ingest!.revisionSummary).toMatchObject({ keptNotInFile: 1, kept: 1, toInsert: 1 });
      expect(sb.ledger()).toHaveLength(3); // the two from before (asked about, not resent) and the new person
      sb.settleAll();
      const done = await run(sb, { batch });
      expect(done.exitCode).toBe(0);
      const all = await rowsOfBatch(db.knex, batch);
      expect(all).toHaveLength(3);
      expect(all.every((r) => r.state === 'approved')).toBe(true);
      const report = await checkInvariants(db.knex, sb, batch, 2, { rowNumbers: [2, 3] });
      expect(report).toEqual({ doublePaid: [], lost: [], notFinal: [], reviewAllowedRows: 0, disagreements: [], overpaid: [] });
    } finally {
      await sb.close();
    }
  });

  it('a runner that lost its claim sends nothing and writes nothing', async () => {
    const sb = await sandbox({ seed: 26, settleMs: 20 });
    const batch = `${kind}-lease`;
    const client = clientFor(sb);
    try {
      const csv = path.join(dir, `${kind}-lease.csv`);
      payroll(csv, 1, 400);
      await ingestFile(db.knex, { batch, csvPath: csv, defaultUserId: 'M1' });
      const runner = new Runner({ db: db.knex, client, logger: quietLogger }, FAST);
      const [row] = await claimReady(db.knex, batch, runner.owner, FAST.leaseMs!, 1);
      // Its lease ran out (a long pause, say) and another runner claimed the row meanwhile.
      await db.knex('payout_rows').where({ id: row!.id }).update({ lease_expires_at: new Date(Date.now() - 1000), fence: db.knex.raw("nextval('payout_fence')") });
      const end = await processRow(runner, row!, Date.now() - FAST.leaseMs!);
      expect(end).toBeUndefined();
      expect(sb.requestCount()).toBe(0);
      expect((await rowsOfBatch(db.knex, batch))[0]!.state).toBe('submitting');
    } finally {
      await client.close();
      await sb.close();
    }
  });

  it.runIf(kind === 'postgres')('two runners reading the same new batch at once store each row once', async () => {
    const csv = path.join(dir, 'race.csv');
    const lines = [HEADER];
    for (let i = 0; i < 3000; i++) lines.push(`P ${i},p${i}@example.com,9876543210,A,IMPS,${7000000 + i}1,B,${i % 10 === 0 ? 'BAD' : 'SBIN0000691'},${100 + (i % 50)}`);
    writeFileSync(csv, lines.join('\n') + '\n');
    const other = await openDb({ databaseUrl: db.url! });
    try {
      const [a, b] = await Promise.all([
        ingestFile(db.knex, { batch: 'race', csvPath: csv, defaultUserId: 'M1', chunkSize: 200 }),
        ingestFile(other.knex, { batch: 'race', csvPath: csv, defaultUserId: 'M1', chunkSize: 200 }),
      ]);
      expect([a.kind, b.kind].sort()).toEqual(['new', 'unchanged']);
      const n = (await db.knex('payout_rows').where({ batch: 'race' }).select(db.knex.raw('count(*)::int AS n'), db.knex.raw(`count(*) FILTER (WHERE state = 'invalid')::int AS bad`)).first()) as { n: number; bad: number };
      expect(n).toEqual({ n: 3000, bad: 300 });
    } finally {
      await other.close();
    }
  });
});
