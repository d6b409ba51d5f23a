import { NotFoundError } from '../alliance/errors.js';
import { withRetry } from '../alliance/retry.js';
import { advance, duePending, nextPollInMs, schedulePoll, type PayoutRow } from '../db/rows.js';
import type { Runner } from './context.js';
import { outcomeOf } from './payout.js';
import type { RowState } from '../states.js';
import { sleep } from '../alliance/retry.js';

/** The states a fetched status may move a row out of: only forward, never back from a final state. */
const POLLABLE: RowState[] = ['pending', 'needs_review'];

/**
 * Fetches one payout's status and applies it if it moves the row forward. Also what a webhook receiver
 * calls on a hint: the webhook body itself is never trusted.
 * Returns the row's state afterwards as far as this call knows.
 */
export async function refreshRow(runner: Runner, row: PayoutRow): Promise<RowState> {
  const orderId = row.order_id!;
  try {
    const info = await withRetry(() => runner.api(() => runner.client.payoutStatus(orderId, { signal: runner.signal })), {
      ...runner.options.retry,
      retries: 2,
      signal: runner.signal,
    });
    runner.assertAlive();
    const o = outcomeOf(row, info);
    if (o.state === 'pending') {
      await schedulePoll(runner.db, row.id, nextDelay(runner, row.poll_count));
      return 'pending';
    }
    const moved = await advance(runner.db, row.id, POLLABLE, o);
    if (moved) runner.checkpoint('finalized', orderId);
    return o.state;
  } catch (err) {
    runner.assertAlive();
    const msg =
      err instanceof NotFoundError
        ? `status says order_id ${orderId} does not exist though it was accepted: reconcile will flag it`
        : `status check failed: ${(err as Error).message}`;
    runner.logger.warn({ orderId, err: (err as Error).message }, 'poll failed; will retry');
    await schedulePoll(runner.db, row.id, nextDelay(runner, row.poll_count), msg);
    return row.state;
  }
}

function nextDelay(runner: Runner, pollCount: number): number {
  const { pollIntervalMs, pollMaxIntervalMs } = runner.options;
  return Math.min(pollMaxIntervalMs, pollIntervalMs * 1.5 ** pollCount);
}

/**
 * Polls every pending row of a batch until none is left or the deadline passes.
 * Returns the number still pending.
 */
export async function pollUntilFinal(
  runner: Runner,
  batch: string,
  deadline: number,
  stop?: AbortSignal,
): Promise<number> {
  const limit = Math.max(10, runner.options.concurrency * 4);
  for (;;) {
    runner.assertAlive();
    if (Date.now() >= deadline || stop?.aborted) return duePendingCount(runner, batch);
    const due = await duePending(runner.db, batch, limit);
    if (due.length > 0) {
      await Promise.all(due.map((r) => refreshRow(runner, r)));
      continue;
    }
    const next = await nextPollInMs(runner.db, batch);
    if (next === undefined) return 0;
    const left = deadline - Date.now();
    if (left <= 0) continue;
    await sleep(Math.min(next + 5, left), runner.signal);
  }
}

async function duePendingCount(runner: Runner, batch: string): Promise<number> {
  const r = (await runner.db('payout_rows').where({ batch, state: 'pending' }).count('* as n').first()) as { n: string | number };
  return Number(r.n);
}
