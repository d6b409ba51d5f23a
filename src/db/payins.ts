import type { Knex } from 'knex';

/**
 * One line of `payins` as the database returns it. bigint columns come back as strings from pg and as
 * numbers from PGlite: read them with BigInt() (exact either way below 2^53 paise, far above any payin).
 */
export interface PayinRow {
  id: string | number;
  order_id: string;
  user_id: string | null;
  amount_paise: string | number | null;
  request_amount_paise: string | number | null;
  method: string | null;
  utr: string | null;
  bank_upi: string | null;
  bank_name: string | null;
  status: string;
  comments: string | null;
  time_of_processing: string | null;
  api_created_at: Date | null;
  api_updated_at: Date | null;
  first_seen_at: Date;
  updated_at: Date;
  last_checked_at: Date;
  raw_event: unknown;
  raw_response: unknown;
}

/** What the payin status API said, as the engine hands it over (money in paise). */
export interface PayinFacts {
  orderId: string;
  userId: string | null;
  amountPaise: bigint | null;
  requestAmountPaise: bigint | null;
  method: string | null;
  utr: string | null;
  bankUpi: string | null;
  bankName: string | null;
  status: string;
  comments: string | null;
  timeOfProcessing: string | null;
  /** ISO times as the API sends them; unparsable ones are stored as NULL (raw_response keeps the text). */
  apiCreatedAt: string | null;
  apiUpdatedAt: string | null;
  rawResponse: unknown;
}

/**
 * - inserted: first time seen.
 * - advanced: the status moved forward (Pending -> Approved/Rejected).
 * - refreshed: same status, the other fields updated from the API.
 * - unchanged: the API reported a status behind the stored one (a final one stays final); nothing changed
 *   but last_checked_at.
 */
export type PayinStoreOutcome = 'inserted' | 'advanced' | 'refreshed' | 'unchanged';

/** Approved and Rejected are final; everything else (Pending, the webhook's Initiated, unknown) is not. */
const RANK = (col: string) => `(CASE lower(${col}) WHEN 'approved' THEN 1 WHEN 'rejected' THEN 1 ELSE 0 END)`;

export function isFinalPayinStatus(status: string): boolean {
  const s = status.toLowerCase();
  return s === 'approved' || s === 'rejected';
}

function isoOrNull(v: string | null): string | null {
  if (!v) return null;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : new Date(t).toISOString();
}

/**
 * Stores what the API said about a payin, in one statement. The status only moves forward: a final
 * status (Approved, Rejected) is never replaced by another, and a late Pending never overwrites it.
 * `event` (which webhook hinted at it, and when) is recorded even when nothing else changes.
 */
export async function upsertPayin(
  db: Knex,
  p: PayinFacts,
  event?: { event: string; receivedAt: Date },
): Promise<{ outcome: PayinStoreOutcome; previousStatus: string | null; row: PayinRow }> {
  const rawEvent = event ? JSON.stringify({ event: event.event, received_at: event.receivedAt.toISOString() }) : null;
  const result = await db.raw(
    `WITH old AS (SELECT status FROM payins WHERE order_id = ?)
     INSERT INTO payins AS p (order_id, user_id, amount_paise, request_amount_paise, method, utr, bank_upi, bank_name, status,
                              comments, time_of_processing, api_created_at, api_updated_at, raw_event, raw_response)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?::jsonb, ?::jsonb)
     ON CONFLICT (order_id) DO UPDATE SET
       user_id = EXCLUDED.user_id, amount_paise = EXCLUDED.amount_paise, request_amount_paise = EXCLUDED.request_amount_paise,
       method = EXCLUDED.method, utr = EXCLUDED.utr, bank_upi = EXCLUDED.bank_upi, bank_name = EXCLUDED.bank_name,
       status = EXCLUDED.status, comments = EXCLUDED.comments, time_of_processing = EXCLUDED.time_of_processing,
       api_created_at = EXCLUDED.api_created_at, api_updated_at = EXCLUDED.api_updated_at,
       raw_event = coalesce(EXCLUDED.raw_event, p.raw_event), raw_response = EXCLUDED.raw_response,
       updated_at = now(), last_checked_at = now()
     WHERE ${RANK('p.status')} < ${RANK('EXCLUDED.status')} OR (${RANK('p.status')} = 0 AND ${RANK('EXCLUDED.status')} = 0) OR p.status = EXCLUDED.status
     RETURNING p.*, (SELECT status FROM old) AS previous_status`,
    [
      p.orderId,
      p.orderId,
      p.userId,
      p.amountPaise === null ? null : p.amountPaise.toString(),
      p.requestAmountPaise === null ? null : p.requestAmountPaise.toString(),
      p.method,
      p.utr,
      p.bankUpi,
      p.bankName,
      p.status,
      p.comments,
      p.timeOfProcessing,
      isoOrNull(p.apiCreatedAt),
      isoOrNull(p.apiUpdatedAt),
      rawEvent,
      JSON.stringify(p.rawResponse ?? null),
    ],
  );
  const returned = (result.rows as Array<PayinRow & { previous_status: string | null }>)[0];
  if (returned) {
    const { previous_status: previousStatus, ...row } = returned;
    const outcome: PayinStoreOutcome = previousStatus === null ? 'inserted' : previousStatus === row.status ? 'refreshed' : 'advanced';
    return { outcome, previousStatus, row };
  }
  // The API said something behind what is stored: keep the stored status, note the check (and the hint).
  const [row] = (await db('payins')
    .where({ order_id: p.orderId })
    .update({ last_checked_at: db.fn.now(), ...(rawEvent ? { raw_event: db.raw('?::jsonb', [rawEvent]) } : {}) })
    .returning('*')) as PayinRow[];
  return { outcome: 'unchanged', previousStatus: row!.status, row: row! };
}

export async function getPayin(db: Knex, orderId: string): Promise<PayinRow | undefined> {
  return db<PayinRow>('payins').where({ order_id: orderId }).first();
}

export interface PayinFilter {
  /** Case-insensitive. */
  status?: string | undefined;
  /** Payins created (at the API; else first seen) at or after this instant. */
  since?: Date | undefined;
  limit?: number | undefined;
}

/** Newest first. */
export async function listPayins(db: Knex, f: PayinFilter = {}): Promise<PayinRow[]> {
  const q = db<PayinRow>('payins');
  if (f.status) q.whereRaw('lower(status) = lower(?)', [f.status]);
  if (f.since) q.whereRaw('coalesce(api_created_at, first_seen_at) >= ?', [f.since.toISOString()]);
  q.orderByRaw('coalesce(api_created_at, first_seen_at) DESC, id DESC');
  if (f.limit) q.limit(f.limit);
  return q;
}
