import {
  AllianceError,
  AuthenticationError,
  NotFoundError,
  ValidationError,
} from '../alliance/errors.js';
import type { PreparedRequest } from '../alliance/client.js';
import { sleep, withRetry } from '../alliance/retry.js';
import type { PayoutInfo } from '../alliance/types.js';
import { commitOutcome, extendLease, releaseLease, renewForSend, type Claimed, type Outcome } from '../db/rows.js';
import { ownerIsDead } from './owner.js';
import type { Runner } from './context.js';
import { outcomeOf, payoutRequestOf } from './payout.js';

/** The API stayed unreachable (or kept refusing with 429) through every retry: stop sending. */
export class ApiUnavailableError extends Error {
  override name = 'ApiUnavailableError';
}

/** This runner lost its claim on a row (lease expired, another runner took it): it must not act on it. */
class LeaseLostError extends Error {
  override name = 'LeaseLostError';
}

/** Tracks a claim's lease with the local clock, and renews it in the database before every send. */
class Lease {
  private validUntil: number;
  /** The claim's own send deadline still covers a send: true only for a fresh claim, until its first send. */
  private claimCoversSend: boolean;
  constructor(
    private readonly runner: Runner,
    private readonly row: Claimed,
    claimStartedAt: number,
    fresh: boolean,
  ) {
    // Counted from before the claim query: the database's lease began no earlier than that.
    this.validUntil = claimStartedAt + runner.options.leaseMs;
    this.claimCoversSend = fresh;
  }

  /**
   * Renews the lease right before a send: the fence is checked at the last moment (a runner that was taken
   * over sends nothing) and the row's send deadline moves past the end of this send. The one exception is
   * the first send of a fresh claim made moments ago, whose claim already set both and cannot have been
   * taken over before its lease ends.
   */
  async ensureForSend(): Promise<void> {
    const { requestTimeoutMs, leaseMarginMs } = this.runner.options;
    const coveredByClaim = this.claimCoversSend && Date.now() + requestTimeoutMs + leaseMarginMs < this.validUntil;
    this.claimCoversSend = false;
    if (coveredByClaim) return;
    const started = Date.now();
    const until = await renewForSend(this.runner.db, this.row.id, this.row.fence, this.runner.options.leaseMs);
    if (!until) throw new LeaseLostError(`lost the claim on ${this.row.order_id}`);
    this.validUntil = started + this.runner.options.leaseMs;
  }

  /** Waits `ms` while keeping the claim: the lease is extended before it could run out. */
  async hold(ms: number): Promise<void> {
    const { leaseMs, leaseMarginMs } = this.runner.options;
    const end = Date.now() + ms;
    for (;;) {
      const left = end - Date.now();
      if (left <= 0) return;
      if (Date.now() + Math.min(left, leaseMs / 2) + leaseMarginMs >= this.validUntil) {
        const started = Date.now();
        if (!(await extendLease(this.runner.db, this.row.id, this.row.fence, leaseMs))) {
          throw new LeaseLostError(`lost the claim on ${this.row.order_id}`);
        }
        this.validUntil = started + leaseMs;
      }
      await sleep(Math.min(left, leaseMs / 2), this.runner.signal);
    }
  }
}

type Resolution = { kind: 'found'; info: PayoutInfo } | { kind: 'absent' } | { kind: 'unknown'; error: string };

/**
 * Takes one claimed row to an outcome, or leaves it `submitting` when the outcome cannot be known now.
 *
 * `fresh` rows were `ready` and never claimed before: nothing was ever sent for them, so the first send
 * needs no question. `recover` rows may have a request at the API (left `submitting` by a runner that died
 * or gave up, or claimed before and put back): status is asked first, and a 404 is trusted only once the
 * grace period after the last possible send has passed.
 */
export async function processRow(runner: Runner, row: Claimed, mode: 'fresh' | 'recover', claimStartedAt = Date.now()): Promise<void> {
  const { db, logger, options } = runner;
  const orderId = row.order_id!;
  const lease = new Lease(runner, row, claimStartedAt, mode === 'fresh');
  const prepared = runner.client.preparePayout(payoutRequestOf(row));
  const priorSends = Number(row.send_count);
  let sends = 0;
  // Whether a request for this order_id may exist at the API, and the local time after which no request
  // of ours can still arrive there.
  let maybeSent = mode === 'recover';
  let sentBoundary = mode === 'recover' ? recoveryBoundary(row) : 0;
  let askFirst = maybeSent;

  const commit = async (o: Outcome): Promise<void> => {
    runner.assertAlive();
    const ok = await commitOutcome(db, row.id, row.fence, { ...o, sends });
    if (!ok) logger.warn({ orderId }, 'outcome not committed: the claim was lost (another runner will resolve it)');
  };
  const leave = async (why: string): Promise<void> => {
    runner.assertAlive();
    await releaseLease(db, row.id, row.fence, why, sends);
    logger.warn({ orderId, why }, 'payout left unresolved (submitting); a later run or reconcile resolves it');
  };
  /** Status first; true when the row is settled (adopted or left), false when the API has no such payout. */
  const settledByStatus = async (): Promise<boolean> => {
    const r = await resolveByStatus(runner, orderId, sentBoundary, (ms) => lease.hold(ms));
    runner.assertAlive();
    if (r.kind === 'found') {
      await commit(outcomeOf(row, r.info));
      runner.checkpoint('outcome_committed', orderId);
      return true;
    }
    if (r.kind === 'unknown') {
      await leave(r.error);
      return true;
    }
    return false;
  };

  if (mode === 'fresh') runner.checkpoint('intent_committed', orderId);
  try {
    for (;;) {
      if (askFirst) {
        if (await settledByStatus()) return;
        askFirst = false;
      }
      if (priorSends + sends >= options.maxSendsPerRow) {
        await commit({
          state: 'needs_review',
          last_error: `sent ${priorSends + sends} times and each time the API later had no such payout: check with Alliance before paying this row again`,
        });
        return;
      }
      try {
        const info = await sendOnce(runner, lease, prepared, orderId, () => {
          sends++;
        });
        runner.checkpoint('response_received', orderId);
        await commit(outcomeOf(row, info));
        runner.checkpoint('outcome_committed', orderId);
        return;
      } catch (err) {
        if (!(err instanceof AllianceError)) throw err;
        runner.assertAlive();
        if ((err instanceof ValidationError && err.orderIdTaken) || err.ambiguous) {
          // Taken: a payout with this order_id exists (perhaps an earlier attempt of ours), adopt it.
          // Ambiguous: it may have been created. Either way, status before anything else.
          logger.warn({ orderId, err: err.message }, 'outcome unknown: asking status before anything else');
          maybeSent = true;
          sentBoundary = Date.now();
          askFirst = true;
          continue;
        }
        // A definite answer: this request was not executed. An earlier one of ours may have been.
        if (maybeSent && (await settledByStatus())) return;
        if (err instanceof AuthenticationError || err.retryable) {
          // Refused before execution (401, or 429s / refused connections through every retry).
          if (maybeSent) await leave(err.message);
          else await commit({ state: 'ready', last_error: err.message });
          throw err instanceof AuthenticationError ? err : new ApiUnavailableError(err.message, { cause: err });
        }
        await commit({ state: 'failed', api_message: err.message, last_error: err.message });
        runner.checkpoint('outcome_committed', orderId);
        return;
      }
    }
  } catch (err) {
    if (err instanceof LeaseLostError) {
      logger.warn({ orderId }, err.message);
      return;
    }
    throw err;
  }
}

/**
 * One send with retries for what certainly was not executed (429, connection refused); an ambiguous
 * error comes straight back. Each attempt renews the lease if needed and is re-signed over the same bytes.
 */
async function sendOnce(
  runner: Runner,
  lease: Lease,
  prepared: PreparedRequest,
  orderId: string,
  onSend: () => void,
): Promise<PayoutInfo> {
  return withRetry(
    () =>
      runner.api(async () => {
        await lease.ensureForSend();
        runner.assertAlive();
        onSend();
        const p = runner.client.initiatePayout(prepared, { signal: runner.signal });
        // A crash right here abandons the request: it dies with the runner, as in a killed process.
        p.catch(() => {});
        runner.checkpoint('request_sent', orderId);
        return p;
      }),
    {
      ...runner.options.retry,
      signal: runner.signal,
      onRetry: (e, attempt, delayMs) =>
        runner.logger.info({ orderId, attempt, delayMs, err: e.message }, 'payout initiate will be retried'),
    },
  );
}

/**
 * Asks the API whether a payout exists. A 404 counts as "never created" only once `sentBoundary + grace`
 * has passed; before that it is asked again, since a request may still be on its way through the server.
 */
export async function resolveByStatus(
  runner: Runner,
  orderId: string,
  sentBoundary: number,
  wait: (ms: number) => Promise<void> = (ms) => sleep(ms, runner.signal),
): Promise<Resolution> {
  const trustFrom = sentBoundary + runner.options.ambiguousGraceMs;
  for (;;) {
    // A 404 describes the server when the question was asked, not when the answer came back.
    let askedAt = 0;
    try {
      const info = await withRetry(
        () =>
          runner.api(() => {
            askedAt = Date.now();
            return runner.client.payoutStatus(orderId, { signal: runner.signal });
          }),
        { ...runner.options.retry, signal: runner.signal },
      );
      return { kind: 'found', info };
    } catch (err) {
      runner.assertAlive();
      if (err instanceof NotFoundError) {
        if (askedAt >= trustFrom) return { kind: 'absent' };
        await wait(Math.max(0, trustFrom - Date.now()));
        continue;
      }
      if (err instanceof AuthenticationError) throw err;
      return { kind: 'unknown', error: `status unavailable: ${(err as Error).message}` };
    }
  }
}

/**
 * For a row that may have been sent: the last moment a request for it could have left. A dead process on
 * this host sent nothing after it died (now at the latest); otherwise the last claim's send deadline bounds
 * it (for a row put back to ready and claimed again, the deadline of its previous claim).
 */
function recoveryBoundary(row: Claimed): number {
  const offset = Date.now() - new Date(row.db_now).getTime();
  const prev = row.prev_first_claimed_at !== undefined ? row.prev_send_deadline : row.send_deadline;
  const deadline = prev ? new Date(prev).getTime() + offset : Date.now();
  return row.prev_owner && ownerIsDead(row.prev_owner) ? Math.min(deadline, Date.now()) : deadline;
}

