import type { RateGate } from '../alliance/gate.js';
import { sleep } from '../alliance/retry.js';
import { rowByOrderId } from '../db/rows.js';
import type { Runner } from './context.js';
import { refreshRow } from './poll.js';

/** What a payout hint led to, counted by the receiver. */
export type PayoutHintOutcome = 'refreshed' | 'unknown_order' | 'already_final' | 'not_pending' | 'in_progress';

export interface PayoutHint {
  orderId: string;
  /** The event as sent ("payout.succeeded"): a claim, never acted on. */
  event: string;
  receivedAt?: Date;
}

/**
 * A payout webhook is a hint, never a fact: the API documents no webhook signature, so anyone could send
 * "payout.succeeded". A hint only schedules one authenticated status check for that order_id, through the
 * runner's rate gate, and only the API's answer moves the row (forward only). Unknown order_ids, final
 * rows, duplicates and reordered events cost at most that one check.
 *
 * A webhook can overtake the answer to our own initiate (the row is still `submitting`): the check waits a
 * little for the row to become pending, then leaves it to the polling fallback.
 */
export function payoutHintHandler(
  runner: Runner,
  opts: { submittingWaitMs?: number; gate?: RateGate | undefined } = {},
): (hint: PayoutHint, stopping?: AbortSignal) => Promise<PayoutHintOutcome> {
  const waitFor = opts.submittingWaitMs ?? 3_000;
  // In a run, a hint's check of one of its pending payouts is that payout's poll, brought forward: it goes
  // with the polls. `payouts webhooks` sends no payouts and passes the hint lane.
  const gate = opts.gate ?? runner.gate;
  // A duplicate delivery while that payout's check is under way adds nothing: one check answers both.
  const checking = new Set<string>();
  return async (hint, stopping) => {
    if (checking.has(hint.orderId)) return 'in_progress';
    checking.add(hint.orderId);
    try {
      return await check(hint, stopping);
    } finally {
      checking.delete(hint.orderId);
    }
  };

  async function check(hint: PayoutHint, stopping: AbortSignal | undefined): Promise<PayoutHintOutcome> {
    const until = Date.now() + waitFor;
    for (;;) {
      const row = await rowByOrderId(runner.db, hint.orderId);
      if (!row) return 'unknown_order';
      if (row.state === 'pending') {
        const state = await refreshRow(runner, row, gate);
        // How long payouts take to their webhook sets when the fallback poll comes (engine/schedule.ts).
        if (state !== 'pending' && row.first_sent_at && hint.receivedAt) {
          runner.schedule.observeWebhook(hint.receivedAt.getTime() - new Date(row.first_sent_at).getTime());
        }
        runner.wake();
        return 'refreshed';
      }
      // A stop does not wait out a row still submitting: the polls (a later run's) see to it.
      if (row.state !== 'submitting' || Date.now() >= until || stopping?.aborted) return row.state === 'submitting' ? 'not_pending' : 'already_final';
      await sleep(200, runner.signal);
    }
  }
}
