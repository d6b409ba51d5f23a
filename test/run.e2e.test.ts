import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, freshDb, type TestDb } from './helpers/db.js';
import { clientFor, quietLogger, sandbox, tmpDir } from './helpers/env.js';
import { runBatch, type RunOptions } from '../src/engine/run.js';
import { RefusedError } from '../src/errors.js';
import { getBatch } from '../src/db/batches.js';
import { rowsOfBatch } from '../src/db/rows.js';
import type { Sandbox } from '../src/sandbox/server.js';
import type { AllianceClient } from '../src/alliance/client.js';

const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount,remarks';
const CSV = [
  HEADER,
  'Asha Rao,asha@example.com,9876543210,"12/3 MG Road, Bengaluru",IMPS,123456789012,State Bank of India,SBIN0000691,"1,500.50",Nov salary',
  'José Kumar,jose@example.com,+91 98765 43211,Pune,NEFT,223456789012,HDFC Bank,HDFC0000001,2000,',
  'Rejected Person,rej@example.com,9876543212,Delhi,IMPS,323456780000,ICICI Bank,ICIC0000001,300,',
  'Bad Ifsc,bad@example.com,9876543213,Delhi,IMPS,423456789012,SBI,SBIN060589,300,',
  'राम शर्मा,ram@example.com,9876543214,Noida,UPI,523456789012,Axis Bank,UTIB0000001,99999.99,',
].join('\r\n') + '\r\n'; // a complete file ends with a line break (a last line without one is refused as unfinished)

const FAST: Partial<RunOptions> = {
  // Several batches here read the same file on purpose; duplicate uploads have tests of their own (test/duplicates.test.ts).
  allowDuplicateFile: true,
  // The engine sends only after an explicit yes; these tests are not about confirmation.
  yes: true,
  rate: 200,
  concurrency: 4,
  pollIntervalMs: 30,
  pollMaxIntervalMs: 100,
  pollTimeoutMs: 20_000,
  requestTimeoutMs: 2000,
  leaseMs: 5000,
  ambiguousGraceMs: 300,
  retry: { retries: 3, baseMs: 10, maxMs: 100 },
};

describe.each(BACKENDS)('a batch end to end on %s', (kind) => {
  let db: TestDb;
  let sb: Sandbox;
  let client: AllianceClient;
  let dir: string;
  let reports: string;
  let csv: string;

  beforeAll(async () => {
    db = await freshDb(kind);
    sb = await sandbox({ settleMs: 50 });
    client = clientFor(sb);
    dir = tmpDir();
    csv = path.join(dir, 'nov.csv');
    reports = path.join(dir, 'reports');
    writeFileSync(csv, CSV);
  });
  afterAll(async () => {
    await client?.close();
    await sb?.close();
    await db?.close();
  });

  const run = (over: Partial<RunOptions> = {}) =>
    runBatch({ batch: 'nov', csvPath: csv, defaultUserId: 'u-1', reportDir: reports, ...FAST, ...over }, { db: db.knex, client, logger: quietLogger });

  // One payroll's life, step by step: each step starts from where the one before left the batch, so they are
  // one test (the order is the point), not five that would fail when run alone or shuffled.
  it('a payroll from first run to corrected copy to retried rows: every valid row paid once, every row reported', async () => {
    // 1. pays every valid row once, reports every row, and exits 1 for the unpaid ones
    {
      const before = sb.balancePaise();
      const res = await run();
      expect(res.exitCode).toBe(1);
      const c = res.report!.summary.counts;
      expect(c).toMatchObject({ approved: 3, rejected: 1, invalid: 1, pending: 0, failed: 0 });
      const ledger = sb.ledger();
      expect(ledger).toHaveLength(4);
      for (const e of ledger) expect(sb.executions(e.orderId)).toBe(1);
      // The wallet lost exactly the approved amounts plus their charges.
      const approved = ledger.filter((e) => e.status === 'Approved');
      const spent = approved.reduce((s, e) => s + e.amountPaise + e.chargePaise, 0n);
      expect(before - sb.balancePaise()).toBe(spent);
      expect(approved.map((e) => e.amountPaise).sort()).toEqual([150050n, 200000n, 9999999n]);

      const text = readFileSync(res.report!.csv, 'utf8');
      // A UTF-8 BOM first, so a spreadsheet reads the names as UTF-8.
      expect(text.startsWith('\uFEFFrow,')).toBe(true);
      const lines = text.slice(1).trim().split('\r\n');
      expect(lines).toHaveLength(6);
      expect(lines[0]).toMatch(
        /^row,order_id,reference,beneficiary_name,account,ifsc,bank_name,payment_method,amount,charge,debited,status,status_label,utr,reason,status_message,/,
      );
      const body = lines.slice(1).join('\n');
      expect(body).not.toContain('123456789012');
      expect(body).toContain('XXXXXXXX9012');
      expect(lines.find((l) => l.startsWith('5,'))).toMatch(/invalid.*ifsc/i);
      // Each UTR in its spreadsheet-text form (="…", CSV-quoted), every digit kept.
      for (const e of approved) expect(body).toContain(`"=""${e.transactionId!}"""`);
    }
    // 2. running the finished batch again sends nothing and reports the same
    {
      const requests = sb.requestCount();
      const first = JSON.parse(readFileSync(path.join(reports, 'nov.json'), 'utf8'));
      const res = await run();
      expect(res.exitCode).toBe(1);
      expect(res.ingest?.kind).toBe('unchanged');
      expect(sb.requestCount()).toBe(requests);
      expect(res.report!.summary.counts).toEqual(first.summary.counts);
      expect(res.report!.summary.totals).toEqual(first.summary.totals);
      expect(first.rows).toHaveLength(5);
    }
    // 3. a different file under a batch that has paid is refused unless it is declared a corrected copy
    {
      writeFileSync(csv, CSV.replace('SBIN060589', 'SBIN0060589').replace('José Kumar', 'Jose Kumar'));
      const requests = sb.requestCount();
      await expect(run()).rejects.toBeInstanceOf(RefusedError);
      // A dry run says what a real run would do: refuse without --revise, show the merge with it; and it stores nothing.
      await expect(run({ dryRun: true })).rejects.toBeInstanceOf(RefusedError);
      const preview = await run({ dryRun: true, revise: true });
      expect(preview.dryRun).toBe(true);
      expect(preview.ingest).toMatchObject({ kind: 'revised', revision: 2, invalid: 0 });
      expect(preview.ingest!.revisionSummary).toMatchObject({ kept: 4, toInsert: 1, conflicts: [] });
      expect(preview.preflight!.toSend).toBe(1);
      expect(sb.requestCount()).toBe(requests + 1); // the balance check only
      expect((await getBatch(db.knex, 'nov'))!.revision).toBe(1);
      expect((await rowsOfBatch(db.knex, 'nov')).map((r) => r.state).sort()).toEqual(['approved', 'approved', 'approved', 'invalid', 'rejected']);
    }
    // 4. a corrected copy pays only the fixed row
    {
      const res = await run({ revise: true });
      expect(res.ingest?.kind).toBe('revised');
      expect(res.report!.summary.counts).toMatchObject({ approved: 4, rejected: 1, invalid: 0 });
      expect(sb.ledger()).toHaveLength(5);
      for (const e of sb.ledger()) expect(sb.executions(e.orderId)).toBe(1);
    }
    // 5. retrying failed rows asks status first: a row the API did create is adopted, not paid again
    {
      // Tamper: the database believes an approved payout failed (as if its answer had been misread).
      const paid = (await rowsOfBatch(db.knex, 'nov', ['approved']))[0]!;
      await db.knex('payout_rows').where({ id: paid.id }).update({ state: 'failed', transaction_id: null });
      const before = sb.executions(paid.order_id!);
      const res = await runBatch(
        { batch: 'nov', retryFailed: true, reportDir: reports, ...FAST },
        { db: db.knex, client, logger: quietLogger },
      );
      expect(sb.executions(paid.order_id!)).toBe(before);
      const after = (await rowsOfBatch(db.knex, 'nov')).find((r) => r.id === paid.id)!;
      expect(after.state).toBe('approved');
      expect(after.transaction_id).toBe(paid.transaction_id);
      expect(res.report!.summary.counts.failed).toBe(0);
    }
  });

  it('an API that cannot answer the balance check sends nothing and exits 6', async () => {
    const down = clientFor({ url: 'http://127.0.0.1:9' });
    try {
      // Its own file: the same content as another batch's would be refused as a duplicate upload first.
      writeFileSync(path.join(dir, 'down.csv'), CSV.replace('José Kumar', 'José Kumar Down'));
      const res = await runBatch(
        { batch: 'down', csvPath: path.join(dir, 'down.csv'), defaultUserId: 'u', reportDir: reports, ...FAST },
        { db: db.knex, client: down, logger: quietLogger },
      );
      expect(res.exitCode).toBe(6);
      expect(res.message).toMatch(/nothing sent.*did not answer the balance check/);
      expect(res.report!.summary.counts.not_sent).toBe(4);
    } finally {
      await down.close();
    }
  });

  it('refuses to write a report over its own input file', async () => {
    const requests = sb.requestCount();
    const own = path.join(dir, 'own.csv');
    writeFileSync(own, CSV.replace('José Kumar', 'José Kumar Own'));
    await expect(run({ batch: 'own', csvPath: own, reportDir: dir })).rejects.toThrow(/overwrite the input/);
    expect(sb.requestCount()).toBe(requests);
  });

  it('refuses before sending anything when the balance is short (exit 3)', async () => {
    const poor = await sandbox({ balancePaise: 100_00n });
    const c2 = clientFor(poor);
    try {
      const file = path.join(dir, 'poor.csv');
      writeFileSync(file, CSV.replace('José Kumar', 'José Kumar Poor'));
      const res = await runBatch(
        { batch: 'poor', csvPath: file, defaultUserId: 'u-1', reportDir: reports, ...FAST },
        { db: db.knex, client: c2, logger: quietLogger },
      );
      expect(res.exitCode).toBe(3);
      expect(res.message).toMatch(/short/);
      expect(poor.ledger()).toHaveLength(0);
      // The file's four valid rows not sent; its invalid one reported as such.
      expect(res.report!.summary.counts).toMatchObject({ not_sent: 4, invalid: 1 });
    } finally {
      await c2.close();
      await poor.close();
    }
  });
});

describe('report file names', () => {
  it('keep batches apart even when their names differ only in unsafe characters', async () => {
    const { reportBaseName } = await import('../src/report/report.js');
    expect(reportBaseName('nov-2026')).toBe('nov-2026');
    expect(reportBaseName('a/b')).not.toBe(reportBaseName('a_b'));
    expect(reportBaseName('a/b')).toMatch(/^a_b-[0-9a-f]{8}$/);
    expect(reportBaseName('../etc')).not.toContain('/');
  });
});
