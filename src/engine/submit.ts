import { AllianceError, AuthenticationError, NotFoundError, ValidationError } from '../alliance/errors.js';
import type { PreparedRequest } from '../alliance/client.js';
import { ticketTaken, type RateGate, type Ticket } from '../alliance/gate.js';
import { sleep, withRetry } from '../alliance/retry.js';
import { commitOutcome, extendLease, releaseLease, renewForSend, type Claimed } from '../db/claims.js';
import type { Runner } from './context.js';
import { mayHaveSent, next, recoveryBoundary, start, trust404, type End, type Event, type Memory, type Phase, type Sending } from './machine.js';
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
  /**
   * The latest moment (local clock, pessimistic) before which a request may leave under the send deadline
   * the database holds for this claim: set by the statement that granted it (the claim, or a renewal for a
   * send) and moved by nothing else. Keeping the lease alive while a request waits for its rate slot does
   * not move it: a request never leaves after its recorded deadline.
   */
  private sendDeadline: number;
  constructor(
    private readonly runner: Runner,
    private readonly row: Claimed,
    claimStartedAt: number,
    fresh: boolean,
  ) {
    // Counted from before the claim query: the database's lease and deadline began no earlier than that.
    this.validUntil = claimStartedAt + runner.options.leaseMs;
    // Only a fresh claim's statement set a send deadline for this claim (a taken-over row keeps its old one).
    this.sendDeadline = fresh ? claimStartedAt + runner.options.leaseMs : 0;
  }

  /**
   * Right before a send: the fence is checked at the last moment (a runner that was taken over sends
   * nothing) and the row's send deadline moves past the end of this send, unless the deadline recorded for
   * this claim still covers the whole request (a fresh claim made moments ago, sent at once). A wait for the
   * rate slot longer than that leads to a renewal here, never to a request on the wire past its deadline.
   */
  async ensureForSend(): Promise<void> {
    const { requestTimeoutMs, leaseMarginMs, leaseMs } = this.runner.options;
    if (Date.now() + requestTimeoutMs + leaseMarginMs < Math.min(this.sendDeadline, this.validUntil)) {
      // Used once: a resend renews (its request comes after an earlier one that may have executed).
      this.sendDeadline = 0;
      return;
    }
    const started = Date.now();
    const until = await renewForSend(this.runner.db, this.row.id, this.row.fence, leaseMs);
    if (!until) throw new LeaseLostError(`lost the claim on ${this.row.order_id}`);
    this.validUntil = started + leaseMs;
    this.sendDeadline = 0;
  }

  /** For tests of the deadline rule: the local time this claim's recorded deadline covers a send until (0: none). */
  get coveredUntil(): number {
    return this.sendDeadline;
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

/** The machine's memory for a freshly claimed row: what the claim read, nothing derived twice. */
export function memoryOf(runner: Runner, row: Claimed, policy: 'send' | 'never_send' = 'send'): Memory {
  const prev = row.prev_send_deadline ?? null;
  const sending: Sending =
    policy === 'never_send'
      ? { kind: 'never' }
      : !runner.mayInitiate || row.batch_cancelled
        ? { kind: 'cancelled', note: 'cancelled by an operator before it was sent' }
        : row.in_file === false
          ? { kind: 'cancelled', note: "not in the batch's corrected file: asked about, never sent" }
          : { kind: 'allowed' };
  return {
    prevSendDeadline: prev,
    sends: 0,
    sentBoundary: prev !== null ? recoveryBoundary(prev, row.db_now, Date.now(), Boolean(row.prev_owner && ownerIsDead(row.prev_owner))) : 0,
    priorSends: Number(row.send_count),
    maxSends: runner.options.maxSendsPerRow,
    sending,
  };
}

/**
 * Takes one claimed row through the state machine (machine.ts) to a committed outcome, or leaves it
 * `submitting` when its outcome cannot be known now. Throws StopSending after committing when the API
 * stopped taking requests; a crash (CrashError) propagates with nothing committed after it.
 */
export async function processRow(runner: Runner, row: Claimed, claimStartedAt = Date.now(), policy: 'send' | 'never_send' = 'send'): Promise<End | undefined> {
  let mem = memoryOf(runner, row, policy);
  const lease = new Lease(runner, row, claimStartedAt, row.claimed_from === 'ready');
  const orderId = row.order_id!;
  let phase: Phase = start(mem);
  if (!mayHaveSent(mem)) runner.checkpoint('intent_committed', orderId);
  runner.claimStarted();
  try {
    while (phase.kind !== 'done') {
      const event = await perform(runner, row, phase, mem, lease, policy);
      runner.assertAlive();
      ({ phase, mem } = next(phase, event, mem, row, Date.now()));
    }
  } catch (err) {
    runner.claimEnded();
    if (err instanceof LeaseLostError) {
      runner.logger.warn({ orderId }, 'lost the claim on a row: another runner resolves it');
      return undefined;
    }
    throw err;
  }
  try {
    await finish(runner, row, phase.end);
  } finally {
    runner.claimEnded();
  }
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
    // The claim's sends that may have executed count toward the cap even when the outcome is not known.
    await releaseLease(runner.db, row.id, row.fence, end.why, end.sends);
    runner.logger.warn({ orderId, why: end.why }, 'payout left unresolved (submitting); a later run or reconcile asks its status');
    runner.emit({ type: 'row', state: 'submitting', amountPaise: BigInt(row.amount_paise ?? '0') });
  }
  if (end.stop) throw new StopSending(end.stop.kind, end.stop.message);
}

/** The one effect of a phase, as the event the machine reads. */
async function perform(runner: Runner, row: Claimed, phase: Phase, mem: Memory, lease: Lease, policy: 'send' | 'never_send'): Promise<Event> {
  const orderId = row.order_id!;
  switch (phase.kind) {
    case 'resolve':
      // Never sending (reconcile), nothing waits out the grace period: a 404 asked too soon is left for later.
      return resolveByStatus(runner, orderId, mem.sentBoundary, policy === 'never_send' ? undefined : (ms) => lease.hold(ms), lease.gate());
    case 'inspect':
      return resolveByStatus(runner, orderId, 0, (ms) => lease.hold(ms), lease.gate());
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
          runner.wireStarted();
          const p = runner.client.initiatePayout(prepared, { signal: runner.signal, gate: ticketTaken(ticket, runner.gate) });
          void p.then(
            () => runner.wireEnded(),
            () => runner.wireEnded(),
          );
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
  /** How to wait for the 404 to become trustworthy; undefined: do not wait (the answer is `absent_early`). */
  wait: ((ms: number) => Promise<void>) | undefined,
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
        if (trust404(askedAt, sentBoundary, runner.options.ambiguousGraceMs)) return { kind: 'absent' };
        if (!wait) return { kind: 'absent_early' };
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
