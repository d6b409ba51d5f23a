import { createHash } from 'node:crypto';
import type { BatchRecord } from '../db/batches.js';

/**
 * A batch's identity: what its derived order_ids hash besides the payout. The name alone is not enough
 * (next month's payroll.csv would derive last month's order_ids, the API would answer "already taken", and
 * an adopted old payout would be reported as this month's). So the identity is the name, the file's sha256
 * and the month (India time) the batch was created in, fixed then and stored with the batch.
 *
 * Why derived and not random: a run from another directory or machine, or after the database was lost,
 * derives the same order_ids for the same file in the same month, and the API's order_id uniqueness then
 * stops a second payment (the collision is reported, never adopted). A random id would pay everyone again.
 */
export function batchIdentity(name: string, fileSha256: string, createdAt: Date): string {
  const month = new Date(createdAt.getTime() + 330 * 60_000).toISOString().slice(0, 7);
  return createHash('sha256').update(JSON.stringify(['payout-batch/v2', name, fileSha256, month])).digest('base64url').slice(0, 22);
}

/**
 * The key derived order_ids of a revision hash: the identity for the first file, and the identity with the
 * revision for lines a corrected copy adds (so they never take an order_id an earlier row had). Batches
 * made before identities existed use their name, as they always did.
 */
export function batchKey(b: Pick<BatchRecord, 'name' | 'identity'>, revision: number): string {
  const base = b.identity ?? b.name;
  return revision <= 1 ? base : `${base}:r${revision}`;
}
