import type { Knex } from 'knex';

export interface Reservation {
  /** First reserved slot, database time. */
  first: Date;
  /** Milliseconds between the reserved slots (the base interval over the current factor). */
  intervalMs: number;
  /** The database's clock when the reservation was made. */
  dbNow: Date;
}

/**
 * Reserves `n` consecutive request slots of the account's shared budget, `baseIntervalMs / factor` apart,
 * starting at the next free slot (or now). The factor climbs back by `recoverPerSecond` per second since
 * the last change. One statement, the budget's row locked for its duration.
 */
export async function reserveSlots(db: Knex, account: string, n: number, baseIntervalMs: number, recoverPerSecond: number): Promise<Reservation> {
  await db.raw('INSERT INTO rate_budget (account) VALUES (?) ON CONFLICT (account) DO NOTHING', [account]);
  const res = await db.raw(
    `WITH cur AS (
       SELECT account, greatest(next_at, now()) AS start,
              least(1.0::float8, factor + ?::float8 * extract(epoch FROM (now() - updated_at))::float8) AS f
         FROM rate_budget WHERE account = ? FOR UPDATE)
     UPDATE rate_budget r SET factor = cur.f, updated_at = now(),
            next_at = cur.start + (?::float8 * ?::float8 / cur.f) * interval '1 millisecond'
       FROM cur WHERE r.account = cur.account
     RETURNING cur.start AS first, (?::float8 / cur.f) AS interval_ms, now() AS db_now`,
    [recoverPerSecond, account, n, baseIntervalMs, baseIntervalMs],
  );
  const r = (res.rows as { first: Date; interval_ms: number; db_now: Date }[])[0]!;
  return { first: new Date(r.first), intervalMs: Number(r.interval_ms), dbNow: new Date(r.db_now) };
}

/** A 429: every runner sharing the budget waits out Retry-After and the rate is halved. */
export async function budgetRateLimited(db: Knex, account: string, retryAfterMs: number, minFactor: number): Promise<void> {
  await db.raw(
    `UPDATE rate_budget SET factor = greatest(?::float8, factor / 2), updated_at = now(),
            next_at = greatest(next_at, now() + (?::float8 * interval '1 millisecond'))
      WHERE account = ?`,
    [minFactor, retryAfterMs, account],
  );
}
