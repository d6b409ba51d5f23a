import { AllianceError, AuthenticationError, NotFoundError, ValidationError } from '../alliance/errors.js';
import type { PreparedRequest } from '../alliance/client.js';
import { ticketTaken, type RateGate, type Ticket } from '../alliance/gate.js';
import { sleep, withRetry } from '../alliance/retry.js';
import { commitOutcome, extendLease, releaseLease, renewForSend, type Claimed } from '../db/claims.js';
import type { Runner } from './context.js';
import { next, start, type End, type Event, type Memory, type Phase } from './machine.js';
import { ownerIsDead } from './owner.js';
import { payoutRequestOf } from './payout.js';

/** The API stayed unreachable (or kept refusing with 429) through every retry: stop sending. */
export class StopSending extends Error {
  constructor(
    readonly reason: 'unavailable' | 'auth',
    message: string,
  ) {
    super(message);
    this.name = 'StopSending';
  }
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

  /**
   * Waits for `p` (a rate slot) while keeping the claim: the lease is extended as the wait goes on. Nothing
   * is sent meanwhile, so the send deadline stays; ensureForSend moves it when the request is about to go.
   */
  async holdUntil<T>(p: Promise<T>): Promise<T> {
    let settled = false;
    const done = p.finally(() => {
      settled = true;
    });
    for (;;) {
      const step = Math.max(1, Math.min(this.runner.options.leaseMs / 3, this.validUntil - Date.now() - this.runner.options.leaseMarginMs));
      await Promise.race([done.catch(() => undefined), sleep(step, this.runner.signal)]);
      if (settled) return done;
      const started = Date.now();
      if (!(await extendLease(this.runner.db, this.row.id, this.row.fence, this.runner.options.leaseMs))) {
        throw new LeaseLostError(`lost the claim on ${this.row.order_id}`);
      }
      this.validUntil = started + this.runner.options.leaseMs;
    }
  }

  /**
   * A rate ticket, the lease kept alive while waiting for it. If the claim is lost meanwhile, the wait is
   * given up and a ticket granted anyway is cancelled (it must never hold a slot it will not use).
   */
  async holdTicket(signal?: AbortSignal): Promise<Ticket> {
    const ctl = new AbortController();
    const both = signal ? AbortSignal.any([signal, this.runner.signal, ctl.signal]) : AbortSignal.any([this.runner.signal, ctl.signal]);
    const p = this.runner.gate.take(both);
    try {
      return await this.holdUntil(p);
    } catch (err) {
      ctl.abort(err);
      p.then((t) => t.cancel(), () => {});
      throw err;
    }
  }

  /** The runner's rate gate, with the lease kept alive while a request waits for its slot. */
  gate(): RateGate {
    return { take: (signal) => this.holdTicket(signal), rateLimited: (ms) => this.runner.gate.rateLimited(ms) };
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

/** The machine's memory for a freshly claimed row. */
export function memoryOf(runner: Runner, row: Claimed): Memory {
  const maySent = row.prev_send_deadline !== null && row.prev_send_deadline !== undefined;
  return {
    maySent,
    sentBoundary: maySent ? recoveryBoundary(row) : 0,
    sends: 0,
    priorSends: Number(row.send_count),
    maxSends: runner.options.maxSendsPerRow,
    mayInitiate: runner.mayInitiate && row.in_file !== false && !row.batch_cancelled,
    ...(row.in_file === false ? { cancelNote: "not in the batch's corrected file: asked about, never sent" } : {}),
    prevSendDeadline: row.prev_send_deadline ?? null,
  };
}

/**
 * Takes one claimed row through the state machine (machine.ts) to a committed outcome, or leaves it
 * `submitting` when its outcome cannot be known now. Throws StopSending after committing when the API
 * stopped taking requests; a crash (CrashError) propagates with nothing committed after it.
 */
export async function processRow(runner: Runner, row: Claimed, claimStartedAt = Date.now()): Promise<End | undefined> {
  let mem = memoryOf(runner, row);
  const lease = new Lease(runner, row, claimStartedAt, !mem.maySent);
  const orderId = row.order_id!;
  let phase: Phase = start(mem);
  if (!mem.maySent) runner.checkpoint('intent_committed', orderId);
  try {
    while (phase.kind !== 'done') {
      const event = await perform(runner, row, phase, mem, lease);
      runner.assertAlive();
      ({ phase, mem } = next(phase, event, mem, row, Date.now()));
    }
  } catch (err) {
    if (err instanceof LeaseLostError) {
      runner.logger.warn({ orderId }, 'lost the claim on a row: another runner resolves it');
      return undefined;
    }
    throw err;
  }
  await finish(runner, row, phase.end);
  return phase.end;
}

async function finish(runner: Runner, row: Claimed, end: End): Promise<void> {
  const orderId = row.order_id!;
  runner.assertAlive();
  if (end.kind === 'commit') {
    // An accepted payout is first asked about after the poll interval (with webhooks, after the time its
    // webhook should have come: engine/schedule.ts): the answer to the initiate was Pending a moment ago.
    const outcome = end.outcome.state === 'pending' ? { ...end.outcome, nextPollInMs: runner.schedule.firstWaitMs() } : end.outcome;
    const ok = await commitOutcome(runner.db, row.id, row.fence, outcome);
    if (!ok) runner.logger.warn({ orderId }, 'outcome not committed: the claim was lost (another runner will resolve it)');
    else runner.checkpoint('outcome_committed', orderId);
    runner.emit({ type: 'row', state: end.outcome.state, amountPaise: BigInt(row.amount_paise ?? '0'), ...(end.outcome.collision ? { collision: true } : {}) });
  } else {
    await releaseLease(runner.db, row.id, row.fence, end.why);
    runner.logger.warn({ orderId, why: end.why }, 'payout left unresolved (submitting); a later run or reconcile asks its status');
    runner.emit({ type: 'row', state: 'submitting', amountPaise: BigInt(row.amount_paise ?? '0') });
  }
  if (end.stop) throw new StopSending(end.stop.kind, end.stop.message);
}

/** The one effect of a phase, as the event the machine reads. */
async function perform(runner: Runner, row: Claimed, phase: Phase, mem: Memory, lease: Lease): Promise<Event> {
  const orderId = row.order_id!;
  switch (phase.kind) {
    case 'resolve':
      return resolveByStatus(runner, orderId, mem.sentBoundary, (ms) => lease.hold(ms), lease.gate());
    case 'inspect':
      return resolveByStatus(runner, orderId, 0, undefined, lease.gate());
    case 'send':
      return sendOnce(runner, lease, runner.client.preparePayout(payoutRequestOf(row)), orderId);
    case 'done':
      throw new Error('nothing to perform in a final phase');
  }
}

/** Thrown inside a send attempt that the run's stop reached before the request left. */
class StoppedBeforeSend extends Error {
  constructor() {
    super('stopped before the request was sent');
  }
}

/**
 * One send with retries for what certainly was not executed (429, connection refused); an ambiguous
 * error comes straight back. Each attempt renews the lease if needed and is re-signed over the same bytes.
 */
async function sendOnce(runner: Runner, lease: Lease, prepared: PreparedRequest, orderId: string): Promise<Event> {
  const stop = runner.stopSending;
  if (stop?.aborted) return { kind: 'stopped' };
  try {
    const info = await withRetry(
      () =>
        runner.api(async () => {
          // The rate slot first (the lease kept meanwhile), then the renewal that records when this send can
          // have happened (send_deadline), then the wire: no request ever leaves after its recorded deadline.
          // An operator's stop while this waits (in the queue or for its slot) sends nothing.
          if (stop?.aborted) throw new StoppedBeforeSend();
          let ticket: Ticket;
          try {
            ticket = await lease.holdTicket(stop);
          } catch (err) {
            if (stop?.aborted && !runner.signal.aborted) throw new StoppedBeforeSend();
            throw err;
          }
          if (stop?.aborted) {
            ticket.cancel();
            throw new StoppedBeforeSend();
          }
          try {
            await lease.ensureForSend();
            runner.assertAlive();
          } catch (err) {
            ticket.cancel();
            throw err;
          }
          // The renewal can be a database round trip: a stop during it still sends nothing. (The deadline it
          // recorded stays until the claim ends: the row then goes back with its send history restored.)
          if (stop?.aborted) {
            ticket.cancel();
            throw new StoppedBeforeSend();
          }
          // The slot is already taken; a 429 still tells the gate to back off.
          const p = runner.client.initiatePayout(prepared, { signal: runner.signal, gate: ticketTaken(ticket, runner.gate) });
          // A crash right here abandons the request: it dies with the runner, as in a killed process.
          p.catch(() => {});
          runner.checkpoint('request_sent', orderId);
          return p;
        }),
      {
        ...runner.options.retry,
        signal: runner.signal,
        onRetry: (e, attempt, delayMs) => runner.logger.info({ orderId, attempt, delayMs, err: e.message }, 'payout initiate will be retried'),
      },
    );
    runner.checkpoint('response_received', orderId);
    return { kind: 'accepted', info };
  } catch (err) {
    if (err instanceof StoppedBeforeSend) return { kind: 'stopped' };
    if (!(err instanceof AllianceError)) throw err;
    runner.assertAlive();
    if (err instanceof ValidationError && err.orderIdTaken) return { kind: 'taken', message: err.message };
    if (err.ambiguous) {
      runner.logger.warn({ orderId, err: err.message }, 'outcome unknown: asking status before anything else');
      return { kind: 'ambiguous', message: err.message };
    }
    if (err instanceof AuthenticationError) return { kind: 'auth_refused', message: err.message };
    if (err.retryable) return { kind: 'unavailable', message: err.message };
    return { kind: 'refused', message: err.message };
  }
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
  gate: RateGate = runner.gate,
): Promise<Event> {
  const trustFrom = sentBoundary + runner.options.ambiguousGraceMs;
  for (;;) {
    // A 404 describes the server when the question was asked, not when the answer came back.
    let askedAt = 0;
    try {
      const info = await withRetry(
        () =>
          runner.api(() => {
            askedAt = Date.now();
            return runner.client.payoutStatus(orderId, { signal: runner.signal, gate });
          }),
        { ...runner.options.retry, signal: runner.signal },
      );
      return { kind: 'found', info };
    } catch (err) {
      runner.assertAlive();
      if (err instanceof NotFoundError) {
        if (askedAt >= trustFrom) return { kind: 'absent' };
        const waitMs = Math.max(0, trustFrom - Date.now());
        // Said once a run: a rerun after a crash sends nothing for the rows it asks about until this has
        // passed, and the person reading the log should know why it seems to wait.
        if (!runner.saidGraceWait) {
          runner.saidGraceWait = true;
          runner.logger.warn(
            { orderId, waitSeconds: Math.ceil(waitMs / 1000) },
            'a payout whose earlier request may still be on its way is not at the API yet: waiting out the grace period (--grace) before trusting that it was never made (other rows like it wait too; nothing is sent for them meanwhile)',
          );
        }
        await wait(waitMs);
        continue;
      }
      if (err instanceof AuthenticationError) return { kind: 'auth_refused', message: err.message };
      if (!(err instanceof AllianceError)) throw err;
      return { kind: 'status_unavailable', message: `status unavailable: ${err.message}` };
    }
  }
}

/**
 * For a row that may have been sent: the last moment a request for it could have left. A dead process on
 * this host sent nothing after it died (now at the latest); otherwise the send deadline of the claims
 * before this one bounds it.
 */
function recoveryBoundary(row: Claimed): number {
  const offset = Date.now() - new Date(row.db_now).getTime();
  const prev = row.prev_send_deadline;
  const deadline = prev ? new Date(prev).getTime() + offset : Date.now();
  return row.prev_owner && ownerIsDead(row.prev_owner) ? Math.min(deadline, Date.now()) : deadline;
}
