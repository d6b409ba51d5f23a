import type { Knex } from 'knex';
import { formatRupees, parseRupees } from '../money.js';
import { bankNameForCode } from '../batch/ifscData.js';
import { batchForReport, reportGroups, sendTimes, userIdsOf, type ReportGroup } from '../db/reports.js';
import { approvalsOf } from '../db/batches.js';
import { REPORT_STATUSES, reportStatus, type ReportStatus } from '../states.js';
import { DEFAULT_TIME_ZONE, isoLocalTime } from './time.js';

/**
 * The batch summary: one JSON shape for the engine, `payouts status --json`, the JSON report, the HTML
 * report and notifications. Documented in src/report/SCHEMA.md; scripts depend on it, so fields are only
 * ever added (a removal or a change of meaning bumps SUMMARY_SCHEMA_VERSION).
 * snake_case; amounts are rupee decimal strings ("1234.50"); times ISO 8601 with the report zone's offset.
 */
export const SUMMARY_SCHEMA_VERSION = 1;

export interface Totals {
  count: number;
  /** Rupees, two decimals. */
  amount: string;
}

export interface StatusTotals extends Totals {
  /** Charges the API kept for these rows, rupees (0 for rejected: refunded). */
  charges: string;
}

export interface GroupSummary {
  rows: number;
  /** Sum of every row's amount that has one, rupees. */
  amount: string;
  counts: Record<ReportStatus, number>;
  totals: Record<ReportStatus, StatusTotals>;
  /** Charges of approved and pending payouts, rupees. */
  charges: string;
  /** What the API debited for these rows: approved and pending amounts plus their charges, rupees. */
  debited: string;
}

export interface MethodSummary extends GroupSummary {
  /** IMPS, NEFT, RTGS, UPI; null for rows without a usable method. */
  method: string | null;
}

export interface BankSummary extends GroupSummary {
  /** The IFSC's first four letters (SBIN, HDFC…); null for rows without a well-formed IFSC. */
  bank_code: string | null;
  /** The bank's name from the IFSC list, else as the file gave it; null if neither is known. */
  bank_name: string | null;
}

export interface BatchSummary extends GroupSummary {
  schema_version: typeof SUMMARY_SCHEMA_VERSION;
  batch: string;
  source_file: string | null;
  revision: number | null;
  /** The input's payee reference column (e.g. "employee_id"), if it had one. */
  reference_column: string | null;
  /** An operator's decision at the prompt: 'declined' (nothing is sent until confirmed again), 'approved', or null. */
  decision: string | null;
  /** IANA zone the times are given in. */
  time_zone: string;
  /** Paid: approved by the bank. */
  paid: Totals;
  /** Sent and not final: pending at the bank, or outcome not known yet (sending). */
  awaiting: Totals;
  /** Final without payment: invalid, rejected, failed, needs_review, cancelled. */
  not_paid: Totals;
  /**
   * Rows whose request may have reached the API but whose outcome is unknown (sending, and needs_review
   * rows that were ever sent): their amounts may have left the wallet. Never pay these again by hand.
   */
  possibly_debited: Totals;
  by_method: MethodSummary[];
  by_bank: BankSummary[];
  created_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  /** When the first and the last payouts were first sent, and when the last outcome arrived. */
  first_sent_at: string | null;
  last_sent_at: string | null;
  last_outcome_at: string | null;
  generated_at: string;
  /** The API the batch was paid through (its host), when the writer knows it. */
  api_host: string | null;
  /** The merchant user_ids its rows are paid under (at most 5). */
  user_ids: string[];
  /** Every approval or rejection of a revision (maker-checker, `payouts approve`), oldest first. */
  approvals: { revision: number; decision: string; by: string; at: string | null; note: string | null; file_sha256: string }[];
}

export interface SummaryOptions {
  /** IANA time zone for the times. Default Asia/Kolkata. */
  timeZone?: string | undefined;
  /** The API's host, for the report's header. */
  apiHost?: string | undefined;
  /** The report's generation time (tests). Default now. */
  now?: Date | undefined;
}

const PAID: readonly ReportStatus[] = ['approved'];
const AWAITING: readonly ReportStatus[] = ['pending', 'sending'];
const NOT_PAID: readonly ReportStatus[] = ['invalid', 'rejected', 'failed', 'needs_review', 'cancelled'];
/** The API debited these: amount and charge (a rejected payout is refunded both). */
const DEBITED: readonly ReportStatus[] = ['approved', 'pending'];

/** Sums in paise while folding, turned into rupee strings once at the end. */
class Acc {
  rows = 0;
  amount = 0n;
  counts = Object.fromEntries(REPORT_STATUSES.map((s) => [s, 0])) as Record<ReportStatus, number>;
  amounts = Object.fromEntries(REPORT_STATUSES.map((s) => [s, 0n])) as Record<ReportStatus, bigint>;
  charges = Object.fromEntries(REPORT_STATUSES.map((s) => [s, 0n])) as Record<ReportStatus, bigint>;
  possiblyCount = 0;
  possiblyAmount = 0n;

  add(g: ReportGroup): void {
    const s = reportStatus(g.state);
    const amount = BigInt(g.amount);
    this.rows += g.n;
    this.amount += amount;
    this.counts[s] += g.n;
    this.amounts[s] += amount;
    // A charge stored on a row that is not debited (rejected: refunded) is not a cost.
    if (DEBITED.includes(s)) this.charges[s] += BigInt(g.charges);
    if (s === 'sending') {
      this.possiblyCount += g.n;
      this.possiblyAmount += amount;
    } else if (s === 'needs_review') {
      this.possiblyCount += g.claimed_n;
      this.possiblyAmount += BigInt(g.claimed_amount);
    }
  }

  totalOf(statuses: readonly ReportStatus[]): Totals {
    let count = 0;
    let amount = 0n;
    for (const s of statuses) {
      count += this.counts[s];
      amount += this.amounts[s];
    }
    return { count, amount: formatRupees(amount) };
  }

  group(): GroupSummary {
    let charges = 0n;
    let debited = 0n;
    for (const s of DEBITED) {
      charges += this.charges[s];
      debited += this.amounts[s] + this.charges[s];
    }
    return {
      rows: this.rows,
      amount: formatRupees(this.amount),
      counts: { ...this.counts },
      totals: Object.fromEntries(
        REPORT_STATUSES.map((s) => [s, { count: this.counts[s], amount: formatRupees(this.amounts[s]), charges: formatRupees(this.charges[s]) }]),
      ) as Record<ReportStatus, StatusTotals>,
      charges: formatRupees(charges),
      debited: formatRupees(debited),
    };
  }
}

/** Largest amount first, then by name, so the tables read from what matters most. */
function byAmountDesc<T extends GroupSummary>(key: (g: T) => string): (a: T, b: T) => number {
  return (a, b) => {
    const d = (parseRupees(b.amount) ?? 0n) - (parseRupees(a.amount) ?? 0n);
    return d > 0n ? 1 : d < 0n ? -1 : key(a).localeCompare(key(b));
  };
}

/** Counts, rupees, charges, debits, breakdowns and timings of a batch, computed in the database. */
export async function summarize(db: Knex, batch: string, opts: SummaryOptions = {}): Promise<BatchSummary> {
  const tz = opts.timeZone ?? DEFAULT_TIME_ZONE;
  const [b, groups, times] = [await batchForReport(db, batch), await reportGroups(db, batch), await sendTimes(db, batch)];
  const all = new Acc();
  const methods = new Map<string | null, Acc>();
  const banks = new Map<string | null, { acc: Acc; names: Set<string> }>();
  for (const g of groups) {
    all.add(g);
    let m = methods.get(g.method);
    if (!m) methods.set(g.method, (m = new Acc()));
    m.add(g);
    let k = banks.get(g.bank_code);
    if (!k) banks.set(g.bank_code, (k = { acc: new Acc(), names: new Set() }));
    k.acc.add(g);
    if (g.bank_name) k.names.add(g.bank_name);
  }
  const by_method: MethodSummary[] = [...methods].map(([method, acc]) => ({ method, ...acc.group() }));
  by_method.sort(byAmountDesc((g) => g.method ?? ''));
  const by_bank: BankSummary[] = [...banks].map(([code, { acc, names }]) => ({
    bank_code: code,
    bank_name: (code ? bankNameForCode(code) : undefined) ?? (names.size ? [...names].sort()[0]! : null),
    ...acc.group(),
  }));
  by_bank.sort(byAmountDesc((g) => g.bank_code ?? ''));
  const iso = (d: Date | string | null | undefined) => isoLocalTime(d, tz);
  return {
    schema_version: SUMMARY_SCHEMA_VERSION,
    batch,
    source_file: b?.source_file ?? null,
    revision: b?.revision ?? null,
    reference_column: b?.reference_column ?? null,
    decision: b?.decision ?? null,
    time_zone: tz,
    ...all.group(),
    paid: all.totalOf(PAID),
    awaiting: all.totalOf(AWAITING),
    not_paid: all.totalOf(NOT_PAID),
    possibly_debited: { count: all.possiblyCount, amount: formatRupees(all.possiblyAmount) },
    by_method,
    by_bank,
    created_at: iso(b?.created_at),
    started_at: iso(b?.started_at),
    finished_at: iso(b?.finished_at),
    first_sent_at: iso(times.first_sent_at),
    last_sent_at: iso(times.last_sent_at),
    last_outcome_at: iso(times.last_outcome_at),
    generated_at: iso(opts.now ?? new Date())!,
    api_host: opts.apiHost ?? null,
    user_ids: await userIdsOf(db, batch),
    approvals: (await approvalsOf(db, batch)).map((a) => ({ revision: a.revision, decision: a.decision, by: a.by_user, at: iso(a.created_at), note: a.note, file_sha256: a.file_sha256 })),
  };
}
