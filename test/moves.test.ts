/**
 * Issue 18: one machine for every move of a row. The table of moves (src/engine/machine.ts MOVES) driven
 * against every row state and send history on a real database, through the only executor (src/db/moves.ts);
 * the three money-path bugs a review found where hand-written moves disagreed; and "a row ever claimed is
 * never deleted by a revision", each as a test that fails on the code before.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, freshDb, type TestDb } from './helpers/db.js';
import { clientFor, quietLogger, sandbox, tmpDir } from './helpers/env.js';
import { ALL_ROW_STATES, type RowState } from '../src/states.js';
import { MOVES, allows, maySent, everClaimed, recoveryBoundary, trust404, type MoveName, type MoveSpec } from '../src/engine/machine.js';
import { applyMove, deleteByMove } from '../src/db/moves.js';
import { insertBatch } from '../src/db/batches.js';
import { claimReady } from '../src/db/claims.js';
import { rowsOfBatch } from '../src/db/rows.js';
import { Runner } from '../src/engine/context.js';
import { processRow } from '../src/engine/submit.js';
import { ingestFile } from '../src/engine/ingest.js';
import { runBatch, type RunOptions } from '../src/engine/run.js';
import { cancelBatch } from '../src/engine/decisions.js';
import { sleep } from '../src/alliance/retry.js';
import type { Sandbox } from '../src/sandbox/server.js';

const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount';
const FAST: Partial<RunOptions> = {
  yes: true,
  rate: 500,
  concurrency: 2,
  pollIntervalMs: 20,
  pollMaxIntervalMs: 50,
  pollTimeoutMs: 5000,
  requestTimeoutMs: 1000,
  leaseMs: 5000,
  ambiguousGraceMs: 100,
  retry: { retries: 1, baseMs: 5, maxMs: 20 },
};

/** The moves src/db/moves.ts executes (the claim and its end are fenced statements of db/claims.ts, tested in db.test.ts). */
const BULK: MoveName[] = (Object.keys(MOVES) as MoveName[]).filter((m) => !['claim', 'take_over', 'commit', 'leave'].includes(m));

/** Every history a row in a state can have: never claimed, claimed but never possibly sent, possibly sent. */
const HISTORIES = [
  { name: 'never claimed', first_claimed_at: null, send_deadline: null },
  { name: 'claimed, never sent', first_claimed_at: new Date('2026-11-01T00:00:00Z'), send_deadline: null },
  { name: 'may have been sent', first_claimed_at: new Date('2026-11-01T00:00:00Z'), send_deadline: new Date('2026-11-01T00:05:00Z') },
] as const;

/** Rows the CHECK constraints allow: a state the API may hold needs a first claim. */
const possible = (state: RowState, h: (typeof HISTORIES)[number]) => !(['submitting', 'pending', 'approved', 'rejected'].includes(state) && h.first_claimed_at === null);

describe('the facts decided once', () => {
  it('may have been sent is the send deadline, ever claimed the first claim, never the state', () => {
    expect(maySent({ send_deadline: null })).toBe(false);
    expect(maySent({ send_deadline: new Date() })).toBe(true);
    expect(everClaimed({ first_claimed_at: null })).toBe(false);
    expect(everClaimed({ first_claimed_at: new Date() })).toBe(true);
  });
  it('the recovery boundary is the earlier claim\'s deadline on the local clock, or now for a dead owner on this host', () => {
    const dbNow = new Date(10_000);
    // The database's clock is 2 s behind ours: its deadline at 12 s is 14 s here.
    expect(recoveryBoundary(new Date(12_000), dbNow, 12_000, false)).toBe(14_000);
    expect(recoveryBoundary(new Date(12_000), dbNow, 12_000, true)).toBe(12_000);
    expect(recoveryBoundary(null, dbNow, 12_000, false)).toBe(12_000);
  });
  it('a 404 is trusted only when asked a grace period after the boundary', () => {
    expect(trust404(1_000 + 59_999, 1_000, 60_000)).toBe(false);
    expect(trust404(1_000 + 60_000, 1_000, 60_000)).toBe(true);
  });
});

describe.each(BACKENDS)('every move of a row on %s', (kind) => {
  let db: TestDb;
  let dir: string;
  let seq = 0;
  beforeAll(async () => {
    db = await freshDb(kind);
    dir = tmpDir('payouts-moves-');
  });
  afterAll(async () => db?.close());

  /** One row in every state with every history it can have, in a batch of its own. */
  async function everyRow(): Promise<{ batch: string; rows: { id: string; state: RowState; history: (typeof HISTORIES)[number] }[] }> {
    const batch = `moves-${kind}-${++seq}`;
    await insertBatch(db.knex, { name: batch, sourceFile: 'x.csv', sha256: `m${seq}`, defaultUserId: null });
    const rows: { id: string; state: RowState; history: (typeof HISTORIES)[number] }[] = [];
    let n = 0;
    for (const state of ALL_ROW_STATES) {
      for (const h of HISTORIES) {
        if (!possible(state, h)) continue;
        n++;
        const [r] = (await db
          .knex('payout_rows')
          .insert({
            batch, revision: 1, row_no: n, order_id: `${batch}-${n}`, order_id_source: 'derived', state, name: 'A', email: 'a@b.in', mobile: '9876543210',
            address: 'X', method: 'IMPS', account_no: '12345678', bank_name: 'SBI', ifsc: 'SBIN0000001', amount_paise: '100', user_id: 'u', errors: '[]', warnings: '[]',
            first_claimed_at: h.first_claimed_at, send_deadline: h.send_deadline,
          })
          .returning('id')) as { id: string }[];
        rows.push({ id: String(r!.id), state, history: h });
      }
    }
    return { batch, rows };
  }

  it.each(BULK)('%s: moves exactly the rows its states and guard allow, to the states it names', async (name) => {
    const move: MoveSpec = MOVES[name];
    const { batch, rows } = await everyRow();
    const before = new Map((await rowsOfBatch(db.knex, batch)).map((r) => [String(r.id), r]));
    const n = move.to.length === 0 ? await deleteByMove(db.knex, move, { batch }) : await applyMove(db.knex, move, { batch }, { state: move.to[0]! });
    const after = new Map((await rowsOfBatch(db.knex, batch)).map((r) => [String(r.id), r]));
    let expected = 0;
    for (const r of rows) {
      const want = allows(move, { state: r.state, send_deadline: r.history.send_deadline, first_claimed_at: r.history.first_claimed_at });
      // The SQL guard and the TypeScript one agree on this row.
      expect(allows(move, before.get(r.id)!), `${name} ${r.state} ${r.history.name}`).toBe(want);
      const now = after.get(r.id);
      if (want) expected++;
      if (move.to.length === 0) expect(now === undefined, `${name} deletes ${r.state} ${r.history.name}?`).toBe(want);
      else expect(now!.state, `${name} on ${r.state} ${r.history.name}`).toBe(want ? move.to[0] : r.state);
    }
    expect(n).toBe(expected);
  });

  it('no move deletes a row that was ever claimed, and none reaches a state it does not name', async () => {
    for (const name of BULK) {
      const m = MOVES[name];
      if (m.to.length === 0) expect(m.guard).toBe('never_claimed');
      // No move makes a row invalid: asking for it is refused before any SQL runs.
      await expect(applyMove(db.knex, m, { batch: 'x' }, { state: 'invalid' })).rejects.toThrow(/not one of|deletes rows/);
    }
    const { batch, rows } = await everyRow();
    const claimed = rows.filter((r) => r.history.first_claimed_at !== null).map((r) => r.id);
    expect(await deleteByMove(db.knex, MOVES.drop, { ids: claimed })).toBe(0);
    expect((await rowsOfBatch(db.knex, batch)).length).toBe(rows.length);
  });

  describe('the three bugs', () => {
    let sb: Sandbox;
    afterAll(async () => sb?.close());

    function file(name: string, n: number, from: number): string {
      const f = path.join(dir, `${kind}-${name}.csv`);
      const lines = [HEADER];
      for (let i = from; i < from + n; i++) lines.push(`M ${i},m${i}@example.com,98765${String(10000 + i).slice(-5)},A,IMPS,${5300000 + i}1,B,SBIN0000691,${200 + i}`);
      writeFileSync(f, lines.join('\n') + '\n');
      return f;
    }

    it('1: a request never leaves after its recorded send_deadline, however long it waited for its rate slot', async () => {
      sb = await sandbox({ settleMs: 20 });
      const batch = `${kind}-deadline`;
      await ingestFile(db.knex, { batch, csvPath: file('deadline', 1, 0), defaultUserId: 'M1' });
      const client = clientFor(sb);
      try {
        const runner = new Runner({ db: db.knex, client, logger: quietLogger }, { ...FAST, leaseMs: 1000, leaseMarginMs: 100, requestTimeoutMs: 300 });
        // The slot comes 1,500 ms after the claim (a shared budget halved after 429s, say).
        const take = runner.gate.take.bind(runner.gate);
        (runner.gate as { take: typeof take }).take = async (signal) => {
          await sleep(1500);
          return take(signal);
        };
        const claimedAt = Date.now();
        const [row] = await claimReady(db.knex, batch, runner.owner, 1000, 1);
        await processRow(runner, row!, claimedAt);
        const initiates = sb.arrivals().slice(-2);
        const sentAt = Math.max(...initiates);
        const stored = (await rowsOfBatch(db.knex, batch))[0]!;
        expect(sentAt - claimedAt).toBeGreaterThanOrEqual(1500);
        // The database's clock is this machine's: the deadline it holds covers the moment the request arrived.
        expect(new Date(stored.send_deadline!).getTime()).toBeGreaterThanOrEqual(sentAt);
      } finally {
        await client.close();
        await sb.close();
      }
    });

    it('2: a claim that ends unresolved keeps its send count (an ambiguous initiate, then no status)', async () => {
      // Every request executes, then answers 500: the initiate is ambiguous and status cannot be asked.
      sb = await sandbox({ settleMs: 20, faults: { error5xxAfterRate: 1 } });
      const batch = `${kind}-sends`;
      await ingestFile(db.knex, { batch, csvPath: file('sends', 1, 10), defaultUserId: 'M1' });
      const client = clientFor(sb);
      try {
        const runner = new Runner({ db: db.knex, client, logger: quietLogger }, FAST);
        const [row] = await claimReady(db.knex, batch, runner.owner, FAST.leaseMs!, 1);
        const end = await processRow(runner, row!);
        expect(end).toMatchObject({ kind: 'leave', sends: 1 });
        const stored = (await rowsOfBatch(db.knex, batch))[0]!;
        expect(stored.state).toBe('submitting');
        expect(stored.send_count).toBe(1);
        expect(sb.executions(row!.order_id!)).toBe(1);
      } finally {
        await client.close();
        await sb.close();
      }
    });

    it('3: a short balance never strands a row that may have been sent; cancel then asks about it and finishes', async () => {
      sb = await sandbox({ settleMs: 60_000 });
      const batch = `${kind}-strand`;
      const csv = file('strand', 2, 20);
      const client = clientFor(sb);
      const run = (o: Partial<RunOptions>) => runBatch({ reportDir: path.join(dir, 'r'), defaultUserId: 'M1', ...FAST, batch, ...o }, { db: db.knex, client, logger: quietLogger });
      try {
        // Both rows reach the API and are pending with the bank; an operator then puts them back ("checked them").
        expect((await run({ csvPath: csv, pollTimeoutMs: 50 })).exitCode).toBe(4);
        await db.knex('payout_rows').where({ batch }).update({ state: 'needs_review' });
        // The wallet is now short: the refusal must not turn rows that may exist at the API into "skipped".
        const short = await run({ retryReview: true, feePerPayoutPaise: 10_000_000_000_00n });
        expect(short.exitCode).toBe(3);
        const rows = await rowsOfBatch(db.knex, batch);
        expect(rows.map((r) => r.state)).toEqual(['ready', 'ready']);
        // Cancel: nothing new is sent; both are asked about, found, and followed to their end.
        sb.settleAll();
        const cancelled = await cancelBatch({ batch, reportDir: path.join(dir, 'r'), ...FAST }, { db: db.knex, client, logger: quietLogger });
        expect(cancelled.exitCode).toBe(0);
        expect((await rowsOfBatch(db.knex, batch)).map((r) => r.state)).toEqual(['approved', 'approved']);
        expect(sb.ledger()).toHaveLength(2);
      } finally {
        await client.close();
        await sb.close();
      }
    });

    it('3 (data left by the old code): a cancelled batch\'s skipped row that may have been sent is asked about, never stranded', async () => {
      sb = await sandbox({ settleMs: 20 });
      const batch = `${kind}-stranded-before`;
      const client = clientFor(sb);
      const run = (o: Partial<RunOptions>) => runBatch({ reportDir: path.join(dir, 'r'), defaultUserId: 'M1', ...FAST, batch, ...o }, { db: db.knex, client, logger: quietLogger });
      try {
        expect((await run({ csvPath: file('stranded', 1, 30) })).exitCode).toBe(0);
        // As the old short-balance refusal left it: skipped, although its payout exists.
        await db.knex('payout_rows').where({ batch }).update({ state: 'skipped', transaction_id: null });
        const res = await cancelBatch({ batch, reportDir: path.join(dir, 'r'), ...FAST }, { db: db.knex, client, logger: quietLogger });
        expect(res.exitCode).toBe(0);
        expect((await rowsOfBatch(db.knex, batch))[0]!.state).toBe('approved');
        expect(sb.ledger()).toHaveLength(1);
      } finally {
        await client.close();
        await sb.close();
      }
    });
  });

  it('a row ever claimed is never deleted by a revision: claimed, refused (429), then corrected', async () => {
    const sb = await sandbox({ settleMs: 20, faults: { burst429Rate: 1, onlyPaths: ['api/v1/payout/initiate'] } });
    const batch = `${kind}-claimed-kept`;
    const client = clientFor(sb);
    const run = (o: Partial<RunOptions>) => runBatch({ reportDir: path.join(dir, 'r'), defaultUserId: 'M1', ...FAST, batch, ...o }, { db: db.knex, client, logger: quietLogger });
    try {
      const v1 = path.join(dir, `${kind}-kept-v1.csv`);
      writeFileSync(v1, [HEADER, 'K One,k1@example.com,9876500001,A,IMPS,53999991,B,SBIN0000691,100', 'K Two,k2@example.com,9876500002,A,IMPS,53999992,B,SBIN0000691,200'].join('\n') + '\n');
      // Every initiate refused with 429: claimed, nothing executed, back to ready.
      const first = await run({ csvPath: v1 });
      expect(first.exitCode).not.toBe(0);
      const claimed = await rowsOfBatch(db.knex, batch);
      expect(claimed.every((r) => r.state === 'ready' && r.first_claimed_at !== null && r.send_deadline === null)).toBe(true);
      // A corrected copy changing K One's amount: a new line; the claimed row is kept (never deleted).
      const v2 = path.join(dir, `${kind}-kept-v2.csv`);
      writeFileSync(v2, [HEADER, 'K One,k1@example.com,9876500001,A,IMPS,53999991,B,SBIN0000691,150', 'K Two,k2@example.com,9876500002,A,IMPS,53999992,B,SBIN0000691,200'].join('\n') + '\n');
      sb.setFaults({});
      const res = await run({ csvPath: v2, revise: true });
      // Finished (the superseded row counts as cancelled), never refused or unfinished.
      expect(res.exitCode).toBeLessThanOrEqual(1);
      const rows = await rowsOfBatch(db.knex, batch);
      const old = rows.find((r) => String(r.id) === String(claimed[0]!.id));
      expect(old, 'the claimed row is still there').toBeDefined();
      expect(old).toMatchObject({ state: 'cancelled', in_file: false });
      expect(rows.filter((r) => r.in_file).map((r) => [r.row_no, r.state, String(r.amount_paise)]).sort()).toEqual([
        [2, 'approved', '15000'],
        [3, 'approved', '20000'],
      ]);
      expect(sb.ledger().map((e) => e.amountPaise).sort()).toEqual([15000n, 20000n]);
    } finally {
      await client.close();
      await sb.close();
    }
  });
});
