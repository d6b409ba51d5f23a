import { BatchNotFoundError, UsageError } from '../errors.js';
import { getBatch, markCancelled, recordDecision } from '../db/batches.js';
import { cancelUnsent } from '../db/rows.js';
import type { EngineDeps } from './context.js';
import { runBatch, type RunOptions, type RunResult } from './run.js';
import { DEFAULT_TIME_ZONE, localTime } from '../report/time.js';

/**
 * An operator's decisions on a batch, for the CLI and (later) a web console where one person uploads and
 * another approves.
 */

/** Approves the batch's current revision: later unattended runs (and a batch declined at a prompt) may pay it. */
export async function approveBatch(deps: Pick<EngineDeps, 'db'>, batch: string, note: string): Promise<void> {
  const b = await getBatch(deps.db, batch);
  if (!b) throw new BatchNotFoundError(`no batch named "${batch}": \`payouts status\` lists them`);
  if (b.cancelled_at) throw new UsageError(`batch "${batch}" was cancelled on ${localTime(b.cancelled_at, DEFAULT_TIME_ZONE)}: a cancelled batch is never paid; start a new one`);
  await recordDecision(deps.db, batch, 'approved', note, 'approve');
}

export interface CancelResult extends RunResult {
  /** Rows that were never sent and now never will be. */
  cancelledNow: number;
}

/**
 * Stops a batch for good: rows never sent become `cancelled`; rows whose request may be at the API are
 * resolved by status (adopted if they exist, cancelled if they certainly do not), never abandoned; pending
 * payouts are polled as usual. Safe to run again.
 */
export async function cancelBatch(opts: Omit<RunOptions, 'csvPath' | 'yes' | 'confirm' | 'dryRun' | 'revise'>, deps: EngineDeps): Promise<CancelResult> {
  const b = await getBatch(deps.db, opts.batch);
  if (!b) throw new BatchNotFoundError(`no batch named "${opts.batch}": \`payouts status\` lists them`);
  await markCancelled(deps.db, opts.batch);
  const cancelledNow = await cancelUnsent(deps.db, opts.batch);
  const res = await runBatch({ ...opts, yes: false }, deps);
  return { ...res, cancelledNow };
}
