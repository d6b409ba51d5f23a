import { NotFoundError } from '../alliance/errors.js';
import type { RateGate } from '../alliance/gate.js';
import { withRetry } from '../alliance/retry.js';
import { advance } from '../db/claims.js';
import { claimDuePolls, countPending, nextPollInMs, schedulePoll } from '../db/polls.js';
import type { PayoutRow } from '../db/rows.js';
import type { RowState } from '../states.js';
import type { Runner } from './context.js';
import { outcomeOf } from './payout.js';
import { MOVES } from './machine.js';


/**
 * Fetches one payout's status and applies it if it moves the row forward. Also what a webhook hint leads
 * to: the webhook body itself is never trusted. Returns the row's state afterwards as far as this call knows.
 * `gate`: the lane of the rate budget the request takes (a poll's by default).
 */
export async function refreshRow(runner: Runner, row: PayoutRow, gate: RateGate = runner.gate): Promise<RowState> {
  const orderId = row.order_id!;
  try {
    const info = await withRetry(() => runner.api(() => runner.client.payoutStatus(orderId, { ...runner.call, gate })), {
      ...runner.options.retry,
      retries: 2,
      signal: runner.signal,
    });
    runner.assertAlive();
    const o = outcomeOf(row, info);
    if (o.state === 'pending') {
      await schedulePoll(runner.db, row.id, runner.schedule.afterCheckMs(row.poll_count));
      return 'pending';
    }
    const moved = await advance(runner.db, MOVES.poll, row.id, o);
    if (moved) {
      runner.checkpoint('finalized', orderId);
      runner.emit({ type: 'row', state: o.state, amountPaise: BigInt(row.amount_paise ?? '0') });
    }
    return o.state;
  } catch (err) {
    runner.assertAlive();
    const msg =
      err instanceof NotFoundError
        ? `status says order_id ${orderId} does not exist though it was accepted: \`payouts reconcile\` flags it`
        : `status check failed: ${(err as Error).message}`;
    runner.logger.warn({ orderId, err: (err as Error).message }, 'poll failed; will retry');
    await schedulePoll(runner.db, row.id, runner.schedule.afterCheckMs(row.poll_count), msg);
    return row.state;
  }
}

export interface PollLoopOptions {
  /** Still sending: keep polling even when nothing is pending right now, and set no deadline yet. */
  sending: () => boolean;
  /** When sending ends, polling may go on this long. */
  pollTimeoutMs: number;
  stop?: AbortSignal | undefined;
}

/**
 * Polls the batch's pending rows while sends go on and after them, until none is pending (and sending
 * has ended), the deadline passes, or a stop is asked. Returns the number still pending.
 */
export async function pollLoop(runner: Runner, batch: string, o: PollLoopOptions): Promise<number> {
  const limit = Math.max(10, runner.options.concurrency * 4);
  let deadline = Infinity;
  for (;;) {
    runner.assertAlive();
    if (o.sending()) deadline = Infinity;
    else if (deadline === Infinity) deadline = Date.now() + o.pollTimeoutMs;
    if (Date.now() >= deadline || o.stop?.aborted) return countPending(runner.db, batch);
    const due = await claimDuePolls(runner.db, batch, limit, 2 * runner.options.requestTimeoutMs + 5_000);
    if (due.length > 0) {
      await Promise.all(due.map((r) => refreshRow(runner, r)));
      continue;
    }
    const next = await nextPollInMs(runner.db, batch);
    if (next === undefined && !o.sending()) return 0;
    // While sending, new pending rows appear at any moment: look again soon. Otherwise at most every 2 s:
    // the next due row may be one another runner is polling (held), which it may finish long before.
    const wait = Math.min(next ?? 100, o.sending() ? 100 : 2000, deadline - Date.now());
    if (wait > 0) await runner.nap(wait + 5, o.stop);
  }
}
