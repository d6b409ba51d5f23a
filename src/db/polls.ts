import type { Knex } from 'knex';
import type { PayoutRow } from './rows.js';

/**
 * Takes up to `limit` pending rows whose poll is due, oldest first, for this runner alone: their next poll
 * moves `holdMs` ahead, so runners sharing a batch never ask about the same payout at once (a runner that
 * dies mid-poll leaves the row due again after `holdMs`). The poll's answer then sets the real next time.
 */
export async function claimDuePolls(db: Knex, batch: string, limit: number, holdMs: number): Promise<PayoutRow[]> {
  const res = await db.raw(
    `UPDATE payout_rows SET next_poll_at = now() + (? * interval '1 millisecond')
      WHERE id IN (SELECT id FROM payout_rows
                    WHERE batch = ? AND state = 'pending' AND (next_poll_at IS NULL OR next_poll_at <= now())
                    ORDER BY next_poll_at, id LIMIT ? FOR UPDATE SKIP LOCKED)
      RETURNING *`,
    [Math.round(holdMs), batch, limit],
  );
  return res.rows as PayoutRow[];
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

/** Makes a pending row due now (a webhook hinted that it changed). False when it is not pending. */
export async function pollNow(db: Knex, batch: string, orderId: string): Promise<boolean> {
  const n = await db('payout_rows').where({ batch, order_id: orderId, state: 'pending' }).update({ next_poll_at: db.fn.now() });
  return n === 1;
}

export async function countPending(db: Knex, batch: string): Promise<number> {
  const r = (await db('payout_rows').where({ batch, state: 'pending' }).count('* as n').first()) as { n: string | number };
  return Number(r.n);
}
