import type { Knex } from 'knex';
import type { RowState } from '../states.js';

/** One line of payout_rows as the database returns it (bigint columns come back as strings from pg). */
export interface PayoutRow {
  id: string;
  batch: string;
  revision: number;
  row_no: number;
  order_id: string | null;
  order_id_source: string | null;
  state: RowState;
  name: string | null;
  email: string | null;
  mobile: string | null;
  address: string | null;
  method: string | null;
  account_no: string | null;
  bank_name: string | null;
  ifsc: string | null;
  amount_paise: string | null;
  remarks: string | null;
  user_id: string | null;
  errors: Issue[];
  warnings: Issue[];
  charge_paise: string | null;
  transaction_id: string | null;
  api_status: string | null;
  api_message: string | null;
  last_error: string | null;
  send_count: number;
  lease_owner: string | null;
  lease_expires_at: Date | null;
  send_deadline: Date | null;
  fence: string;
  poll_count: number;
  next_poll_at: Date | null;
  created_at: Date;
  updated_at: Date;
  first_sent_at: Date | null;
  /** Set on the first claim, never cleared: a row ever claimed may exist at the API. */
  first_claimed_at: Date | null;
  finalized_at: Date | null;
  payee_key: string | null;
  ref_key: string | null;
  reference: string | null;
  /** The input's cells for this row, in the order of batches.source_header. */
  source: string[] | null;
  /** False for a row kept from an earlier revision (it was sent) that the latest file no longer has. */
  in_file: boolean;
  replaces_row_id: string | null;
}

export interface Issue {
  field: string;
  code: string;
  message: string;
}

export interface NewRow {
  batch: string;
  revision: number;
  row_no: number;
  order_id: string | null;
  order_id_source: string | null;
  state: 'invalid' | 'ready';
  name: string | null;
  email: string | null;
  mobile: string | null;
  address: string | null;
  method: string | null;
  account_no: string | null;
  bank_name: string | null;
  ifsc: string | null;
  amount_paise: bigint | null;
  remarks: string | null;
  user_id: string | null;
  errors: Issue[];
  warnings: Issue[];
  payee_key?: string | null;
  ref_key?: string | null;
  reference?: string | null;
  source?: string[] | null;
  replaces_row_id?: string | null;
}

/** Inserts a chunk of ingested rows (inside the ingest transaction). */
export async function insertRows(db: Knex, rows: NewRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db('payout_rows').insert(
    rows.map((r) => ({
      ...r,
      amount_paise: r.amount_paise === null ? null : r.amount_paise.toString(),
      errors: JSON.stringify(r.errors),
      warnings: JSON.stringify(r.warnings),
      source: r.source === undefined || r.source === null ? null : JSON.stringify(r.source),
    })),
  );
}

/** Which of these order_ids are already used, and by which batch. */
export async function existingOrderIds(db: Knex, orderIds: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (orderIds.length === 0) return out;
  const found = await db('payout_rows').select('order_id', 'batch').whereIn('order_id', orderIds);
  for (const r of found as { order_id: string; batch: string }[]) out.set(r.order_id, r.batch);
  return out;
}

export async function countByState(db: Knex, batch: string): Promise<Record<RowState, number>> {
  const rows = (await db('payout_rows').select('state').count<{ state: RowState; count: string }[]>('* as count').where({ batch }).groupBy('state')) as unknown as {
    state: RowState;
    count: string | number;
  }[];
  const out = {} as Record<RowState, number>;
  for (const r of rows) out[r.state] = Number(r.count);
  return out;
}

/** Total amount and count of rows in the given states. */
export async function sumAmounts(db: Knex, batch: string, states: RowState[]): Promise<{ count: number; paise: bigint }> {
  const r = (await db('payout_rows')
    .where({ batch })
    .whereIn('state', states)
    .select(db.raw('count(*)::int AS count'), db.raw('coalesce(sum(amount_paise), 0)::text AS paise'))
    .first()) as { count: number; paise: string };
  return { count: Number(r.count), paise: BigInt(r.paise) };
}


export async function rowsOfBatch(db: Knex, batch: string, states?: RowState[]): Promise<PayoutRow[]> {
  const q = db<PayoutRow>('payout_rows').where({ batch });
  if (states) q.whereIn('state', states);
  return q.orderBy('row_no').orderBy('id');
}

/** Pages through a batch's rows in row order without holding them all (reports of a million rows). */
export async function* iterateRows(db: Knex, batch: string, pageSize = 5000): AsyncGenerator<PayoutRow> {
  let lastRow = -1;
  let lastId = '0';
  for (;;) {
    const page = await db<PayoutRow>('payout_rows')
      .where({ batch })
      .where((q) => q.where('row_no', '>', lastRow).orWhere((q2) => q2.where('row_no', lastRow).where('id', '>', lastId)))
      .orderBy('row_no')
      .orderBy('id')
      .limit(pageSize);
    for (const r of page) yield r;
    if (page.length < pageSize) return;
    const last = page[page.length - 1]!;
    lastRow = last.row_no;
    lastId = String(last.id);
  }
}


/** Rows to send and rupees, in total and per method. */
export async function readyByMethod(db: Knex, batch: string): Promise<{ method: string; count: number; paise: bigint }[]> {
  const rows = (await db('payout_rows')
    .where({ batch, state: 'ready' })
    .groupBy('method')
    .orderBy('method')
    .select('method', db.raw('count(*)::int AS count'), db.raw('coalesce(sum(amount_paise), 0)::text AS paise'))) as {
    method: string | null;
    count: number;
    paise: string;
  }[];
  return rows.map((r) => ({ method: r.method ?? '?', count: Number(r.count), paise: BigInt(r.paise) }));
}


/** The row holding this order_id, in any batch. */
export async function rowByOrderId(db: Knex, orderId: string): Promise<PayoutRow | undefined> {
  return db<PayoutRow>('payout_rows').where({ order_id: orderId }).first();
}

export interface RepeatedPayment {
  row: number;
  other_batch: string;
  other_row: number;
  other_state: string;
  amount_paise: string;
  created_at: Date;
}

/** Rows of another batch that paid, are on their way, or may still pay: what a repeat is compared with. */
const MAY_PAY_STATES = `('ready', 'submitting', 'pending', 'approved', 'skipped', 'needs_review')`;

/**
 * Pairs (n, o) of a row `n` of the batch still to send and a row `o` of another batch made in the last
 * `days` days that may pay, for the same payment across batches (src/batch/payeeIdentity.ts): the same
 * amount to the same payee, by account and IFSC or by reference. Two joins, each on its index.
 */
function samePaymentPairs(batch: string, days: number): { sql: string; bindings: (string | number)[] } {
  const side = (on: string) => `SELECT n.id AS n_id, n.row_no AS n_row, o.batch AS o_batch, o.row_no AS o_row, o.state AS o_state,
            n.amount_paise AS amount_paise, o.created_at AS o_created
       FROM payout_rows n JOIN payout_rows o ON ${on} AND o.amount_paise = n.amount_paise AND o.batch <> n.batch
      WHERE n.batch = ? AND n.state = 'ready'
        AND o.created_at > now() - (? * interval '1 day') AND o.state IN ${MAY_PAY_STATES}`;
  return {
    sql: `${side('o.payee_key = n.payee_key AND n.payee_key IS NOT NULL')} UNION ${side('o.ref_key = n.ref_key AND n.ref_key IS NOT NULL')}`,
    bindings: [batch, days, batch, days],
  };
}

/**
 * Rows of `batch` still to send that pay the same payee the same amount as a row of another batch made in
 * the last `withinDays` days that was paid, is on its way, or may still be (a duplicate upload, or a
 * payment made twice by hand): how many rows, and the first `limit` (each with its latest look-alike).
 */
export async function repeatedPayments(db: Knex, batch: string, withinDays: number, limit = 50): Promise<{ rows: number; first: RepeatedPayment[] }> {
  const pairs = samePaymentPairs(batch, withinDays);
  // One line per row of this batch (its latest look-alike), counted in the same pass.
  const res = await db.raw(
    `WITH p AS (${pairs.sql}),
     m AS (
       SELECT DISTINCT ON (n_id) n_id, n_row AS row, o_batch AS other_batch, o_row AS other_row, o_state AS other_state,
              amount_paise::text AS amount_paise, o_created AS created_at
         FROM p ORDER BY n_id, o_created DESC)
     SELECT row, other_batch, other_row, other_state, amount_paise, created_at, count(*) OVER () AS total
       FROM m ORDER BY row, n_id LIMIT ?`,
    [...pairs.bindings, limit],
  );
  const rows = res.rows as (RepeatedPayment & { total: string | number })[];
  return { rows: rows.length ? Number(rows[0]!.total) : 0, first: rows.map(({ total: _t, ...r }) => r) };
}

/** Another batch most of this batch's payments repeat: how many of them, of how many. */
export interface NearCopy {
  batch: string;
  /** Rows of this batch to send that pay what a row of that batch pays. */
  matched: number;
  /** Rows of this batch to send. */
  of: number;
}

/**
 * The other batches (made in the last `days` days) whose payments the rows of `batch` still to send repeat
 * most, by the same-payment rule of `repeatedPayments`, best first.
 */
export async function nearCopies(db: Knex, batch: string, days: number, limit = 3): Promise<NearCopy[]> {
  const pairs = samePaymentPairs(batch, days);
  const res = await db.raw(
    `WITH p AS (${pairs.sql})
     SELECT o_batch AS batch, count(DISTINCT n_id)::int AS matched,
            (SELECT count(*)::int FROM payout_rows WHERE batch = ? AND state = 'ready') AS of
       FROM p GROUP BY o_batch ORDER BY matched DESC, o_batch LIMIT ?`,
    [...pairs.bindings, batch, limit],
  );
  return (res.rows as { batch: string; matched: number; of: number }[]).map((r) => ({ batch: r.batch, matched: Number(r.matched), of: Number(r.of) }));
}


/** The rows of the batch's current file: counts, and the totals of valid rows and of every amount. */
export async function fileRowTotals(
  db: Knex,
  batch: string,
): Promise<{ rows: number; invalid: number; warnings: number; validTotalPaise: bigint; fileTotalPaise: bigint }> {
  const r = (await db('payout_rows')
    .where({ batch, in_file: true })
    .select(
      db.raw('count(*)::int AS rows'),
      db.raw(`count(*) FILTER (WHERE state = 'invalid')::int AS invalid`),
      db.raw(`count(*) FILTER (WHERE jsonb_array_length(warnings) > 0)::int AS warnings`),
      db.raw(`coalesce(sum(amount_paise) FILTER (WHERE state <> 'invalid'), 0)::text AS total`),
      db.raw(`coalesce(sum(amount_paise), 0)::text AS file_total`),
    )
    .first()) as { rows: number; invalid: number; warnings: number; total: string; file_total: string };
  return { rows: Number(r.rows), invalid: Number(r.invalid), warnings: Number(r.warnings), validTotalPaise: BigInt(r.total), fileTotalPaise: BigInt(r.file_total) };
}

/** Whether the batch has a row with an explicit order_id (from the CSV) in one of these states. */
export async function hasExplicitOrderId(db: Knex, batch: string, states: readonly RowState[]): Promise<boolean> {
  return (await db('payout_rows').where({ batch, order_id_source: 'csv' }).whereIn('state', states as RowState[]).first('id')) !== undefined;
}

/**
 * The batch made before `batch` that paid the most of its payees (the same account and IFSC, or the same
 * reference; approved or with the bank), for the change plan: "what changed since last month".
 */
export async function previousBatchFor(db: Knex, batch: string): Promise<{ batch: string; matched: number } | undefined> {
  const side = (on: string) => `SELECT n.id AS n_id, o.batch AS o_batch, ob.created_at AS o_created
       FROM payout_rows n JOIN payout_rows o ON ${on} AND o.batch <> n.batch
       JOIN batches ob ON ob.name = o.batch
      WHERE n.batch = ? AND n.in_file AND o.state IN ('approved', 'pending')
        AND ob.created_at < (SELECT created_at FROM batches WHERE name = ?)`;
  const res = await db.raw(
    `WITH p AS (${side('o.payee_key = n.payee_key AND n.payee_key IS NOT NULL')} UNION ${side('o.ref_key = n.ref_key AND n.ref_key IS NOT NULL')})
     SELECT o_batch AS batch, count(DISTINCT n_id)::int AS matched FROM p GROUP BY o_batch ORDER BY matched DESC, max(o_created) DESC, o_batch LIMIT 1`,
    [batch, batch, batch, batch],
  );
  const r = (res.rows as { batch: string; matched: number }[])[0];
  return r ? { batch: r.batch, matched: Number(r.matched) } : undefined;
}

/** Rows of a batch's current file that are payments (valid), or that were paid (approved, with the bank): for the change plan. */
export async function planRowsOf(db: Knex, batch: string, paidOnly: boolean, limit: number): Promise<PayoutRow[]> {
  const q = db<PayoutRow>('payout_rows').where({ batch, in_file: true });
  if (paidOnly) q.whereIn('state', ['approved', 'pending']);
  else q.whereNot('state', 'invalid');
  return q.orderBy('row_no').orderBy('id').limit(limit);
}
