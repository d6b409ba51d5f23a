import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Knex } from 'knex';
import { formatRupees } from '../money.js';
import { maskAccount } from '../log.js';
import { getBatch } from '../db/batches.js';
import { iterateRows, type Issue, type PayoutRow } from '../db/rows.js';
import { REPORT_STATUSES, reportStatus, type ReportStatus } from '../states.js';
import { csvLine, writeFileAtomic } from './files.js';

export const REPORT_COLUMNS = [
  'row',
  'order_id',
  'beneficiary_name',
  'account',
  'ifsc',
  'payment_method',
  'amount',
  'charge',
  'status',
  'transaction_id',
  'error',
  'warnings',
] as const;

export interface StatusTotals {
  count: number;
  /** Rupees, two decimals. */
  amount: string;
}

export interface BatchSummary {
  batch: string;
  source_file: string | null;
  revision: number | null;
  rows: number;
  counts: Record<ReportStatus, number>;
  totals: Record<ReportStatus, StatusTotals>;
  /** Charges of approved payouts (rejected ones are refunded), rupees. */
  charges: string;
  /** Paid out (approved) plus charges, rupees. */
  debited: string;
  started_at: string | null;
  finished_at: string | null;
  generated_at: string;
}

export interface ReportPaths {
  csv: string;
  json: string;
  summary: BatchSummary;
}

/** Personal data stays masked in reports: the account and any long digit run in a message about it. */
function safeMessage(row: PayoutRow, message: string): string {
  let m = message;
  if (row.account_no && row.account_no.length >= 5) m = m.split(row.account_no).join(maskAccount(row.account_no));
  if (row.mobile && row.mobile.length >= 6) m = m.split(row.mobile).join(maskAccount(row.mobile));
  return m;
}

function issues(row: PayoutRow, list: Issue[] | string | null | undefined): string {
  const arr: Issue[] = typeof list === 'string' ? (JSON.parse(list) as Issue[]) : (list ?? []);
  return arr.map((i) => safeMessage(row, i.message)).join('; ');
}

function errorText(row: PayoutRow): string {
  const status = reportStatus(row.state);
  if (row.state === 'invalid') return issues(row, row.errors);
  if (status === 'approved') return '';
  if (row.state === 'submitting') {
    return `outcome not yet known (${safeMessage(row, row.last_error ?? 'in progress')}): run \`payouts resume ${row.batch}\``;
  }
  if (row.state === 'ready') return 'not sent yet: run `payouts resume` to carry on';
  return safeMessage(row, row.last_error ?? row.api_message ?? '');
}

function amountText(paise: string | null): string {
  return paise === null ? '' : formatRupees(BigInt(paise));
}

export function reportLine(row: PayoutRow): string {
  return csvLine([
    row.row_no,
    row.order_id ?? '',
    row.name ?? '',
    maskAccount(row.account_no),
    row.ifsc ?? '',
    row.method ?? '',
    amountText(row.amount_paise),
    amountText(row.charge_paise),
    reportStatus(row.state),
    row.transaction_id ?? '',
    errorText(row),
    issues(row, row.warnings),
  ]);
}

/** Counts and totals per report status, computed in the database. */
export async function summarize(db: Knex, batch: string): Promise<BatchSummary> {
  const b = await getBatch(db, batch);
  const rows = (await db('payout_rows')
    .where({ batch })
    .groupBy('state')
    .select(
      'state',
      db.raw('count(*)::int AS n'),
      db.raw('coalesce(sum(amount_paise), 0)::text AS amount'),
      db.raw('coalesce(sum(charge_paise), 0)::text AS charges'),
    )) as { state: PayoutRow['state']; n: number; amount: string; charges: string }[];
  const counts = Object.fromEntries(REPORT_STATUSES.map((s) => [s, 0])) as Record<ReportStatus, number>;
  const sums = Object.fromEntries(REPORT_STATUSES.map((s) => [s, 0n])) as Record<ReportStatus, bigint>;
  let charges = 0n;
  let total = 0;
  for (const r of rows) {
    const s = reportStatus(r.state);
    counts[s] += Number(r.n);
    sums[s] += BigInt(r.amount);
    if (s === 'approved') charges += BigInt(r.charges);
    total += Number(r.n);
  }
  const totals = Object.fromEntries(
    REPORT_STATUSES.map((s) => [s, { count: counts[s], amount: formatRupees(sums[s]) }]),
  ) as Record<ReportStatus, StatusTotals>;
  return {
    batch,
    source_file: b?.source_file ?? null,
    revision: b?.revision ?? null,
    rows: total,
    counts,
    totals,
    charges: formatRupees(charges),
    debited: formatRupees(sums.approved + charges),
    started_at: b?.started_at ? new Date(b.started_at).toISOString() : null,
    finished_at: b?.finished_at ? new Date(b.finished_at).toISOString() : null,
    generated_at: new Date().toISOString(),
  };
}

/**
 * A safe file name for a batch: letters, digits, dot, dash, underscore. A name that had to be changed gets
 * a short hash of the original, so "a/b" and "a_b" never share a report.
 */
export function reportBaseName(batch: string): string {
  const safe = batch.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '_') || 'batch';
  return safe === batch ? safe : `${safe}-${createHash('sha256').update(batch).digest('hex').slice(0, 8)}`;
}

/**
 * Writes <dir>/<batch>.csv (one line per input row, in row order, streamed from the database) and
 * <dir>/<batch>.json (the summary), both atomically and readable by the owner only.
 */
export async function writeReports(db: Knex, batch: string, dir: string): Promise<ReportPaths> {
  const base = path.join(dir, reportBaseName(batch));
  const csv = `${base}.csv`;
  const json = `${base}.json`;
  async function* lines(): AsyncGenerator<string> {
    yield csvLine([...REPORT_COLUMNS]);
    for await (const row of iterateRows(db, batch)) yield reportLine(row);
  }
  await writeFileAtomic(csv, lines());
  const summary = await summarize(db, batch);
  await writeFileAtomic(json, [JSON.stringify(summary, null, 2) + '\n']);
  return { csv, json, summary };
}
