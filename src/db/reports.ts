import type { Knex } from 'knex';
import type { RowState } from '../states.js';
import type { PayoutRow } from './rows.js';

/** What the reports need of a batch, including the columns ingest fills for them (NULL on older batches). */
export interface BatchForReport {
  name: string;
  source_file: string;
  revision: number;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  /** The input's own header, in order (NULL before ingest kept it). */
  source_header: string[] | null;
  /** The header of the payee reference column (e.g. "employee_id"), if the file had one. */
  reference_column: string | null;
  /** 'declined' at the prompt, 'approved', or NULL. */
  decision: string | null;
  cancelled_at: Date | null;
}

export async function batchForReport(db: Knex, name: string): Promise<BatchForReport | undefined> {
  const b = (await db('batches')
    .where({ name })
    .first('name', 'source_file', 'revision', 'created_at', 'started_at', 'finished_at', 'source_header', 'reference_column', 'decision', 'cancelled_at')) as
    | BatchForReport
    | undefined;
  if (b && typeof b.source_header === 'string') b.source_header = JSON.parse(b.source_header) as string[];
  return b;
}

/** One group of rows with the same state, method and bank code, with its sums (paise as text). */
export interface ReportGroup {
  state: RowState;
  method: string | null;
  /** The IFSC's 4-letter bank code, or null when the IFSC is missing or malformed. */
  bank_code: string | null;
  /** Any bank name the rows of this group carry, for banks the IFSC list does not know. */
  bank_name: string | null;
  n: number;
  amount: string;
  charges: string;
  /** Rows of the group that were ever claimed (may exist at the API), and their amount. */
  claimed_n: number;
  claimed_amount: string;
}

/**
 * Counts and sums of a batch's rows by state, method and bank, in one pass over the batch. The groups
 * are few (states x methods x banks), so the report folds them in memory whatever the batch's size.
 */
export async function reportGroups(db: Knex, batch: string): Promise<ReportGroup[]> {
  const res = await db.raw(
    `SELECT state, method,
            CASE WHEN upper(ifsc) ~ '^[A-Z]{4}0' THEN substr(upper(ifsc), 1, 4) END AS bank_code,
            max(bank_name) AS bank_name,
            count(*)::int AS n,
            coalesce(sum(amount_paise), 0)::text AS amount,
            coalesce(sum(charge_paise), 0)::text AS charges,
            (count(*) FILTER (WHERE first_claimed_at IS NOT NULL))::int AS claimed_n,
            coalesce(sum(amount_paise) FILTER (WHERE first_claimed_at IS NOT NULL), 0)::text AS claimed_amount
       FROM payout_rows WHERE batch = ?
      GROUP BY 1, 2, 3`,
    [batch],
  );
  return (res.rows as ReportGroup[]).map((g) => ({ ...g, n: Number(g.n), claimed_n: Number(g.claimed_n) }));
}

export interface SendTimes {
  first_sent_at: Date | null;
  last_sent_at: Date | null;
  last_outcome_at: Date | null;
}

/** When the batch's first and last payouts were first sent, and when the last outcome arrived. */
export async function sendTimes(db: Knex, batch: string): Promise<SendTimes> {
  const r = (await db('payout_rows')
    .where({ batch })
    .first(db.raw('min(first_claimed_at) AS first_sent_at'), db.raw('max(first_claimed_at) AS last_sent_at'), db.raw('max(finalized_at) AS last_outcome_at'))) as SendTimes;
  return r;
}

/** The columns the reports read (not the claim and polling bookkeeping): less to fetch and decode per row. */
export const REPORT_ROW_COLUMNS = [
  'id', 'row_no', 'state', 'order_id', 'order_id_source', 'reference', 'name', 'email', 'mobile', 'address', 'method',
  'account_no', 'bank_name', 'ifsc', 'amount_paise', 'remarks', 'user_id', 'errors', 'warnings', 'charge_paise',
  'transaction_id', 'api_status', 'api_message', 'last_error', 'first_claimed_at', 'finalized_at', 'in_file', 'source',
] as const;
export type ReportSourceRow = Pick<PayoutRow, (typeof REPORT_ROW_COLUMNS)[number]>;

/**
 * Pages through a batch's rows in row order, optionally only some states, without holding them all
 * (reports of a million rows).
 */
export async function* iterateReportRows(db: Knex, batch: string, states?: readonly RowState[], pageSize = 5000): AsyncGenerator<ReportSourceRow> {
  let lastRow = -1;
  let lastId = '0';
  for (;;) {
    // A row-value comparison: the index on (batch, row_no) starts at the last page's row, so each page
    // costs its own rows, not every row before it.
    const q = db('payout_rows').select(REPORT_ROW_COLUMNS).where({ batch }).whereRaw('(row_no, id) > (?, ?)', [lastRow, lastId]);
    if (states) q.whereIn('state', states as RowState[]);
    const page = (await q.orderBy('row_no').orderBy('id').limit(pageSize)) as ReportSourceRow[];
    for (const r of page) yield r;
    if (page.length < pageSize) return;
    const last = page[page.length - 1]!;
    lastRow = last.row_no;
    lastId = String(last.id);
  }
}

/** The first `limit` rows of a batch in the given states, in row order (the HTML report's table). */
export async function rowsInStates(db: Knex, batch: string, states: readonly RowState[], limit: number): Promise<ReportSourceRow[]> {
  return db('payout_rows')
    .select(REPORT_ROW_COLUMNS)
    .where({ batch })
    .whereIn('state', states as RowState[])
    .orderBy('row_no')
    .orderBy('id')
    .limit(limit);
}

/** The user_ids (merchant ids) the batch's rows are paid under: a few, for the report's header. */
export async function userIdsOf(db: Knex, batch: string, limit = 5): Promise<string[]> {
  const rows = (await db('payout_rows').where({ batch }).whereNotNull('user_id').distinct('user_id').orderBy('user_id').limit(limit)) as { user_id: string }[];
  return rows.map((r) => r.user_id);
}
