import type { Knex } from 'knex';
import type { RowState } from '../states.js';
import type { PayoutRow } from './rows.js';
import { applyMove, type Move } from './moves.js';

/**
 * Claims and their outcomes: the only writes on the money path. Every claim takes a new fencing token;
 * every write of a claim's outcome carries it, so a runner that was taken over changes nothing.
 *
 * `send_deadline` is the durable answer to "may a request for this row have executed at the API, and
 * until when could it have been sent?": a claim sets it pessimistically (a crash right after the claim
 * leaves it set), and a claim that ends certain that nothing it sent can have executed puts the previous
 * value back. NULL means no request for the row can ever have executed.
 */
export interface Claimed extends PayoutRow {
  /** The database's clock when the claim was made. */
  db_now: Date;
  /** For a stale claim: who held the row before (a dead process, or an expired lease). */
  prev_owner?: string | null;
  /** For a ready claim: when it was first claimed before this claim (null: never). */
  prev_first_claimed_at?: Date | null;
  /** send_deadline before this claim: null means no earlier request can have executed. */
  prev_send_deadline: Date | null;
  /** The batch was cancelled (ready claims): resolve, never send. */
  batch_cancelled?: boolean;
  /** 'ready': claimed by claimReady, whose statement set this claim's send deadline; 'stale': taken over (claimStale), deadline unchanged. */
  claimed_from: 'ready' | 'stale';
}

/**
 * Claims up to `limit` ready rows for sending: state -> submitting, a lease and a new fencing token, in one
 * statement. Committing this is the intent: only after it returns may a request be sent.
 */
export async function claimReady(db: Knex, batch: string, owner: string, leaseMs: number, limit: number, only?: { revision: number; sha256: string }): Promise<Claimed[]> {
  // Only rows of the batch's current, completely read revision; with `only`, and only while that is still the
  // revision (and file) the run was allowed to pay: approvals name a revision, and one stored during the run
  // is not what the checkers approved.
  const res = await db.raw(
    `UPDATE payout_rows SET state = 'submitting', lease_owner = ?, lease_expires_at = now() + (? * interval '1 millisecond'),
        send_deadline = greatest(payout_rows.send_deadline, now() + (? * interval '1 millisecond')),
        fence = nextval('payout_fence'), updated_at = now(),
        first_sent_at = coalesce(payout_rows.first_sent_at, now()), first_claimed_at = coalesce(payout_rows.first_claimed_at, now())
      FROM (SELECT r.id, r.first_claimed_at AS prev_first_claimed_at, r.send_deadline AS prev_send_deadline,
                   b.cancelled_at IS NOT NULL AS batch_cancelled
              FROM payout_rows r JOIN batches b ON b.name = r.batch
             WHERE r.batch = ? AND r.state = 'ready' AND b.ingest_complete AND r.revision = b.revision${only ? ' AND b.revision = ? AND b.file_sha256 = ?' : ''}
               -- A cancelled batch sends nothing new; rows that may exist at the API are still resolved.
               AND (b.cancelled_at IS NULL OR r.send_deadline IS NOT NULL)
             ORDER BY r.row_no, r.id LIMIT ? FOR UPDATE OF r SKIP LOCKED) old
      WHERE payout_rows.id = old.id
      RETURNING payout_rows.*, old.prev_first_claimed_at, old.prev_send_deadline, old.batch_cancelled, 'ready' AS claimed_from, now() AS db_now`,
    [owner, leaseMs, leaseMs, batch, ...(only ? [only.revision, only.sha256] : []), limit],
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
      FROM (SELECT id, lease_owner AS prev_owner, send_deadline AS prev_send_deadline FROM payout_rows WHERE batch = ? AND state = 'submitting'
              AND (lease_expires_at IS NULL OR lease_expires_at < now() OR lease_owner = ANY(?))
              AND NOT (id = ANY(?::bigint[]))
            ORDER BY row_no, id LIMIT ? FOR UPDATE SKIP LOCKED) old
      WHERE payout_rows.id = old.id
      RETURNING payout_rows.*, old.prev_owner, old.prev_send_deadline, 'stale' AS claimed_from, now() AS db_now`,
    [owner, leaseMs, batch, deadOwners, exclude, limit],
  );
  return sortByRow(res.rows as Claimed[]);
}

/** Owners holding submitting rows in this batch, for the dead-process check. */
export async function leaseOwners(db: Knex, batch: string): Promise<string[]> {
  const rows = await db('payout_rows').distinct('lease_owner').where({ batch, state: 'submitting' }).whereNotNull('lease_owner');
  return (rows as { lease_owner: string }[]).map((r) => r.lease_owner);
}

/** Rows of the batch in `submitting` whose lease is still held (by a runner this process cannot see dead). */
export async function heldByOthers(db: Knex, batch: string, owner: string): Promise<number> {
  const r = (await db('payout_rows')
    .where({ batch, state: 'submitting' })
    .whereNot('lease_owner', owner)
    .where('lease_expires_at', '>', db.fn.now())
    .count('* as n')
    .first()) as { n: string | number };
  return Number(r.n);
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
  state: 'pending' | 'approved' | 'rejected' | 'failed' | 'ready' | 'needs_review' | 'cancelled';
  api_status?: string | null;
  api_message?: string | null;
  transaction_id?: string | null;
  charge_paise?: bigint | null;
  last_error?: string | null;
  /** Requests of the claim being closed that may have executed (a 2xx or an ambiguous failure). */
  sends?: number;
  /** Not a column: when a pending row is first polled (default at once). */
  nextPollInMs?: number;
  /** Not a column: the row went to needs_review because another payout holds its order_id. */
  collision?: boolean;
  /**
   * Set when the claim being closed ended certain that none of its requests executed: send_deadline goes
   * back to what it was before the claim (null: the row was never possibly sent).
   */
  restoreSendDeadline?: { to: Date | null };
}

function outcomeColumns(db: Knex, o: Outcome): Record<string, unknown> {
  const cols: Record<string, unknown> = { state: o.state, updated_at: db.fn.now() };
  if (o.api_status !== undefined) cols['api_status'] = o.api_status;
  if (o.api_message !== undefined) cols['api_message'] = o.api_message;
  if (o.transaction_id !== undefined) cols['transaction_id'] = o.transaction_id;
  if (o.charge_paise !== undefined) cols['charge_paise'] = o.charge_paise === null ? null : o.charge_paise.toString();
  if (o.last_error !== undefined) cols['last_error'] = o.last_error;
  if (o.state === 'approved' || o.state === 'rejected' || o.state === 'failed' || o.state === 'cancelled') cols['finalized_at'] = db.fn.now();
  if (o.state === 'pending') cols['next_poll_at'] = db.raw(`now() + (? * interval '1 millisecond')`, [Math.round(o.nextPollInMs ?? 0)]);
  if (o.sends) cols['send_count'] = db.raw('send_count + ?', [o.sends]);
  if (o.restoreSendDeadline) cols['send_deadline'] = o.restoreSendDeadline.to;
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
 * Applies a status learned from the API to a row outside a claim (polling, reconcile, webhooks), as the
 * named move (src/engine/machine.ts MOVES: poll, adopt, collision, review_age): status only moves forward,
 * from the states the move names (or only from `state`, the one the row was read in).
 */
export async function advance(db: Knex, move: Move, id: string, o: Outcome, state?: RowState): Promise<boolean> {
  const { updated_at: _u, state: to, ...cols } = outcomeColumns(db, o) as { state: RowState; updated_at: unknown } & Record<string, unknown>;
  return (await applyMove(db, move, { ids: [id], ...(state !== undefined ? { state } : {}) }, { state: to, ...cols })) === 1;
}

function sortByRow<T extends PayoutRow>(rows: T[]): T[] {
  return rows.sort((a, b) => a.row_no - b.row_no || Number(a.id) - Number(b.id));
}
