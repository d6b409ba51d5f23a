/**
 * Mutation tests (issues 8 and 17): bugs the project once had, put back one at a time, must be caught by the
 * same checks the suite relies on — the ledger oracle (safety and liveness) and reconcile's review rule.
 * Each scenario also runs unmutated and must come out clean, so a check that can never fail is caught too.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { freshDb, type TestDb } from './helpers/db.js';
import { clientFor, quietLogger, sandbox, tmpDir } from './helpers/env.js';
import { askedOf, checkInvariants, type OracleReport } from './helpers/oracle.js';
import { runBatch, type RunOptions } from '../src/engine/run.js';
import { reconcileBatch } from '../src/engine/reconcile.js';
import { rowsOfBatch } from '../src/db/rows.js';
import { deleteByMove } from '../src/db/moves.js';
import { MOVES } from '../src/engine/machine.js';
import { SENT_STATES } from '../src/states.js';
import type { Sandbox } from '../src/sandbox/server.js';

const mutate = vi.hoisted(() => ({ count429AsSend: false, inferSentFromState: false, ignoreReviewAge: false, idsFromBatchName: false, matchByAccountOnly: false, deleteUnguarded: false, claimedFromMaySent: false }));

vi.mock('../src/engine/machine.js', async (importOriginal) => {
  const orig = await importOriginal<typeof import('../src/engine/machine.js')>();
  return {
    ...orig,
    // Mutant 1: a refused attempt (429, connection refused) counted as a send that may have executed.
    next: ((phase, event, mem, row, now) =>
      orig.next(phase, mutate.count429AsSend && event.kind === 'unavailable' ? { kind: 'ambiguous', message: event.message } : event, mem, row, now)) as typeof orig.next,
  };
});
vi.mock('../src/engine/revise.js', async (importOriginal) => {
  const orig = await importOriginal<typeof import('../src/engine/revise.js')>();
  return {
    ...orig,
    planRevision: ((old, lines, opts) => {
      // Mutant 2: "never sent" inferred from the current state, so a claimed row put back to ready looks unsent.
      if (mutate.inferSentFromState) old = old.map((o) => ({ ...o, claimed: SENT_STATES.includes(o.state), maySent: SENT_STATES.includes(o.state) }));
      // Mutant 7 (issue 18): "ever claimed" taken from "may have been sent" (o.maySent for o.claimed).
      if (mutate.claimedFromMaySent) old = old.map((o) => ({ ...o, claimed: o.maySent }));
      return orig.planRevision(old, lines, opts);
    }) as typeof orig.planRevision,
  };
});
vi.mock('../src/db/moves.js', async (importOriginal) => {
  const orig = await importOriginal<typeof import('../src/db/moves.js')>();
  return {
    ...orig,
    // Mutant 6 (issue 18): the drop move's guard left out of its statement (a claimed row can be deleted).
    deleteByMove: (async (db, move, scope) => {
      if (!mutate.inferSentFromState && !mutate.deleteUnguarded) return orig.deleteByMove(db, move, scope);
      return orig.deleteByMove(db, { ...move, guard: 'none', from: ['invalid', 'ready', 'skipped', 'failed', 'cancelled', 'needs_review', 'submitting', 'pending', 'approved', 'rejected'] }, scope);
    }) as typeof orig.deleteByMove,
  };
});
vi.mock('../src/engine/review.js', async (importOriginal) => {
  const orig = await importOriginal<typeof import('../src/engine/review.js')>();
  // Mutant 3: reconcile ignores the review age (a payout stuck Pending is never handed to a person).
  return { ...orig, pastReviewAge: ((row, after, now) => (mutate.ignoreReviewAge ? false : orig.pastReviewAge(row, after, now))) as typeof orig.pastReviewAge };
});

vi.mock('../src/engine/identity.js', async (importOriginal) => {
  const orig = await importOriginal<typeof import('../src/engine/identity.js')>();
  // Mutant 4 (issue 17): order_ids derived from the batch (its name) instead of the payment.
  return {
    ...orig,
    derivesByPayment: ((b) => (mutate.idsFromBatchName ? false : orig.derivesByPayment(b))) as typeof orig.derivesByPayment,
    batchKey: ((b, rev) => (mutate.idsFromBatchName ? `${b.name}:${rev}` : orig.batchKey(b, rev))) as typeof orig.batchKey,
  };
});
vi.mock('../src/batch/payeeIdentity.js', async (importOriginal) => {
  const orig = await importOriginal<typeof import('../src/batch/payeeIdentity.js')>();
  // Mutant 5 (issue 17): a payee matched by account and IFSC only (contact details and name ignored).
  const blind = <T extends { email: string | null; mobile: string | null; name: string | null }>(r: T): T => ({ ...r, email: null, mobile: null, name: null });
  return {
    ...orig,
    matchPayees: ((old, lines, opts) => {
      if (!mutate.matchByAccountOnly) return orig.matchPayees(old, lines, opts);
      const o2 = old.map(blind);
      const n2 = lines.map(blind);
      const m = orig.matchPayees(o2, n2, opts);
      // Hand back the caller's own records.
      const back = <T,>(from: T[], to: T[]) => (x: T) => to[from.indexOf(x)]!;
      const bo = back(o2, [...old]);
      const bn = back(n2, [...lines]);
      return { pairs: m.pairs.map((p) => ({ ...p, old: bo(p.old), line: bn(p.line) })), unmatchedOld: m.unmatchedOld.map(bo), unmatchedNew: m.unmatchedNew.map(bn) };
    }) as typeof orig.matchPayees,
  };
});

const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount';
const FAST: Partial<RunOptions> = {
  // Several batches here read the same file on purpose; duplicate uploads have tests of their own (test/duplicates.test.ts).
  allowDuplicateFile: true,
  yes: true,
  rate: 500,
  concurrency: 2,
  pollIntervalMs: 20,
  pollMaxIntervalMs: 50,
  pollTimeoutMs: 5000,
  requestTimeoutMs: 2000,
  leaseMs: 5000,
  ambiguousGraceMs: 100,
  maxSendsPerRow: 3,
  retry: { retries: 2, baseMs: 5, maxMs: 20 },
};

const clean = (r: OracleReport) => r.doublePaid.length + r.lost.length + r.notFinal.length + r.disagreements.length === 0;

describe('mutants the suite must catch', () => {
  let db: TestDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDb('pglite');
    dir = tmpDir('payouts-mutants-');
  });
  afterAll(async () => db?.close());

  function csv(name: string, n: number, from: number): string {
    const f = path.join(dir, `${name}.csv`);
    const lines = [HEADER];
    for (let i = from; i < from + n; i++) lines.push(`P ${i},p${i}@example.com,9876543210,A,IMPS,${6000000 + i}1,B,SBIN0000691,${100 + i}`);
    writeFileSync(f, lines.join('\n') + '\n');
    return f;
  }

  async function run(sb: Sandbox, o: Partial<RunOptions> & { batch: string }) {
    const client = clientFor(sb);
    try {
      return await runBatch({ reportDir: path.join(dir, 'r'), defaultUserId: 'M1', ...FAST, ...o }, { db: db.knex, client, logger: quietLogger });
    } finally {
      await client.close();
    }
  }

  /** Three outage runs (every initiate answered 429), the API recovers, one more run: the oracle's verdict. */
  async function outage(name: string): Promise<OracleReport> {
    const sb = await sandbox({ seed: 41, settleMs: 10, faults: { burst429Rate: 1, onlyPaths: ['api/v1/payout/initiate'] } });
    try {
      const file = csv(name, 4, 0);
      for (let i = 0; i < 3; i++) await run(sb, { batch: name, ...(i === 0 ? { csvPath: file } : {}) });
      sb.setFaults({});
      await run(sb, { batch: name });
      return await checkInvariants(db.knex, sb, name, 4);
    } finally {
      await sb.close();
    }
  }

  it('counting a 429 as a send strands rows after an outage: the liveness oracle says so', { timeout: 240_000 }, async () => {
    expect(clean(await outage('outage-ok'))).toBe(true);
    mutate.count429AsSend = true;
    try {
      const r = await outage('outage-mutant');
      expect(r.notFinal.length).toBeGreaterThan(0);
      expect(r.notFinal.every((x) => x.state === 'needs_review')).toBe(true);
    } finally {
      mutate.count429AsSend = false;
    }
  });

  /** A row sent, put back to ready by an operator's retry while the API is down, then a corrected copy without it. */
  async function keptRow(name: string): Promise<OracleReport> {
    const sb = await sandbox({ seed: 42, settleMs: 60_000 });
    try {
      const v1 = csv(`${name}-v1`, 2, 10);
      await run(sb, { batch: name, csvPath: v1, pollTimeoutMs: 50 });
      const client = clientFor(sb);
      await reconcileBatch({ batch: name, reviewAfterMs: 0, ...FAST }, { db: db.knex, client, logger: quietLogger });
      await client.close();
      const down = clientFor({ url: 'http://127.0.0.1:9' });
      await runBatch({ batch: name, retryReview: true, reportDir: path.join(dir, 'r'), ...FAST }, { db: db.knex, client: down, logger: quietLogger });
      await down.close();
      const v2 = path.join(dir, `${name}-v2.csv`);
      writeFileSync(v2, [HEADER, readFileSync(v1, 'utf8').trim().split('\n')[2]!].join('\n') + '\n');
      await run(sb, { batch: name, csvPath: v2, revise: true, pollTimeoutMs: 50 });
      sb.settleAll();
      await run(sb, { batch: name });
      return await checkInvariants(db.knex, sb, name, 1, { rowNumbers: [2] });
    } finally {
      await sb.close();
    }
  }

  it('deleting a claimed row on revise loses a payout the API made: the oracle says so', { timeout: 240_000 }, async () => {
    expect(clean(await keptRow('kept-ok'))).toBe(true);
    mutate.inferSentFromState = true;
    try {
      const r = await keptRow('kept-mutant');
      expect(r.disagreements.some((d) => /belongs to no row/.test(d))).toBe(true);
    } finally {
      mutate.inferSentFromState = false;
    }
  });

  /** Payouts stuck Pending, reconciled past the review age: rows that nobody will look at. */
  async function stuck(name: string): Promise<number> {
    const sb = await sandbox({ seed: 43, settleMs: 600_000 });
    try {
      await run(sb, { batch: name, csvPath: csv(name, 3, 20), pollTimeoutMs: 50 });
      await new Promise((r) => setTimeout(r, 250));
      const client = clientFor(sb);
      await reconcileBatch({ batch: name, reviewAfterMs: 200, ...FAST }, { db: db.knex, client, logger: quietLogger });
      await client.close();
      return (await rowsOfBatch(db.knex, name, ['pending'])).length;
    } finally {
      await sb.close();
    }
  }

  it('reconcile ignoring the review age leaves payouts stuck Pending with nobody told: the reconcile check says so', { timeout: 240_000 }, async () => {
    expect(await stuck('stuck-ok')).toBe(0);
    mutate.ignoreReviewAge = true;
    try {
      expect(await stuck('stuck-mutant')).toBe(3);
    } finally {
      mutate.ignoreReviewAge = false;
    }
  });

  /** The same payroll paid from two databases under two names (dedup on, as the API does): the payee check. */
  async function twoDatabases(name: string): Promise<OracleReport> {
    const sb = await sandbox({ seed: 44, settleMs: 10 });
    const other = await freshDb('pglite');
    try {
      const file = csv(name, 6, 30 + (name.length % 7) * 10);
      const client = clientFor(sb);
      await runBatch({ reportDir: path.join(dir, 'r'), defaultUserId: 'M1', ...FAST, allowDuplicateFile: false, batch: `${name}-by-hand`, csvPath: file }, { db: other.knex, client, logger: quietLogger });
      await client.close();
      const foreign = new Set(sb.ledger().map((e) => e.orderId));
      await run(sb, { batch: `${name}-inbox`, csvPath: file, allowDuplicateFile: false });
      return await checkInvariants(db.knex, sb, `${name}-inbox`, 6, { foreign, reviewAllowed: (r) => /collided/.test(r.last_error ?? ''), asked: askedOf(readFileSync(file, 'utf8')) });
    } finally {
      await other.close();
      await sb.close();
    }
  }

  it('order_ids derived from the batch name pay a payroll twice from a second database: the payee check says so', { timeout: 240_000 }, async () => {
    const ok = await twoDatabases('twodb-ok');
    expect(ok.overpaid).toEqual([]);
    mutate.idsFromBatchName = true;
    try {
      expect((await twoDatabases('twodb-mutant')).overpaid.length).toBe(6);
    } finally {
      mutate.idsFromBatchName = false;
    }
  });

  /** A paid payee's account changed in a corrected copy without a reference column. */
  async function changedAccount(name: string): Promise<number> {
    const sb = await sandbox({ seed: 45, settleMs: 10 });
    try {
      const v1 = path.join(dir, `${name}-v1.csv`);
      const people = (acc3: string) =>
        [HEADER, ...[0, 1, 2].map((i) => `Q ${name} ${i},q${i}.${name}@example.com,98${String(76500000 + i * 11 + name.length)},A,IMPS,${i === 2 ? acc3 : `${7100000 + i}1`},B,SBIN0000691,${500 + i}`)].join('\n') + '\n';
      writeFileSync(v1, people(`${7100002}1`));
      await run(sb, { batch: name, csvPath: v1 });
      const v2 = path.join(dir, `${name}-v2.csv`);
      writeFileSync(v2, people('12345678'));
      await run(sb, { batch: name, csvPath: v2, revise: true }).catch(() => undefined);
      return sb.ledger().length;
    } finally {
      await sb.close();
    }
  }

  it('a payee matched by account alone is paid again when a corrected copy changes the account: the ledger says so', { timeout: 240_000 }, async () => {
    expect(await changedAccount('acct-ok')).toBe(3);
    mutate.matchByAccountOnly = true;
    try {
      expect(await changedAccount('acct-mutant')).toBe(4);
    } finally {
      mutate.matchByAccountOnly = false;
    }
  });

  /**
   * The story of test/moves.test.ts: rows claimed and refused (429, nothing executed), then a corrected copy
   * changing one of them. What the suite checks: the merge goes through, the claimed row is still there.
   */
  async function claimedKept(name: string): Promise<{ merged: boolean; claimedRowKept: boolean; dropOfClaimed: number }> {
    const sb = await sandbox({ seed: 46, settleMs: 10, faults: { burst429Rate: 1, onlyPaths: ['api/v1/payout/initiate'] } });
    try {
      const v1 = csv(`${name}-v1`, 2, 100 + name.length * 3);
      await run(sb, { batch: name, csvPath: v1, retry: { retries: 0, baseMs: 1, maxMs: 1 } });
      const claimed = (await rowsOfBatch(db.knex, name))[0]!;
      const lines = readFileSync(v1, 'utf8').trim().split('\n');
      const v2 = path.join(dir, `${name}-v2.csv`);
      writeFileSync(v2, [lines[0]!, lines[1]!.replace(/,(\d+)$/, (_m, a: string) => `,${Number(a) + 1}`), lines[2]!].join('\n') + '\n');
      sb.setFaults({});
      const merged = await run(sb, { batch: name, csvPath: v2, revise: true }).then(
        () => true,
        () => false,
      );
      const claimedRowKept = (await rowsOfBatch(db.knex, name)).some((r) => String(r.id) === String(claimed.id));
      // The move itself, asked to drop a claimed row (a plan that is wrong, a claim that slipped in).
      const other = (await rowsOfBatch(db.knex, name)).find((r) => r.first_claimed_at !== null && String(r.id) !== String(claimed.id));
      const dropOfClaimed = other ? await deleteByMove(db.knex, MOVES.drop, { ids: [String(other.id)] }) : -1;
      return { merged, claimedRowKept, dropOfClaimed };
    } finally {
      await sb.close();
    }
  }

  it('a claimed row deleted by a revision (no guard in the drop, "claimed" taken from "may have been sent", or both): caught', { timeout: 240_000 }, async () => {
    expect(await claimedKept('claimed-ok')).toEqual({ merged: true, claimedRowKept: true, dropOfClaimed: 0 });
    mutate.deleteUnguarded = true;
    try {
      expect((await claimedKept('claimed-unguarded')).dropOfClaimed).toBe(1);
    } finally {
      mutate.deleteUnguarded = false;
    }
    mutate.claimedFromMaySent = true;
    try {
      expect((await claimedKept('claimed-from-maysent')).merged).toBe(false);
      mutate.deleteUnguarded = true;
      expect((await claimedKept('claimed-both')).claimedRowKept).toBe(false);
    } finally {
      mutate.claimedFromMaySent = false;
      mutate.deleteUnguarded = false;
    }
  });
});
