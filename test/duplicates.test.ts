/**
 * Issue 12: duplicate-upload protection. The same file content already run under another batch name is
 * refused (exit 3) unless --allow-duplicate-file; rows paying the same account the same amount in another
 * recent batch are listed before anything is sent.
 *
 * Found by running it as an operator would: the same payroll re-saved by a spreadsheet (BOM, CRLF,
 * reformatted amounts, rows re-sorted) and the original file of a batch that was since corrected both
 * paid everyone again. Every file of every revision is now compared, by bytes and by what it pays.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, freshDb, type TestDb } from './helpers/db.js';
import { clientFor, quietLogger, sandbox, tmpDir } from './helpers/env.js';
import { runBatch, type RunOptions } from '../src/engine/run.js';
import { cancelBatch } from '../src/engine/decisions.js';
import { RefusedError } from '../src/errors.js';
import type { Sandbox } from '../src/sandbox/server.js';

const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount';
const ROWS = Array.from({ length: 20 }, (_, i) => `P ${i},p${i}@example.com,9876543210,A,IMPS,${5500000 + i}1,B,SBIN0000691,${1000 + i}`);

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

describe.each(BACKENDS)('duplicate uploads on %s', (kind) => {
  let db: TestDb;
  let sb: Sandbox;
  let dir: string;
  beforeAll(async () => {
    db = await freshDb(kind);
    sb = await sandbox({ settleMs: 20 });
    dir = tmpDir('payouts-dup-');
  });
  afterAll(async () => {
    await sb?.close();
    await db?.close();
  });

  async function run(o: Partial<RunOptions> & { batch: string }) {
    const client = clientFor(sb);
    try {
      return await runBatch({ reportDir: path.join(dir, 'r'), defaultUserId: 'M1', ...FAST, ...o }, { db: db.knex, client, logger: quietLogger });
    } finally {
      await client.close();
    }
  }

  it('the same 20-row file under a second batch name is refused before anything is stored or sent', async () => {
    const file = path.join(dir, `${kind}-bonus.csv`);
    writeFileSync(file, [HEADER, ...ROWS].join('\n') + '\n');
    const first = await run({ batch: `${kind}-bonus`, csvPath: file });
    expect(first.exitCode).toBe(0);
    expect(sb.ledger()).toHaveLength(20);
    const copy = path.join(dir, `${kind}-bonus-again.csv`);
    writeFileSync(copy, [HEADER, ...ROWS].join('\n') + '\n');
    const err = await run({ batch: `${kind}-bonus-again`, csvPath: copy }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RefusedError);
    expect((err as RefusedError).exitCode).toBe(3);
    expect((err as Error).message).toMatch(new RegExp(`already run as batch "${kind}-bonus".*--allow-duplicate-file`));
    expect(sb.ledger()).toHaveLength(20);
    expect(await db.knex('batches').where({ name: `${kind}-bonus-again` }).first()).toBeUndefined();
    // A dry run says the same.
    await expect(run({ batch: `${kind}-bonus-again`, csvPath: copy, dryRun: true })).rejects.toBeInstanceOf(RefusedError);
  });

  it('a different file paying some of the same people the same amounts lists them before sending, and --allow-duplicate-file is explicit', async () => {
    const file = path.join(dir, `${kind}-mixed.csv`);
    // Four of last batch's payments again, plus two new people: a partial overlap, listed (most of a file
    // repeating one batch is a near-copy, refused: test/payee-cases.test.ts).
    writeFileSync(
      file,
      [HEADER, ...ROWS.slice(0, 4), 'New P,n@example.com,9876543210,A,IMPS,55999991,B,SBIN0000691,42', 'New Q,q@example.com,9876543210,A,IMPS,55999992,B,SBIN0000691,43'].join('\n') + '\n',
    );
    let shown: number[] = [];
    const res = await run({
      batch: `${kind}-mixed`,
      csvPath: file,
      yes: false,
      // What the person at the prompt is shown before saying yes or no.
      confirm: async (_pf, _b, ingest) => {
        shown = (ingest?.repeats ?? []).map((r) => r.row);
        return false;
      },
    });
    expect(res.exitCode).toBe(3);
    expect(shown).toEqual([2, 3, 4, 5]);
    // The look-back is configurable (--repeat-window): 0 days looks at nothing.
    const off = await run({ batch: `${kind}-mixed`, csvPath: file, yes: false, repeatWindowDays: 0, confirm: async () => false });
    expect(off.ingest).toBeDefined();
    expect(off.ingest!.repeats).toEqual([]);
    const week = await run({ batch: `${kind}-mixed`, csvPath: file, yes: false, repeatWindowDays: 7, confirm: async () => false });
    expect(week.ingest!.repeats.map((r) => r.row)).toEqual([2, 3, 4, 5]);
    expect(res.ingest!.repeats.every((r) => r.other_batch === `${kind}-bonus` && r.other_state === 'approved')).toBe(true);
    // The exact same file as the first batch, explicitly allowed: paid again, as asked.
    const again = path.join(dir, `${kind}-bonus-third.csv`);
    writeFileSync(again, [HEADER, ...ROWS].join('\n') + '\n');
    const before = sb.ledger().length;
    const allowed = await run({ batch: `${kind}-bonus-third`, csvPath: again, allowDuplicateFile: true });
    expect(allowed.exitCode).toBe(0);
    expect(allowed.ingest!.repeats.length).toBeGreaterThan(0);
    expect(sb.ledger().length - before).toBe(20);
  });

  it('the same payroll re-saved by a spreadsheet (BOM, CRLF, amounts reformatted, leading zeros dropped, rows re-sorted) is refused; a dry run says so too', async () => {
    const rows = ['Anil,a@example.com,9876543210,A,IMPS,0012345678,B,SBIN0000691,1000', 'Bina,b@example.com,9876543211,A,IMPS,223456789,B,HDFC0000001,2500.5'];
    const file = path.join(dir, `${kind}-dec.csv`);
    writeFileSync(file, [HEADER, ...rows].join('\n') + '\n');
    expect((await run({ batch: `${kind}-dec`, csvPath: file })).exitCode).toBe(0);
    const paid = sb.ledger().length;
    // Excel's "Save as CSV UTF-8": a BOM and CRLF; the byte-for-byte sha256 differs.
    const excel = path.join(dir, `${kind}-dec-excel.csv`);
    writeFileSync(excel, '\uFEFF' + [HEADER, ...rows].join('\r\n') + '\r\n');
    // The same payments, written differently: rows swapped, "2,500.50", the account's leading zeros gone, IFSC lower case.
    const resorted = path.join(dir, `${kind}-dec-resorted.csv`);
    writeFileSync(
      resorted,
      [HEADER, 'Bina K,b@example.com,9876543211,A,IMPS,223456789,B,hdfc0000001,"2,500.50"', 'Anil,a@example.com,9876543210,A,IMPS,12345678,B,SBIN0000691,1000.00'].join('\n') + '\n',
    );
    for (const [name, csv] of [
      [`${kind}-dec-excel`, excel],
      [`${kind}-dec-resorted`, resorted],
    ] as const) {
      const err = await run({ batch: name, csvPath: csv }).catch((e: unknown) => e);
      expect(err, name).toBeInstanceOf(RefusedError);
      expect((err as Error).message).toMatch(
        new RegExp(`pays the same 2 payments .* as ${kind}-dec\\.csv, read less than 5 days ago as batch "${kind}-dec" on \\d{4}-\\d\\d-\\d\\d: running it as "${name}" would pay everyone in it again.*--allow-duplicate-file`),
      );
      await expect(run({ batch: name, csvPath: csv, dryRun: true }), name).rejects.toBeInstanceOf(RefusedError);
      expect(await db.knex('batches').where({ name }).first(), name).toBeUndefined();
    }
    expect(sb.ledger()).toHaveLength(paid);
    // One payment different (a raise): a different payroll, run (its repeat is listed before sending).
    const raise = path.join(dir, `${kind}-jan.csv`);
    writeFileSync(raise, [HEADER, rows[0]!.replace(/,1000$/, ',1100'), rows[1]!].join('\n') + '\n');
    const jan = await run({ batch: `${kind}-jan`, csvPath: raise });
    expect(jan.exitCode).toBe(0);
    expect(jan.ingest!.repeats.map((r) => r.row)).toEqual([3]);
    expect(sb.ledger()).toHaveLength(paid + 2);
    // A month later the same payments are next month's fixed salaries, not an upload by mistake: paid, and
    // listed as repeats (the byte-identical file stays refused at any distance).
    await db.knex('batch_files').whereIn('batch', [`${kind}-dec`, `${kind}-jan`]).update({ read_at: db.knex.raw(`now() - interval '31 days'`) });
    const feb = await run({ batch: `${kind}-dec-resorted`, csvPath: resorted });
    expect(feb.exitCode).toBe(0);
    expect(feb.ingest!.repeatCount).toBe(2);
    expect(sb.ledger()).toHaveLength(paid + 4);
    await expect(run({ batch: `${kind}-dec-again`, csvPath: file })).rejects.toBeInstanceOf(RefusedError);
  });

  it("a corrected batch's original file (or any earlier revision) run under another name is refused", async () => {
    const rows = ['Anil,a@example.com,9876543210,A,IMPS,77712345678,B,SBIN0000691,700', 'Chetan,c@example.com,9876543212,A,IMPS,77798765432,B,SBIN016745,900'];
    const original = path.join(dir, `${kind}-sep.csv`);
    writeFileSync(original, [HEADER, ...rows].join('\n') + '\n');
    const first = await run({ batch: `${kind}-sep`, csvPath: original });
    expect(first.exitCode).toBe(1); // Chetan's IFSC is one digit short
    const fixed = path.join(dir, `${kind}-sep-fixed.csv`);
    writeFileSync(fixed, [HEADER, rows[0]!, rows[1]!.replace('SBIN016745', 'SBIN0016745')].join('\n') + '\n');
    const revised = await run({ batch: `${kind}-sep`, csvPath: fixed, revise: true });
    expect(revised.exitCode).toBe(0);
    const paid = sb.ledger().length;
    for (const csv of [original, fixed]) {
      const err = await run({ batch: `${kind}-sep-again`, csvPath: csv }).catch((e: unknown) => e);
      expect(err, csv).toBeInstanceOf(RefusedError);
      expect((err as Error).message, csv).toMatch(new RegExp(`already run as batch "${kind}-sep"`));
    }
    // A corrected copy of another batch is refused too: merging it would pay that batch's people here.
    const other = path.join(dir, `${kind}-oct.csv`);
    writeFileSync(other, [HEADER, 'Dev,d@example.com,9876543213,A,IMPS,77711112222,B,SBIN0000691,300'].join('\n') + '\n');
    expect((await run({ batch: `${kind}-oct`, csvPath: other })).exitCode).toBe(0);
    const merged = await run({ batch: `${kind}-oct`, csvPath: original, revise: true }).catch((e: unknown) => e);
    expect(merged).toBeInstanceOf(RefusedError);
    expect((merged as Error).message).toMatch(new RegExp(`already run as batch "${kind}-sep"`));
    expect(sb.ledger()).toHaveLength(paid + 1);
  });

  it('two batches read from the same payroll at the same moment: one is stored, the other refused (the check is serialised)', async () => {
    const rows = Array.from({ length: 3000 }, (_, i) => `Q ${i},q${i}@example.com,9876543210,A,IMPS,${7700000 + i}1,B,SBIN0000691,${300 + i}`);
    const a = path.join(dir, `${kind}-race-a.csv`);
    const b = path.join(dir, `${kind}-race-b.csv`);
    writeFileSync(a, [HEADER, ...rows].join('\n') + '\n');
    // The same payments, written differently (CRLF): only the payments fingerprint can tell.
    writeFileSync(b, [HEADER, ...rows].join('\r\n') + '\r\n');
    const before = sb.ledger().length;
    // Read only (a dry run does the whole read and check, then rolls back): two real reads at once.
    const results = await Promise.allSettled([run({ batch: `${kind}-race-a`, csvPath: a, yes: false }), run({ batch: `${kind}-race-b`, csvPath: b, yes: false })]);
    // Without a terminal or --yes nothing is sent (exit 3), but both files are read and stored: one of them
    // must be refused as the other's duplicate.
    const read = results.filter((r) => r.status === 'fulfilled' && r.value.exitCode === 3);
    const refused = results.filter((r) => r.status === 'rejected' && r.reason instanceof RefusedError && /would pay everyone in it again/.test(r.reason.message));
    expect(read).toHaveLength(1);
    expect(refused).toHaveLength(1);
    expect(sb.ledger().length - before).toBe(0);
  });

  it('the refusal says what to do by what became of the earlier batch (cancelled: only --allow-duplicate-file pays it)', async () => {
    const file = path.join(dir, `${kind}-cancelled.csv`);
    writeFileSync(file, [HEADER, 'Zed,z@example.com,9876543210,A,IMPS,66600000001,B,SBIN0000691,120'].join('\n') + '\n');
    expect((await run({ batch: `${kind}-cancelled`, csvPath: file, yes: false })).exitCode).toBe(3);
    const client = clientFor(sb);
    await cancelBatch({ ...FAST, reportDir: path.join(dir, 'r'), batch: `${kind}-cancelled` }, { db: db.knex, client, logger: quietLogger }).finally(() => client.close());
    const err = await run({ batch: `${kind}-cancelled-again`, csvPath: file }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RefusedError);
    expect((err as Error).message).toMatch(/That batch was cancelled: if this payroll is to be paid now under ".*-cancelled-again", pass --allow-duplicate-file/);
    expect((err as Error).message).not.toMatch(/payouts resume/);
  });
});
