/**
 * Issue 12: duplicate-upload protection. The same file content already run under another batch name is
 * refused (exit 3) unless --allow-duplicate-file; rows paying the same account the same amount in another
 * recent batch are listed before anything is sent.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, freshDb, type TestDb } from './helpers/db.js';
import { clientFor, quietLogger, sandbox, tmpDir } from './helpers/env.js';
import { runBatch, type RunOptions } from '../src/engine/run.js';
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
    // Five of last batch's payments again, plus one new person.
    writeFileSync(file, [HEADER, ...ROWS.slice(0, 5), 'New P,n@example.com,9876543210,A,IMPS,55999991,B,SBIN0000691,42'].join('\n') + '\n');
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
    expect(shown).toEqual([2, 3, 4, 5, 6]);
    // The look-back is configurable (--repeat-window): 0 days looks at nothing.
    const off = await run({ batch: `${kind}-mixed`, csvPath: file, yes: false, repeatWindowDays: 0, confirm: async () => false });
    expect(off.ingest).toBeDefined();
    expect(off.ingest!.repeats).toEqual([]);
    const week = await run({ batch: `${kind}-mixed`, csvPath: file, yes: false, repeatWindowDays: 7, confirm: async () => false });
    expect(week.ingest!.repeats.map((r) => r.row)).toEqual([2, 3, 4, 5, 6]);
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
});
