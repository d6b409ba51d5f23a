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
import { isAlive } from '../db/connect.js';
import type { Runner } from './context.js';
import { outcomeOf, payoutRequestOf } from './payout.js';
import { hostname } from 'node:os';

/** The API stayed unreachable (or kept refusing with 429) through every retry: stop sending. */
export class ApiUnavailableError extends Error {
  override name = 'ApiUnavailableError';
}

/** This runner lost its claim on a row (lease expired, another runner took it): it must not act on it. */
class LeaseLostError extends Error {
  override name = 'LeaseLostError';
}

/** Tracks a claim's lease with the local clock, renewing it in the database before a send when needed. */
class Lease {
  private validUntil: number;
  constructor(
    private readonly runner: Runner,
    private readonly row: Claimed,
  ) {
    // The claim's lease started at db_now; locally we count from now (a little later: conservative).
    this.validUntil = Date.now() + runner.options.leaseMs;
  }

  /** A send may start only if it can finish (timeout) before the lease ends; else renew first. */
  async ensureForSend(): Promise<void> {
    const { leaseMs, requestTimeoutMs, leaseMarginMs } = this.runner.options;
    if (Date.now() + requestTimeoutMs + leaseMarginMs < this.validUntil) return;
    const started = Date.now();
    const until = await renewForSend(this.runner.db, this.row.id, this.row.fence, leaseMs);
    if (!until) throw new LeaseLostError(`lost the claim on ${this.row.order_id}`);
    this.validUntil = started + leaseMs;
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
 * `fresh` rows were `ready` a moment ago: nothing was ever sent for them, so the first send needs no
 * question. `recover` rows were left `submitting` by a runner that died or gave up: a request may have
 * reached the API, so status is asked first and a 404 is trusted only after the grace period.
 */
export async function processRow(runner: Runner, row: Claimed, mode: 'fresh' | 'recover'): Promise<void> {
  const { db, logger, options } = runner;
  const orderId = row.order_id!;
  const lease = new Lease(runner, row);
  const prepared = runner.client.preparePayout(payoutRequestOf(row));
  let sends = 0;
  // Local time after which no request of ours for this row can still arrive at the server.
  let sentBoundary = mode === 'recover' ? recoveryBoundary(row) : 0;
  let askFirst = mode === 'recover';

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

  if (mode === 'fresh') runner.checkpoint('intent_committed', orderId);
  try {
    for (;;) {
      if (askFirst) {
        const r = await resolveByStatus(runner, orderId, sentBoundary, (ms) => lease.hold(ms));
        runner.assertAlive();
        if (r.kind === 'found') {
          await commit(outcomeOf(row, r.info));
          runner.checkpoint('outcome_committed', orderId);
          return;
        }
        if (r.kind === 'unknown') return await leave(r.error);
        askFirst = false;
      }
      if (sends >= options.maxSendsPerRow) {
        return await leave(`sent ${sends} times and not found by status each time: an operator must check`);
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
        if (err instanceof ValidationError && err.orderIdTaken) {
          // A payout with this order_id exists (perhaps an earlier attempt of ours): adopt it.
          logger.info({ orderId }, 'order_id already used at the API: adopting it via status');
          sentBoundary = Date.now();
          askFirst = true;
          continue;
        }
        if (err.ambiguous) {
          logger.warn({ orderId, err: err.message }, 'outcome unknown: asking status before anything else');
          sentBoundary = Date.now();
          askFirst = true;
          continue;
        }
        if (err instanceof AuthenticationError) {
          // Refused before execution: the payout does not exist; the row can be sent by a later run.
          await commit({ state: 'ready', last_error: err.message });
          throw err;
        }
        if (err.retryable) {
          // 429s or refused connections through every retry: nothing was executed.
          await commit({ state: 'ready', last_error: err.message });
          throw new ApiUnavailableError(err.message, { cause: err });
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
  const grace = runner.options.ambiguousGraceMs;
  for (;;) {
    try {
      const info = await withRetry(() => runner.api(() => runner.client.payoutStatus(orderId, { signal: runner.signal })), {
        ...runner.options.retry,
        signal: runner.signal,
      });
      return { kind: 'found', info };
    } catch (err) {
      runner.assertAlive();
      if (err instanceof NotFoundError) {
        const left = sentBoundary + grace - Date.now();
        if (left <= 0) return { kind: 'absent' };
        await wait(left);
        continue;
      }
      return { kind: 'unknown', error: `status unavailable: ${(err as Error).message}` };
    }
  }
}

/**
 * For a row another runner left `submitting`: the last moment it could have sent. A dead process on this
 * host sent nothing after it died (now at the latest); otherwise the claim's send deadline bounds it.
 */
function recoveryBoundary(row: Claimed): number {
  const offset = Date.now() - new Date(row.db_now).getTime();
  const deadline = row.send_deadline ? new Date(row.send_deadline).getTime() + offset : Date.now();
  return row.prev_owner && ownerIsDead(row.prev_owner) ? Math.min(deadline, Date.now()) : deadline;
}

/** "host:pid:nonce" of a process on this host that no longer runs. */
export function ownerIsDead(owner: string): boolean {
  const [host, pid] = owner.split(':');
  return host === hostname() && !isAlive(Number(pid));
}
