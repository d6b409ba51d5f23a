import type { Knex } from 'knex';
import { matchPayees, type Difference, type PayeeRecord } from '../batch/payeeIdentity.js';
import { getBatch } from '../db/batches.js';
import { fileRowTotals, planRowsOf, previousBatchFor, type PayoutRow } from '../db/rows.js';
import { maskAccount } from '../log.js';

/**
 * The change plan: what a batch changes against the previous batch that paid the same payees (matched by
 * the payee identity, src/batch/payeeIdentity.ts) — what a checker approves instead of 3,000 rows. Above all
 * a known payee whose account, IFSC or name changed (the commonest payroll fraud: a known employee's bank
 * account quietly changed in the sheet), flagged first; then amounts changed by more than a threshold, new
 * payees, and payees gone. Account numbers are masked to their last 4 digits.
 */

export interface PlanPayee {
  row: number;
  name: string | null;
  account: string;
  ifsc: string | null;
  amountPaise: bigint | null;
  reference: string | null;
}

export interface PlanChange {
  /** This batch's row, and the previous batch's. */
  now: PlanPayee;
  before: PlanPayee;
  /** Which of account, IFSC, name changed (the bank-detail changes), old and new values masked. */
  changes: { field: 'account' | 'ifsc' | 'name' | 'reference'; old: string | null; new: string | null }[];
  /** What linked them (reference, email, mobile…): why this is taken to be the same payee. */
  linkedBy: string[];
}

export interface ChangePlan {
  batch: string;
  /** The batch compared with; null when no earlier batch paid any of these payees (everyone is new). */
  previous: { batch: string; createdAt: Date } | null;
  /** Known payees whose account, IFSC or name changed: check each before approving. */
  bankDetailsChanged: PlanChange[];
  /** Known payees paid an amount differing by more than `thresholdPct` %. */
  amountChanged: { now: PlanPayee; before: PlanPayee; deltaPct: number }[];
  newPayees: PlanPayee[];
  /** Paid by the previous batch, not in this one. */
  gone: PlanPayee[];
  /** Payees paid as before (same bank details, amount within the threshold). */
  unchanged: number;
  thresholdPct: number;
  /** Set when the batches were too large to compare here. */
  skipped?: string;
}

/** Rows compared at most per side: larger batches get no plan (said so) rather than minutes of work. */
export const PLAN_MAX_ROWS = 50_000;

function payee(r: PayoutRow): PlanPayee {
  return {
    row: r.row_no,
    name: r.name,
    account: maskAccount(r.account_no ?? ''),
    ifsc: r.ifsc,
    amountPaise: r.amount_paise === null ? null : BigInt(r.amount_paise),
    reference: r.reference,
  };
}

function record(r: PayoutRow): PayeeRecord & { src: PayoutRow } {
  return {
    rowNo: r.row_no,
    reference: r.reference,
    account: r.account_no,
    ifsc: r.ifsc,
    email: r.email,
    mobile: r.mobile,
    name: r.name,
    amountPaise: r.amount_paise === null ? null : BigInt(r.amount_paise),
    src: r,
  };
}

const BANK_FIELDS = ['account', 'ifsc', 'name', 'reference'] as const;

function masked(d: Difference): PlanChange['changes'][number] {
  const f = d.field as PlanChange['changes'][number]['field'];
  return f === 'account' ? { field: f, old: maskAccount(d.old ?? ''), new: maskAccount(d.new ?? '') } : { field: f, old: d.old, new: d.new };
}

export async function changePlan(db: Knex, batch: string, o: { thresholdPct?: number } = {}): Promise<ChangePlan> {
  const thresholdPct = o.thresholdPct ?? 10;
  const empty: ChangePlan = { batch, previous: null, bankDetailsChanged: [], amountChanged: [], newPayees: [], gone: [], unchanged: 0, thresholdPct };
  const b = await getBatch(db, batch);
  if (!b) return empty;
  if ((await fileRowTotals(db, batch)).rows > PLAN_MAX_ROWS) return { ...empty, skipped: `more than ${PLAN_MAX_ROWS.toLocaleString('en-IN')} rows: compare the reports instead` };
  const prev = await previousBatchFor(db, batch);
  const nowRows = await planRowsOf(db, batch, false, PLAN_MAX_ROWS + 1);
  if (!prev) return { ...empty, newPayees: nowRows.slice(0, PLAN_MAX_ROWS).map(payee) };
  const pb = (await getBatch(db, prev.batch))!;
  const beforeRows = await planRowsOf(db, prev.batch, true, PLAN_MAX_ROWS + 1);
  const previous = { batch: prev.batch, createdAt: pb.created_at };
  if (nowRows.length > PLAN_MAX_ROWS || beforeRows.length > PLAN_MAX_ROWS) {
    return { ...empty, previous, skipped: `more than ${PLAN_MAX_ROWS.toLocaleString('en-IN')} rows: compare the reports instead` };
  }
  const m = matchPayees(beforeRows.map(record), nowRows.map(record), { references: b.reference_column !== null && pb.reference_column !== null });
  const plan: ChangePlan = { ...empty, previous, newPayees: m.unmatchedNew.map((n) => payee(n.src)), gone: m.unmatchedOld.map((x) => payee(x.src)) };
  for (const p of m.pairs) {
    const bank = p.differences.filter((d) => (BANK_FIELDS as readonly string[]).includes(d.field));
    if (bank.length > 0) {
      plan.bankDetailsChanged.push({ now: payee(p.line.src), before: payee(p.old.src), changes: bank.map(masked), linkedBy: p.linkedBy });
      continue;
    }
    const a = p.old.amountPaise ?? 0n;
    const n = p.line.amountPaise ?? 0n;
    const deltaPct = a === 0n ? 100 : Number(((n - a) * 10000n) / a) / 100;
    if (Math.abs(deltaPct) > thresholdPct) plan.amountChanged.push({ now: payee(p.line.src), before: payee(p.old.src), deltaPct });
    else plan.unchanged++;
  }
  return plan;
}
