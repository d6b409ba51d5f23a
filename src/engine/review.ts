import type { PayoutRow } from '../db/rows.js';

/**
 * Whether a row has waited past the review age since it was first sent (or first claimed, when no send
 * was recorded): a payout still Pending at the API by then goes to an operator. Kept on its own so the
 * rule is stated once (reconcile uses it; the mutation tests replace it to prove the suite notices).
 */
export function pastReviewAge(row: Pick<PayoutRow, 'first_sent_at' | 'first_claimed_at'>, reviewAfterMs: number, now = Date.now()): boolean {
  const sentAt = row.first_sent_at ?? row.first_claimed_at;
  return sentAt !== null && now - new Date(sentAt).getTime() > reviewAfterMs;
}
