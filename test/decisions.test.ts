/**
 * Issue 9 (engine side): a run sends only after an explicit yes; a "no" (or Ctrl-C at the prompt) is
 * recorded and no later run pays the batch until someone confirms it; `cancel` stops a batch for good,
 * resolving what may be in flight instead of abandoning it.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, freshDb, type TestDb } from './helpers/db.js';
import { clientFor, quietLogger, sandbox, tmpDir } from './helpers/env.js';
import { runBatch, type RunOptions } from '../src/engine/run.js';
import { approveBatch, cancelBatch } from '../src/engine/decisions.js';
import { getBatch } from '../src/db/batches.js';
import { rowsOfBatch } from '../src/db/rows.js';
import { crashAt, CrashError } from '../src/engine/crash.js';
import { NoAnswerError, UsageError } from '../src/errors.js';
import type { Sandbox } from '../src/sandbox/server.js';

const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount';
const FAST: Partial<RunOptions> = {
  rate: 500,
  concurrency: 2,
  pollIntervalMs: 20,
  pollMaxIntervalMs: 50,
  pollTimeoutMs: 5_000,
  requestTimeoutMs: 2000,
  leaseMs: 5000,
  ambiguousGraceMs: 200,
  retry: { retries: 2, baseMs: 5, maxMs: 20 },
};

const SHORT: Partial<RunOptions> = { leaseMs: 1000, requestTimeoutMs: 300, leaseMarginMs: 50, ambiguousGraceMs: 200 };

describe.each(BACKENDS)('decisions on %s', (kind) => {
  let db: TestDb;
  let sb: Sandbox;
  let dir: string;
  beforeAll(async () => {
    db = await freshDb(kind);
    sb = await sandbox({ settleMs: 20 });
    dir = tmpDir('payouts-decisions-');
  });
  afterAll(async () => {
    await sb?.close();
    await db?.close();
  });

  function csv(name: string, n: number, from: number): string {
    const f = path.join(dir, `${kind}-${name}.csv`);
    const lines = [HEADER];
    for (let i = from; i < from + n; i++) lines.push(`P ${i},p${i}@example.com,9876543210,A,IMPS,${8000000 + i}1,B,SBIN0000691,${100 + i}`);
    writeFileSync(f, lines.join('\n') + '\n');
    return f;
  }

  async function run(o: Partial<RunOptions> & { batch: string }, s: Sandbox = sb) {
    const client = clientFor(s);
    try {
      return await runBatch({ reportDir: path.join(dir, 'r'), defaultUserId: 'M1', ...FAST, ...o }, { db: db.knex, client, logger: quietLogger });
    } finally {
      await client.close();
    }
  }

  it('"n" at the prompt is recorded: a later unattended run, even with --yes, pays nothing until someone confirms', async () => {
    const batch = `${kind}-declined`;
    const file = csv('declined', 3, 0);
    const before = sb.ledger().length;
    let asked = 0;
    const no = await run({ batch, csvPath: file, confirm: async () => (asked++, false) });
    expect(asked).toBe(1);
    expect(no.exitCode).toBe(3);
    expect(no.message).toMatch(/not confirmed: nothing sent.*until someone confirms/);
    expect((await getBatch(db.knex, batch))!.decision).toBe('declined');
    // Cron, with --yes: refused, saying why.
    const cron = await run({ batch, yes: true });
    expect(cron.exitCode).toBe(3);
    expect(cron.message).toMatch(/declined at the confirmation prompt/);
    expect(sb.ledger().length).toBe(before);
    // A person says yes at a terminal: paid.
    const yes = await run({ batch, confirm: async () => true });
    expect(yes.exitCode).toBe(0);
    expect(sb.ledger().length - before).toBe(3);
    expect((await getBatch(db.knex, batch))!.decision).toBe('approved');
  });

  it('Ctrl-C at the prompt declines too', async () => {
    const batch = `${kind}-ctrlc-prompt`;
    const before = sb.ledger().length;
    const res = await run({
      batch,
      csvPath: csv('ctrlc-prompt', 2, 10),
      confirm: async () => {
        throw new Error('interrupted');
      },
    });
    expect(res.exitCode).toBe(3);
    expect((await getBatch(db.knex, batch))!.decision).toBe('declined');
    expect(sb.ledger().length).toBe(before);
  });

  it('no terminal and no --yes: refused before sending; `approve` lets a later unattended run pay; a corrected copy needs a new yes', async () => {
    const batch = `${kind}-approve`;
    const before = sb.ledger().length;
    const res = await run({ batch, csvPath: csv('approve', 2, 20) });
    expect(res.exitCode).toBe(3);
    expect(res.message).toMatch(/pass --yes/);
    await approveBatch({ db: db.knex }, batch, { note: 'approved by test', by: 'test' });
    // A corrected copy before anything was sent clears the approval: it is another payroll now.
    const revised = await run({ batch, csvPath: csv('approve-v2', 3, 20) });
    expect(revised.ingest!.kind).toBe('revised');
    expect(revised.exitCode).toBe(3);
    await approveBatch({ db: db.knex }, batch, { note: 'approved again', by: 'test', revision: 2 });
    const paid = await run({ batch });
    expect(paid.exitCode).toBe(0);
    expect(sb.ledger().length - before).toBe(3);
  });

  it('a yes typed at the prompt is the yes of that run: after a Ctrl-C an unattended resume without --yes sends nothing and says why; --yes (or approve) carries on', async () => {
    const batch = `${kind}-typed-yes`;
    const before = sb.ledger().length;
    const stop = new AbortController();
    let sent = 0;
    // Ctrl-C after the second request went out: no new payouts, those in flight finish.
    const client = clientFor(sb);
    const first = await runBatch(
      { reportDir: path.join(dir, 'r'), defaultUserId: 'M1', ...FAST, concurrency: 1, batch, csvPath: csv('typed-yes', 8, 30), confirm: async () => true, stopSignal: stop.signal },
      { db: db.knex, client, logger: quietLogger, crash: (p) => void (p === 'request_sent' && ++sent === 2 && stop.abort()) },
    ).finally(() => client.close());
    expect(first.exitCode).toBe(4);
    const paidFirst = sb.ledger().length - before;
    expect(paidFirst).toBeGreaterThanOrEqual(2);
    expect(paidFirst).toBeLessThan(8);
    // `payouts resume … | tee log`: no terminal, no --yes.
    const piped = await run({ batch });
    expect(piped.exitCode).toBe(3);
    expect(piped.message).toMatch(/no terminal to confirm .*\(the yes typed at a terminal on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+05:30 was for that run only\): pass --yes/);
    expect(sb.ledger().length - before).toBe(paidFirst);
    const cron = await run({ batch, yes: true });
    expect(cron.exitCode).toBe(0);
    expect(sb.ledger().length - before).toBe(8);
    for (const e of sb.ledger()) expect(sb.executions(e.orderId)).toBe(1);
  });

  it('Ctrl-C sends nothing new: the requests already on their way finish; claimed rows still waiting for their turn go back unsent', async () => {
    const batch = `${kind}-ctrl-c-claimed`;
    const before = sb.ledger().length;
    const stop = new AbortController();
    let sent = 0;
    const client = clientFor(sb);
    // Concurrency 2: two requests on their way when the stop comes, two more rows claimed and queued behind them.
    const res = await runBatch(
      { reportDir: path.join(dir, 'r'), defaultUserId: 'M1', ...FAST, concurrency: 2, batch, csvPath: csv('ctrl-c-claimed', 10, 50), yes: true, stopSignal: stop.signal },
      { db: db.knex, client, logger: quietLogger, crash: (p) => void (p === 'request_sent' && ++sent === 2 && stop.abort()) },
    ).finally(() => client.close());
    expect(res.exitCode).toBe(4);
    expect(sb.ledger().length - before).toBe(2);
    const rows = await rowsOfBatch(db.knex, batch);
    expect(rows.filter((r) => r.state === 'ready')).toHaveLength(8);
    expect(rows.filter((r) => r.state === 'submitting')).toHaveLength(0);
    // They were never sent: the next run sends them without a status question, once each.
    const rest = await run({ batch, yes: true });
    expect(rest.exitCode).toBe(0);
    expect(sb.ledger().length - before).toBe(10);
  });

  it('`approve` stays the lasting yes through a later --yes or typed yes; a program stopped at the prompt records no decline', async () => {
    const batch = `${kind}-approved-stays`;
    const before = sb.ledger().length;
    // Stopped while asking (SIGTERM, a hangup): nothing sent, and nobody said no.
    const stopped = await run({
      batch,
      csvPath: csv('approved-stays', 6, 70),
      confirm: async () => {
        throw new NoAnswerError('stopped while waiting for an answer');
      },
    });
    expect(stopped.exitCode).toBe(3);
    expect(stopped.message).toMatch(/not confirmed \(stopped while waiting for an answer\): nothing sent/);
    expect((await getBatch(db.knex, batch))!.decision).toBeNull();
    await approveBatch({ db: db.knex }, batch, { note: 'finance checked it', by: 'test' });
    // A --yes run that is stopped part-way…
    const stop = new AbortController();
    let sent = 0;
    const client = clientFor(sb);
    await runBatch(
      { reportDir: path.join(dir, 'r'), defaultUserId: 'M1', ...FAST, concurrency: 1, batch, yes: true, stopSignal: stop.signal },
      { db: db.knex, client, logger: quietLogger, crash: (p) => void (p === 'request_sent' && ++sent === 1 && stop.abort()) },
    ).finally(() => client.close());
    expect((await getBatch(db.knex, batch))!.decided_by).toBe('approve');
    // …and the scheduled resume without --yes carries on: the approval was not replaced by the run's own yes.
    const cron = await run({ batch });
    expect(cron.exitCode).toBe(0);
    expect(sb.ledger().length - before).toBe(6);
  });

  it('cancel: never-sent rows are cancelled, rows that may be at the API are asked about, nothing new is ever sent', async () => {
    const slow = await sandbox({ seed: 31, settleMs: 60_000 });
    const batch = `${kind}-cancel`;
    try {
      const file = csv('cancel', 6, 90);
      // Two rows reach the API (pending at the bank); the runner dies right after claiming two more.
      const client = clientFor(slow);
      const crashed = await runBatch(
        { batch, csvPath: file, defaultUserId: 'M1', reportDir: path.join(dir, 'r'), ...FAST, ...SHORT, yes: true, concurrency: 1 },
        { db: db.knex, client, logger: quietLogger, crash: crashAt('intent_committed', 3) },
      ).catch((e: unknown) => e);
      await client.close();
      expect(crashed).toBeInstanceOf(CrashError);
      const atCrash = await rowsOfBatch(db.knex, batch);
      const neverClaimed = atCrash.filter((r) => r.first_claimed_at === null).length;
      expect(neverClaimed).toBeGreaterThan(0);
      const sent = slow.ledger().length;
      expect(sent).toBeGreaterThan(0);
      // The dead runner's leases run out; then its claimed rows can be asked about.
      await new Promise((r) => setTimeout(r, SHORT.leaseMs! + SHORT.ambiguousGraceMs! + 100));
      const cclient = clientFor(slow);
      let res;
      try {
        res = await cancelBatch({ batch, reportDir: path.join(dir, 'r'), ...FAST, ...SHORT, pollTimeoutMs: 300 }, { db: db.knex, client: cclient, logger: quietLogger });
      } finally {
        await cclient.close();
      }
      expect(res.cancelledNow).toBe(neverClaimed);
      expect(slow.ledger()).toHaveLength(sent); // nothing new sent
      expect(res.exitCode).toBe(4); // payouts still at the bank
      // Later: the bank settles; a resume polls the two to final, the claimed ones are resolved (not at the API: cancelled).
      slow.settleAll();
      const later = await run({ batch, yes: true, ...SHORT }, slow);
      expect(slow.ledger()).toHaveLength(sent);
      const final = (await rowsOfBatch(db.knex, batch)).map((r) => r.state);
      expect(final.filter((s) => s === 'approved')).toHaveLength(sent);
      expect(final.filter((s) => s === 'cancelled')).toHaveLength(6 - sent);
      expect(later.exitCode).toBe(1);
      expect(later.message).toMatch(new RegExp(`${6 - sent} cancelled`));
      await expect(approveBatch({ db: db.knex }, batch, { note: 'x', by: 'test' })).rejects.toBeInstanceOf(UsageError);
    } finally {
      await slow.close();
    }
  });
});
