/**
 * Issue 17: a *person* is never paid twice. Each numbered case of the issue, as the user met it, checked at
 * the far side: the sandbox's ledger (what the API executed) shows each payee paid once, and the exit code
 * and the message say why. The sandbox refuses a repeated order_id, as the API does.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BACKENDS, freshDb, type TestDb } from './helpers/db.js';
import { clientFor, quietLogger, sandbox, tmpDir } from './helpers/env.js';
import { overpaidPayees, type AskedPayment } from './helpers/oracle.js';
import { runBatch, type RunOptions, type RunResult } from '../src/engine/run.js';
import { approveBatch } from '../src/engine/decisions.js';
import { watchInbox, type WatchEvent } from '../src/engine/watch.js';
import { rowsOfBatch } from '../src/db/rows.js';
import { RefusedError, UsageError } from '../src/errors.js';
import { parseRupees } from '../src/money.js';
import type { Sandbox } from '../src/sandbox/server.js';

const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount';
const REF_HEADER = `employee id,${HEADER}`;

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

/** A payroll's people: n rows, distinct names, emails, mobiles and accounts; amounts from `base`. */
function people(n: number, tag: number, base = 1000): string[][] {
  return Array.from({ length: n }, (_, i) => [
    `Person ${tag}-${i}`,
    `p${tag}.${i}@example.com`,
    `9${String(100000000 + tag * 1000 + i).slice(-9)}`,
    `${i} Road`,
    'IMPS',
    `${84000000000 + tag * 1000 + i}`,
    'SBI',
    ['SBIN0000691', 'HDFC0000001', 'ICIC0000001'][i % 3]!,
    `${base + i * 7}.${String(i % 100).padStart(2, '0')}`,
  ]);
}

const asked = (rows: string[][], refAt = -1): AskedPayment[] =>
  rows.map((r) => {
    const o = refAt >= 0 ? 1 : 0;
    return { account: r[5 + o]!, ifsc: r[7 + o]!, reference: refAt >= 0 ? r[refAt] : null, amountPaise: parseRupees(r[8 + o]!)! };
  });

describe.each(BACKENDS)('a person is never paid twice, on %s', (kind) => {
  let sb: Sandbox;
  let dir: string;
  const dbs: TestDb[] = [];
  beforeAll(() => {
    dir = tmpDir('payouts-payee-');
  });
  beforeEach(async () => {
    sb = await sandbox({ settleMs: 20 });
  });
  afterEach(async () => {
    await Promise.all(dbs.splice(0).map((d) => d.close()));
    await sb?.close();
  });

  async function database(): Promise<TestDb> {
    const d = await freshDb(kind);
    dbs.push(d);
    return d;
  }

  async function run(db: TestDb, o: Partial<RunOptions> & { batch: string }): Promise<RunResult> {
    const client = clientFor(sb);
    try {
      return await runBatch({ reportDir: path.join(dir, 'reports'), defaultUserId: 'M1', ...FAST, ...o }, { db: db.knex, client, logger: quietLogger });
    } finally {
      await client.close();
    }
  }

  const refused = (p: Promise<unknown>) => p.then(() => new Error('not refused'), (e: unknown) => e as Error);

  function file(name: string, rows: string[][], header = HEADER): string {
    const f = path.join(dir, `${kind}-${name}`);
    writeFileSync(f, [header, ...rows.map((r) => r.join(','))].join('\n') + '\n');
    return f;
  }

  const creations = () => sb.ledger().length;

  it('17.1: a corrected copy that changes a paid payee\'s account (no reference column) is refused, naming the row; the IFSC alone too', async () => {
    const db = await database();
    const rows = people(5, 1);
    expect((await run(db, { batch: 'rcb', csvPath: file('rcb.csv', rows) })).exitCode).toBe(0);
    expect(creations()).toBe(5);
    const changed = rows.map((r) => [...r]);
    changed[1]![5] = '12345678';
    const err = await refused(run(db, { batch: 'rcb', csvPath: file('rcb-v2.csv', changed), revise: true }));
    expect(err).toBeInstanceOf(RefusedError);
    expect((err as RefusedError).exitCode).toBe(3);
    expect(err.message).toMatch(/row 3 \(was row 3, approved, UTR \w+; the same payee by email, mobile number, name\): account X+1001 -> X+5678/);
    expect(err.message).not.toContain('84000001001');
    expect(creations()).toBe(5);

    const ifsc = rows.map((r) => [...r]);
    ifsc[2]![7] = 'UTIB0000001';
    const dry = await refused(run(db, { batch: 'rcb', csvPath: file('rcb-v3.csv', ifsc), revise: true, dryRun: true }));
    expect(dry).toBeInstanceOf(RefusedError);
    expect(dry.message).toMatch(/row 4 .*IFSC ICIC0000001 -> UTIB0000001/);
    expect(creations()).toBe(5);
    expect(overpaidPayees(sb.ledger(), asked(rows))).toEqual([]);
  });

  it('17.2: a blanked or edited employee id is a difference, never a new payee: refused, nobody paid again', async () => {
    const db = await database();
    const rows = people(6, 2).map((r, i) => [`E${i + 1}`, ...r]);
    expect((await run(db, { batch: 'emp', csvPath: file('emp.csv', rows, REF_HEADER) })).exitCode).toBe(0);
    const copy = rows.map((r) => [...r]);
    copy[2]![0] = '';
    copy[4]![0] = 'E5A';
    const dry = await refused(run(db, { batch: 'emp', csvPath: file('emp-v2.csv', copy, REF_HEADER), revise: true, dryRun: true }));
    expect(dry).toBeInstanceOf(RefusedError);
    expect(dry.message).toMatch(/changes 2 payouts/);
    expect(dry.message).toMatch(/row 4 .*reference "E3" -> \(blank\)/);
    expect(dry.message).toMatch(/row 6 .*reference "E5" -> "E5A"/);
    const real = await refused(run(db, { batch: 'emp', csvPath: file('emp-v2.csv', copy, REF_HEADER), revise: true }));
    expect(real).toBeInstanceOf(RefusedError);
    expect(creations()).toBe(6);
    expect(overpaidPayees(sb.ledger(), asked(rows, 0), await rowsOfBatch(db.knex, 'emp'))).toEqual([]);
  });

  it('17.3: a near-copy under a new name (one row added, or one removed) is refused, naming the other batch and the counts', async () => {
    const db = await database();
    const rows = people(12, 3);
    expect((await run(db, { batch: 'nov', csvPath: file('nov.csv', rows) })).exitCode).toBe(0);
    const plusOne = [...rows, ...people(1, 33)];
    const err = await refused(run(db, { batch: 'nov-again', csvPath: file('nov-again.csv', plusOne) }));
    expect(err).toBeInstanceOf(RefusedError);
    expect(err.message).toMatch(/12 of the 13 payments this file would make \(92 %\) are payments batch "nov"/);
    expect(err.message).toMatch(/--allow-duplicate-file/);
    const minusOne = rows.slice(1);
    const err2 = await refused(run(db, { batch: 'nov-cut', csvPath: file('nov-cut.csv', minusOne) }));
    expect(err2.message).toMatch(/11 of the 11 payments/);
    expect(creations()).toBe(12);
    // Nothing of the refused batches was kept.
    expect(await db.knex('batches').whereIn('name', ['nov-again', 'nov-cut']).select('name')).toEqual([]);
    // A person who says it is a payment of its own: paid (its own order_ids).
    const allowed = await run(db, { batch: 'nov-bonus', csvPath: file('nov-bonus.csv', plusOne), allowDuplicateFile: true });
    expect(allowed.exitCode).toBe(0);
    expect(creations()).toBe(25);
  });

  it('17.4: another database is not blind: the same payments prepared there this month derive the same order_ids, and the API refuses them', async () => {
    const byHand = await database();
    const rows = people(8, 4, 150000);
    expect((await run(byHand, { batch: 'payroll-by-hand', csvPath: file('by-hand.csv', rows) })).exitCode).toBe(0);
    expect(creations()).toBe(8);
    // The watcher's database (another data directory), another file name, the rows re-sorted.
    const watcher = await database();
    const res = await run(watcher, { batch: 'inbox-payroll', csvPath: file('inbox.csv', [...rows].reverse()) });
    expect(res.exitCode).toBe(1);
    expect(res.message).toMatch(/8 order_ids collided/);
    expect(creations()).toBe(8);
    const there = await rowsOfBatch(watcher.knex, 'inbox-payroll');
    expect(there.map((r) => r.state)).toEqual(Array(8).fill('needs_review'));
    expect(overpaidPayees(sb.ledger(), asked(rows))).toEqual([]);
    // Next month the same salaries are new payments.
    const dec = await run(watcher, { batch: 'payroll-next', csvPath: file('next.csv', rows), now: () => new Date(Date.now() + 40 * 86_400_000), allowDuplicateFile: true });
    expect(dec.exitCode).toBe(0);
    expect(creations()).toBe(16);
  });

  it('17.4: within one database next week\'s equal payment is paid (its own order_id); two databases still meet at the first', async () => {
    const db = await database();
    const rows = people(2, 5, 5000);
    expect((await run(db, { batch: 'week1', csvPath: file('week1.csv', rows) })).exitCode).toBe(0);
    const week2 = await run(db, { batch: 'week2', csvPath: file('week2.csv', [...rows, ...people(1, 55)]), repeatWindowDays: 30, allowDuplicateFile: false });
    // Two of three repeat week 1: listed, not refused (below the near-copy threshold of five).
    expect(week2.exitCode).toBe(0);
    expect(week2.ingest!.repeatCount).toBe(2);
    expect(creations()).toBe(5);
    const ids = (await db.knex('payout_rows').whereIn('batch', ['week1', 'week2']).pluck('order_id')) as string[];
    expect(new Set(ids).size).toBe(5);
  });

  describe('17.5 and 17.6: the inbox never replaces a file, never pays half a file and reports it whole', () => {
    let db: TestDb;
    beforeEach(async () => {
      db = await database();
    });
    const runFile =
      (over: Partial<RunOptions> = {}, hook?: (csv: string) => void) =>
      async (o: { batch: string; csv?: string; reportDir: string; beforeSend?: RunOptions['beforeSend'] }) => {
        const client = clientFor(sb);
        try {
          const r = await runBatch(
            {
              ...FAST,
              batch: o.batch,
              csvPath: o.csv,
              reportDir: o.reportDir,
              defaultUserId: 'M1',
              beforeSend: o.beforeSend,
              ...over,
              onEvent: (e) => {
                if (e.type === 'ingested' && o.csv) hook?.(o.csv);
              },
            },
            { db: db.knex, client, logger: quietLogger },
          );
          return { exitCode: r.exitCode, message: r.message };
        } finally {
          await client.close();
        }
      };

    it('17.5: a file of the same name as an unfinished batch waits; the unfinished one is resumed, never replaced', async () => {
      await sb.close();
      sb = await sandbox({ settleMs: 1500 });
      const inbox = tmpDir('payouts-inbox-');
      const a = [HEADER, ...people(3, 6).map((r) => r.join(','))].join('\n') + '\n';
      writeFileSync(path.join(inbox, 'a.csv'), a);
      // Round 1: A is paid but its rows are still with the bank when the poll gives up: unfinished, stays.
      const first = await watchInbox({ inbox, once: true, stableMs: 0, pollMs: 20, runFile: runFile({ pollTimeoutMs: 100 }) });
      expect(first.processed).toEqual([expect.objectContaining({ file: 'a.csv', exitCode: 4, movedTo: 'processing' })]);
      // File B arrives under the same name.
      writeFileSync(path.join(inbox, 'a.csv'), [HEADER, ...people(2, 66).map((r) => r.join(','))].join('\n') + '\n');
      const events: WatchEvent[] = [];
      const second = await watchInbox({ inbox, once: true, stableMs: 0, pollMs: 20, retryMs: 0, runFile: runFile({ pollTimeoutMs: 100 }), onEvent: (e) => events.push(e) });
      expect(readFileSync(path.join(inbox, 'processing', 'a.csv'), 'utf8') === a || existsSync(path.join(inbox, 'done', 'a.csv'))).toBe(true);
      expect(second.processed.every((p) => p.file === 'a.csv' && p.batch === 'a')).toBe(true);
      expect(events.some((e) => e.type === 'waiting' && /unfinished batch of that name/.test(e.why))).toBe(true);
      // Once the bank answers, A is finished and filed; then B is taken (and refused: a different file for batch a).
      await new Promise((r) => setTimeout(r, 1600));
      await watchInbox({ inbox, once: true, stableMs: 0, pollMs: 20, retryMs: 0, runFile: runFile() });
      await watchInbox({ inbox, once: true, stableMs: 0, pollMs: 20, retryMs: 0, runFile: runFile() });
      expect(readFileSync(path.join(inbox, 'done', 'a.csv'), 'utf8')).toBe(a);
      expect((await rowsOfBatch(db.knex, 'a')).filter((r) => r.in_file).map((r) => r.state)).toEqual(['approved', 'approved', 'approved']);
      expect(readdirSync(path.join(inbox, 'failed'))).toContain('a.csv');
      expect(readFileSync(path.join(inbox, 'failed', 'a.reports', 'why.txt'), 'utf8')).toMatch(/different file/);
      expect(creations()).toBe(3);
    });

    it('17.6: a writer that pauses mid-file is waited for (the file is open for writing): all rows paid, not the first four', async () => {
      const inbox = tmpDir('payouts-inbox-');
      const rows = people(9, 7).map((r) => r.join(','));
      const target = path.join(inbox, 'pause.csv');
      // Writes the header and 4 rows, pauses 1.5 s with the file open, then the other 5 rows.
      const writer = spawn(
        process.execPath,
        [
          '-e',
          `const fs=require('fs');const fd=fs.openSync(${JSON.stringify(target)},'w');` +
            `fs.writeSync(fd,${JSON.stringify([HEADER, ...rows.slice(0, 4)].join('\n') + '\n')});` +
            `setTimeout(()=>{fs.writeSync(fd,${JSON.stringify(rows.slice(4).join('\n') + '\n')});fs.closeSync(fd);},1500);`,
        ],
        { stdio: 'ignore' },
      );
      const exited = new Promise((r) => writer.on('exit', r));
      await new Promise((r) => setTimeout(r, 300));
      const events: WatchEvent[] = [];
      const res = await watchInbox({ inbox, once: true, stableMs: 300, pollMs: 100, runFile: runFile(), onEvent: (e) => events.push(e) });
      await exited;
      expect(events.some((e) => e.type === 'waiting' && /open for writing/.test(e.why))).toBe(true);
      expect(res.processed).toEqual([expect.objectContaining({ file: 'pause.csv', exitCode: 0, movedTo: 'done' })]);
      expect(creations()).toBe(9);
    });

    it('17.6: a file that changes after it was read is held back before the first payout (nothing sent), or never reported done after', async () => {
      const inbox = tmpDir('payouts-inbox-');
      const rows = people(9, 8).map((r) => r.join(','));
      writeFileSync(path.join(inbox, 'held.csv'), [HEADER, ...rows.slice(0, 4)].join('\n') + '\n');
      // A writer this process cannot see (another user's): the file grows right after it was read.
      const grow = (csv: string) => appendFileSync(csv, rows.slice(4).join('\n') + '\n');
      const held = await watchInbox({ inbox, once: true, stableMs: 0, pollMs: 20, writers: () => [], runFile: runFile({}, grow) });
      expect(held.processed).toEqual([expect.objectContaining({ file: 'held.csv', exitCode: 2, movedTo: 'failed' })]);
      expect(creations()).toBe(0);
      expect(readFileSync(path.join(inbox, 'failed', 'held.reports', 'why.txt'), 'utf8')).toMatch(/changed after it was taken from the inbox.*held back/s);

      // Grown after the payouts were sent: the rows read are paid, the file goes to failed/ saying what was not.
      writeFileSync(path.join(inbox, 'late.csv'), [HEADER, ...people(4, 9).map((r) => r.join(','))].join('\n') + '\n');
      let grown = false;
      const late = await watchInbox({
        inbox,
        once: true,
        stableMs: 0,
        pollMs: 20,
        writers: () => [],
        runFile: async (o) => {
          const r = await runFile()(o);
          if (!grown && o.csv) appendFileSync(o.csv, people(5, 99).map((x) => x.join(',')).join('\n') + '\n');
          grown = true;
          return r;
        },
      });
      expect(late.processed).toEqual([expect.objectContaining({ file: 'late.csv', exitCode: 2, movedTo: 'failed' })]);
      expect(creations()).toBe(4);
      const why = readFileSync(path.join(inbox, 'failed', 'late.reports', 'why.txt'), 'utf8');
      expect(why).toMatch(/changed while it was being paid.*NOT paid.*--batch late --revise/s);
      expect(readdirSync(path.join(inbox, 'done'))).toEqual([]);
    });

    it('done/ or failed/ that cannot be written is found before anything is paid; the files wait', async () => {
      const inbox = tmpDir('payouts-inbox-');
      writeFileSync(path.join(inbox, 'done'), 'not a folder');
      writeFileSync(path.join(inbox, 'x.csv'), [HEADER, ...people(2, 10).map((r) => r.join(','))].join('\n') + '\n');
      const events: WatchEvent[] = [];
      const res = await watchInbox({ inbox, once: true, stableMs: 0, pollMs: 20, runFile: runFile(), onEvent: (e) => events.push(e) });
      expect(res.processed).toEqual([]);
      expect(res.blocked[0]).toMatch(/done\/ .* cannot be written/);
      expect(events.some((e) => e.type === 'blocked')).toBe(true);
      expect(existsSync(path.join(inbox, 'x.csv'))).toBe(true);
      expect(creations()).toBe(0);
    });
  });

  it('17.7: approve names the revision it approves; a revision stored after the approval is not paid by it', async () => {
    const db = await database();
    const rows = people(3, 11);
    expect((await run(db, { batch: 'apb', csvPath: file('apb.csv', rows) })).exitCode).toBe(0);
    // A corrected copy adding a payee, without --yes and without a terminal: stored as a proposal, not paid.
    const extra = [...rows, ['New Payee', 'new@example.com', '9800000001', 'X', 'IMPS', '99990000001', 'SBI', 'SBIN0000691', '89999']];
    const proposal = await run(db, { batch: 'apb', csvPath: file('apb-v2.csv', extra), revise: true, yes: false });
    expect(proposal.exitCode).toBe(3);
    expect(proposal.message).toMatch(/revision 2 is stored as a proposal/);
    expect(proposal.message).toMatch(/payouts approve apb --revision 2/);
    // "checked rev 1": the approval must name the revision; rev 1 is not what would be paid.
    await expect(approveBatch({ db: db.knex }, 'apb', { note: 'checked rev 1', by: 'ops' })).rejects.toBeInstanceOf(UsageError);
    const wrong = await refused(approveBatch({ db: db.knex }, 'apb', { note: 'checked rev 1', by: 'ops', revision: 1 }));
    expect(wrong).toBeInstanceOf(RefusedError);
    expect(wrong.message).toMatch(/is at revision 2 .*1 payouts of ₹89,999\.00 not sent yet.*not revision 1/);
    const unattended = await run(db, { batch: 'apb', yes: false });
    expect(unattended.exitCode).toBe(3);
    expect(creations()).toBe(3);
    const subject = await approveBatch({ db: db.knex }, 'apb', { note: 'checked rev 2', by: 'ops', revision: 2 });
    expect(subject).toMatchObject({ revision: 2, rows: 1, totalPaise: 8_999_900n });
    expect((await run(db, { batch: 'apb', yes: false })).exitCode).toBe(0);
    expect(creations()).toBe(4);
    const approvals = await db.knex('approvals').where({ batch: 'apb' }).select('revision', 'rows', 'by_user');
    expect(approvals).toEqual([{ revision: 2, rows: 1, by_user: 'ops' }]);
  });
});
