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
}

const CONTENT_COLUMNS = [
  'name', 'email', 'mobile', 'address', 'method', 'bank_name', 'remarks', 'user_id', 'warnings',
  'account_no', 'ifsc', 'amount_paise',
] as const;

/**
 * Inserts a chunk of ingested rows. A row whose order_id already exists in the same batch (a rerun of a
 * corrected file) keeps its state and payout; only its row number, revision and, if it was never sent,
 * its details are refreshed. The money-bearing identity (account, IFSC, amount) is the order_id itself.
 */
export async function insertRows(db: Knex, rows: NewRow[]): Promise<void> {
  if (rows.length === 0) return;
  const values = rows.map((r) => ({
    ...r,
    amount_paise: r.amount_paise === null ? null : r.amount_paise.toString(),
    errors: JSON.stringify(r.errors),
    warnings: JSON.stringify(r.warnings),
  }));
  const merge: Record<string, Knex.Raw> = {
    row_no: db.raw('excluded.row_no'),
    revision: db.raw('excluded.revision'),
    updated_at: db.raw('now()'),
  };
  for (const c of CONTENT_COLUMNS) {
    merge[c] = db.raw(`CASE WHEN payout_rows.state IN ('ready', 'skipped') THEN excluded.${c} ELSE payout_rows.${c} END`);
  }
  const stored = await db('payout_rows')
    .insert(values)
    .onConflict('order_id')
    .merge(merge)
    .where('payout_rows.batch', rows[0]!.batch)
    .returning('order_id');
  // A conflict with another batch's order_id updates nothing and returns nothing: never lose a row silently.
  if (stored.length !== rows.length) {
    const got = new Set((stored as { order_id: string | null }[]).map((r) => r.order_id));
    const lost = rows.filter((r) => r.order_id !== null && !got.has(r.order_id)).map((r) => `row ${r.row_no} (${r.order_id})`);
    throw new Error(
      `${lost.join(', ')} could not be stored: the order_id is used by another batch (read at the same time?); run again to have it reported as invalid`,
    );
  }
}

/** Which of these order_ids are already used, and by which batch. */
export async function existingOrderIds(db: Knex, orderIds: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (orderIds.length === 0) return out;
  const found = await db('payout_rows').select('order_id', 'batch').whereIn('order_id', orderIds);
  for (const r of found as { order_id: string; batch: string }[]) out.set(r.order_id, r.batch);
  return out;
}

/** After a revision: rows of older revisions that were never sent are dropped (the new file replaces them). */
export async function dropUnsentFromOlderRevisions(db: Knex, batch: string, revision: number): Promise<number> {
  return db('payout_rows')
    .where({ batch })
    .where('revision', '<', revision)
    .whereIn('state', ['invalid', 'ready', 'skipped'])
    .del();
}

export interface Claimed extends PayoutRow {
  /** The database's clock when the claim was made. */
  db_now: Date;
  /** For a stale claim: who held the row before (a dead process, or an expired lease). */
  prev_owner?: string | null;
  /** For a ready claim: set when the row was claimed (so maybe sent) before, e.g. failed and retried. */
  prev_first_claimed_at?: Date | null;
  prev_send_deadline?: Date | null;
}

/**
 * Claims up to `limit` ready rows for sending: state -> submitting, a lease and a new fencing token, in one
 * statement. Committing this is the intent: only after it returns may a request be sent.
 */
export async function claimReady(db: Knex, batch: string, owner: string, leaseMs: number, limit: number): Promise<Claimed[]> {
  // Only rows of the batch's current, completely read revision: a file still being read (or one that
  // failed part-way) is never sent, even by another runner already working on the batch.
  const res = await db.raw(
    `UPDATE payout_rows SET state = 'submitting', lease_owner = ?, lease_expires_at = now() + (? * interval '1 millisecond'),
        send_deadline = now() + (? * interval '1 millisecond'), fence = nextval('payout_fence'), updated_at = now(),
        first_sent_at = coalesce(payout_rows.first_sent_at, now()), first_claimed_at = coalesce(payout_rows.first_claimed_at, now())
      FROM (SELECT r.id, r.first_claimed_at AS prev_first_claimed_at, r.send_deadline AS prev_send_deadline
              FROM payout_rows r JOIN batches b ON b.name = r.batch
             WHERE r.batch = ? AND r.state = 'ready' AND b.ingest_complete AND r.revision = b.revision
             ORDER BY r.row_no, r.id LIMIT ? FOR UPDATE OF r SKIP LOCKED) old
      WHERE payout_rows.id = old.id
      RETURNING payout_rows.*, old.prev_first_claimed_at, old.prev_send_deadline, now() AS db_now`,
    [owner, leaseMs, leaseMs, batch, limit],
  );
  return sortByRow(res.rows as Claimed[]);
}

/**
 * Claims rows left in `submitting` by a runner that is gone: its lease expired, or its owner is in
 * `deadOwners` (a crashed process on this host). Their outcome is unknown: the caller asks status first.
 */
export async function claimStale(
  db: Knex,
  batch: string,
  owner: string,
  leaseMs: number,
  limit: number,
  deadOwners: string[],
  exclude: string[] = [],
): Promise<Claimed[]> {
  const res = await db.raw(
    `UPDATE payout_rows SET lease_owner = ?, lease_expires_at = now() + (? * interval '1 millisecond'),
        fence = nextval('payout_fence'), updated_at = now()
      FROM (SELECT id, lease_owner AS prev_owner FROM payout_rows WHERE batch = ? AND state = 'submitting'
              AND (lease_expires_at IS NULL OR lease_expires_at < now() OR lease_owner = ANY(?))
              AND NOT (id = ANY(?::bigint[]))
            ORDER BY row_no, id LIMIT ? FOR UPDATE SKIP LOCKED) old
      WHERE payout_rows.id = old.id
      RETURNING payout_rows.*, old.prev_owner, now() AS db_now`,
    [owner, leaseMs, batch, deadOwners, exclude, limit],
  );
  return sortByRow(res.rows as Claimed[]);
}

/** Owners holding submitting rows in this batch, for the dead-process check. */
export async function leaseOwners(db: Knex, batch: string): Promise<string[]> {
  const rows = await db('payout_rows').distinct('lease_owner').where({ batch, state: 'submitting' }).whereNotNull('lease_owner');
  return (rows as { lease_owner: string }[]).map((r) => r.lease_owner);
}

/**
 * Extends the lease before a (re)send. Succeeds only while the lease is still ours and unexpired; the new
 * send deadline bounds when this send can have happened. Returns the new lease expiry, or undefined if lost.
 */
export async function renewForSend(db: Knex, id: string, fence: string, leaseMs: number): Promise<Date | undefined> {
  const res = await db.raw(
    `UPDATE payout_rows SET lease_expires_at = now() + (? * interval '1 millisecond'),
        send_deadline = greatest(send_deadline, now() + (? * interval '1 millisecond')), updated_at = now()
      WHERE id = ? AND fence = ? AND state = 'submitting' AND lease_expires_at > now()
      RETURNING lease_expires_at`,
    [leaseMs, leaseMs, id, fence],
  );
  const row = (res.rows as { lease_expires_at: Date }[])[0];
  return row?.lease_expires_at;
}

/** Extends a claim's lease without sending anything (waiting out the grace period). False if lost. */
export async function extendLease(db: Knex, id: string, fence: string, leaseMs: number): Promise<boolean> {
  const n = await db('payout_rows')
    .where({ id, fence, state: 'submitting' })
    .where('lease_expires_at', '>', db.fn.now())
    .update({ lease_expires_at: db.raw(`now() + (? * interval '1 millisecond')`, [leaseMs]), updated_at: db.fn.now() });
  return n === 1;
}

export interface Outcome {
  state: 'pending' | 'approved' | 'rejected' | 'failed' | 'ready' | 'needs_review';
  api_status?: string | null;
  api_message?: string | null;
  transaction_id?: string | null;
  charge_paise?: bigint | null;
  last_error?: string | null;
  /** Requests sent for this row under the claim being closed. */
  sends?: number;
}

function outcomeColumns(db: Knex, o: Outcome): Record<string, unknown> {
  const cols: Record<string, unknown> = { state: o.state, updated_at: db.fn.now() };
  if (o.api_status !== undefined) cols['api_status'] = o.api_status;
  if (o.api_message !== undefined) cols['api_message'] = o.api_message;
  if (o.transaction_id !== undefined) cols['transaction_id'] = o.transaction_id;
  if (o.charge_paise !== undefined) cols['charge_paise'] = o.charge_paise === null ? null : o.charge_paise.toString();
  if (o.last_error !== undefined) cols['last_error'] = o.last_error;
  if (o.state === 'approved' || o.state === 'rejected' || o.state === 'failed') cols['finalized_at'] = db.fn.now();
  if (o.state === 'pending') cols['next_poll_at'] = db.fn.now();
  if (o.sends) cols['send_count'] = db.raw('send_count + ?', [o.sends]);
  return cols;
}

/**
 * Commits what became of a submitting row, fenced: nothing changes unless this runner still holds an
 * unexpired lease with this token. Returns false when the write was refused.
 */
export async function commitOutcome(db: Knex, id: string, fence: string, o: Outcome): Promise<boolean> {
  const cols = outcomeColumns(db, o);
  cols['lease_owner'] = null;
  cols['lease_expires_at'] = null;
  const n = await db('payout_rows')
    .where({ id, fence, state: 'submitting' })
    .where('lease_expires_at', '>', db.fn.now())
    .update(cols);
  return n === 1;
}

/** Releases a lease without a decision (the row stays submitting for a later resolution). */
export async function releaseLease(db: Knex, id: string, fence: string, lastError: string, sends = 0): Promise<void> {
  await db('payout_rows')
    .where({ id, fence, state: 'submitting' })
    .update({
      lease_expires_at: db.fn.now(),
      last_error: lastError,
      updated_at: db.fn.now(),
      send_count: db.raw('send_count + ?', [sends]),
    });
}

/**
 * Applies a status learned from the API to a row outside a claim (polling, reconcile, webhooks):
 * status only moves forward, so the update names the states it may come from.
 */
export async function advance(db: Knex, id: string, from: RowState[], o: Outcome): Promise<boolean> {
  const n = await db('payout_rows').where({ id }).whereIn('state', from).update(outcomeColumns(db, o));
  return n === 1;
}

/** Pending rows whose next poll is due, oldest poll first. */
export async function duePending(db: Knex, batch: string, limit: number): Promise<PayoutRow[]> {
  return db<PayoutRow>('payout_rows')
    .where({ batch, state: 'pending' })
    .where((q) => q.whereNull('next_poll_at').orWhere('next_poll_at', '<=', db.fn.now()))
    .orderBy('next_poll_at', 'asc')
    .orderBy('id')
    .limit(limit);
}

/** When the next pending row is due, in ms from now (0 if due now, undefined if none pending). */
export async function nextPollInMs(db: Knex, batch: string): Promise<number | undefined> {
  const res = await db.raw(
    `SELECT greatest(0, extract(epoch from (min(coalesce(next_poll_at, now())) - now())) * 1000)::float8 AS ms, count(*)::int AS n
       FROM payout_rows WHERE batch = ? AND state = 'pending'`,
    [batch],
  );
  const r = (res.rows as { ms: number | null; n: number }[])[0]!;
  return r.n === 0 ? undefined : Number(r.ms ?? 0);
}

export async function schedulePoll(db: Knex, id: string, delayMs: number, lastError: string | null = null): Promise<void> {
  await db('payout_rows')
    .where({ id, state: 'pending' })
    .update({
      next_poll_at: db.raw(`now() + (? * interval '1 millisecond')`, [Math.round(delayMs)]),
      poll_count: db.raw('poll_count + 1'),
      updated_at: db.fn.now(),
      ...(lastError === null ? {} : { last_error: lastError }),
    });
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

/** Moves every row in `from` to `to` (skip on short balance, and back). */
export async function moveAll(db: Knex, batch: string, from: RowState, to: RowState, note: string | null): Promise<number> {
  return db('payout_rows').where({ batch, state: from }).update({ state: to, last_error: note, updated_at: db.fn.now() });
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

function sortByRow<T extends PayoutRow>(rows: T[]): T[] {
  return rows.sort((a, b) => a.row_no - b.row_no || Number(a.id) - Number(b.id));
}
