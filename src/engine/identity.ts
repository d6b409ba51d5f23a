import { createHash } from 'node:crypto';
import type { BatchRecord } from '../db/batches.js';

/**
 * A batch's identity: the scope its derived order_ids hash besides the payment, fixed when the batch is
 * created and stored with it.
 *
 * Since issue 17 it is "v3:<month>" (the month, India time, the batch was created in), or
 * "v3:<month>:<salt>" when a person passed --allow-duplicate-file (the salt is a hash of the batch name
 * they chose): the order_id is then what the payment is (src/batch/orderId.ts derivePaymentOrderId), so
 * the same payment prepared in another database this month, under another batch name, from a re-saved
 * copy, gets the same order_id and the API refuses it ("already taken": a collision, never adopted, never
 * paid twice). Next month is a new scope: the same fixed salaries get new ids and are paid.
 *
 * Why derived and not random: a run from another directory or machine, or after the database was lost,
 * derives the same order_ids, and the API's order_id uniqueness then stops a second payment. A random id
 * would pay everyone again.
 *
 * Batches created before keep what they stored: a hash of name, file sha256 and month (or nothing: their
 * name), and their derivation (`batchKey`).
 */
export function batchIdentity(createdAt: Date, salt?: string): string {
  const month = new Date(createdAt.getTime() + 330 * 60_000).toISOString().slice(0, 7);
  if (salt === undefined) return `v3:${month}`;
  return `v3:${month}:${createHash('sha256').update(JSON.stringify(['payout-salt/v3', salt])).digest('base64url').slice(0, 16)}`;
}

/** True for a batch whose order_ids derive from the payment (created since issue 17). */
export function derivesByPayment(b: Pick<BatchRecord, 'identity'>): boolean {
  return b.identity !== null && b.identity.startsWith('v3:');
}

/**
 * The key derived order_ids of a revision hash. By payment: the scope, every revision alike (an id is
 * never reused: ingest moves past the ids the database holds). Older batches: the identity for the first
 * file, and the identity with the revision for lines a corrected copy adds (so they never take an order_id
 * an earlier row had); batches made before identities existed use their name, as they always did.
 */
export function batchKey(b: Pick<BatchRecord, 'name' | 'identity'>, revision: number): string {
  if (derivesByPayment(b)) return b.identity!;
  const base = b.identity ?? b.name;
  return revision <= 1 ? base : `${base}:r${revision}`;
}
