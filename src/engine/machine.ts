import type { PayoutInfo } from '../alliance/types.js';
import type { Outcome } from '../db/claims.js';
import type { PayoutRow } from '../db/rows.js';
import { collisionOutcome, notOurs, outcomeOf } from './payout.js';

/**
 * One claimed payout's life as an explicit state machine (after brandur's recovery points): named phases,
 * a pure transition table (`start`, `next`) that tests drive directly, and an executor (submit.ts) that
 * performs each phase's one effect and feeds the result back as an event.
 *
 *   start ──fresh──▶ send ──accepted──────────────────────────────▶ commit(outcome)
 *     │               │ ──ambiguous (may have executed)──▶ resolve
 *     │               │ ──taken (422) & a request of ours may have executed──▶ resolve
 *     │               │ ──taken & none can have──▶ inspect ──▶ commit(needs_review: collision)
 *     │               │ ──refused (4xx, not executed)──▶ commit(failed) | resolve first if ours may exist
 *     │               ├─ unavailable / auth refused (not executed)──▶ commit(ready) | leave, and stop the run
 *     │               └─ stopped (an operator's stop came before the request left)──▶ commit(ready)
 *     └─recover──▶ resolve ──found & ours──▶ commit(outcome) ; found & not ours──▶ commit(needs_review)
 *                     │ ──absent (404 trusted after the grace period)──▶ send | commit(failed) | commit(cancelled)
 *                     └─ status unavailable──▶ leave (stays submitting; asked again by the next run)
 *
 * "Ours" needs a request of ours that may have executed (`maySent`), durable across claims through the
 * row's send_deadline. A send counts toward the per-row cap only when it may have executed (a 2xx or an
 * ambiguous failure), never for a 429 or a refused connection.
 */

export type AbsentPlan =
  /** The payout does not exist: send it (again). */
  | { then: 'send' }
  /** An earlier refusal stands once we know none of ours executed. */
  | { then: 'fail'; message: string }
  /** The API said the order_id was taken, yet status finds none: a person must look. */
  | { then: 'review'; message: string };

export type Phase =
  | { kind: 'resolve'; onAbsent: AbsentPlan }
  | { kind: 'send' }
  | { kind: 'inspect'; why: string }
  | { kind: 'done'; end: End };

export type StopReason = { kind: 'unavailable' | 'auth'; message: string };

export type End =
  | { kind: 'commit'; outcome: Outcome; stop?: StopReason }
  | { kind: 'leave'; why: string; stop?: StopReason };

export type Event =
  | { kind: 'found'; info: PayoutInfo }
  | { kind: 'absent' }
  | { kind: 'status_unavailable'; message: string }
  | { kind: 'accepted'; info: PayoutInfo }
  | { kind: 'ambiguous'; message: string }
  | { kind: 'taken'; message: string }
  | { kind: 'refused'; message: string }
  | { kind: 'unavailable'; message: string }
  | { kind: 'auth_refused'; message: string }
  /** The run was asked to stop before this request left (it waited for its slot): nothing was sent. */
  | { kind: 'stopped' };

/** What the machine remembers while it works on one claimed row. */
export interface Memory {
  /** A request for this order_id may have executed at the API (an earlier claim's or this one's). */
  maySent: boolean;
  /** Local time after which no request of ours can still reach the API (a 404 is trusted from boundary + grace). */
  sentBoundary: number;
  /** Requests of this claim that may have executed. */
  sends: number;
  /** Such requests of earlier claims (since an operator last reset the count). */
  priorSends: number;
  /** Sends of one order_id, each after a trusted 404, before leaving the row to an operator. */
  maxSends: number;
  /** False when the batch was cancelled or the row left the batch's file: nothing new is sent; rows in flight are still resolved. */
  mayInitiate: boolean;
  /** Why nothing new may be sent, for the row's record. */
  cancelNote?: string;
  /** send_deadline before this claim, put back when the claim ends with nothing of it executed. */
  prevSendDeadline: Date | null;
}

export interface Step {
  phase: Phase;
  mem: Memory;
}

const done = (end: End): Phase => ({ kind: 'done', end });

/** The first phase of a claimed row. A row no request of ours can have reached needs no question. */
export function start(mem: Memory): Phase {
  return mem.maySent ? { kind: 'resolve', onAbsent: { then: 'send' } } : toSend(mem);
}

/** Into `send`, unless the batch was cancelled or the row has been sent too often already. */
function toSend(mem: Memory): Phase {
  if (!mem.mayInitiate) {
    return done({ kind: 'commit', outcome: { state: 'cancelled', last_error: mem.cancelNote ?? 'cancelled by an operator before it was sent', ...closing(mem) } });
  }
  const total = mem.priorSends + mem.sends;
  if (total >= mem.maxSends) {
    return done({
      kind: 'commit',
      outcome: {
        state: 'needs_review',
        last_error:
          `sent ${total} times and each time the API later had no such payout (status 404 after the grace period): ` +
          `check with Alliance before paying this row again; \`payouts resume <batch> --retry-review\` sends it again`,
        ...closing(mem),
      },
    });
  }
  return { kind: 'send' };
}

/** Columns every commit of a claim carries: the sends that may have executed, and the send deadline put back when none can have. */
function closing(mem: Memory): Pick<Outcome, 'sends' | 'restoreSendDeadline'> {
  return {
    sends: mem.sends,
    ...(mem.maySent ? {} : { restoreSendDeadline: { to: mem.prevSendDeadline } }),
  };
}

export function next(phase: Phase, event: Event, mem: Memory, row: PayoutRow, now: number): Step {
  const m = { ...mem };
  const commit = (outcome: Outcome, stop?: StopReason): Phase => done({ kind: 'commit', outcome: { ...outcome, ...closing(m) }, ...(stop ? { stop } : {}) });
  const leave = (why: string, stop?: StopReason): Phase => done({ kind: 'leave', why, ...(stop ? { stop } : {}) });
  const unexpected = (): never => {
    throw new Error(`payout state machine: event ${event.kind} cannot happen in phase ${phase.kind}`);
  };

  switch (phase.kind) {
    case 'resolve':
      switch (event.kind) {
        case 'found': {
          const why = notOurs(row, event.info, m.maySent);
          return { mem: m, phase: why ? commit(collisionOutcome(row, event.info, why)) : commit(outcomeOf(row, event.info)) };
        }
        case 'absent': {
          const plan = phase.onAbsent;
          if (plan.then === 'send') return { mem: m, phase: toSend(m) };
          if (plan.then === 'fail') return { mem: m, phase: commit({ state: 'failed', api_message: plan.message, last_error: plan.message }) };
          return { mem: m, phase: commit({ state: 'needs_review', last_error: plan.message }) };
        }
        case 'status_unavailable':
          return { mem: m, phase: leave(event.message) };
        case 'auth_refused':
          return { mem: m, phase: leave(event.message, { kind: 'auth', message: event.message }) };
        default:
          return unexpected();
      }

    case 'send':
      switch (event.kind) {
        case 'accepted':
          m.sends++;
          m.maySent = true;
          return { mem: m, phase: commit(outcomeOf(row, event.info)) };
        case 'ambiguous':
          m.sends++;
          m.maySent = true;
          m.sentBoundary = now;
          return { mem: m, phase: { kind: 'resolve', onAbsent: { then: 'send' } } };
        case 'taken':
          if (m.maySent) {
            return {
              mem: m,
              phase: {
                kind: 'resolve',
                onAbsent: { then: 'review', message: `the API says order_id ${row.order_id} is taken, but its status finds no such payout: check with Alliance` },
              },
            };
          }
          return { mem: m, phase: { kind: 'inspect', why: 'this batch never sent a request for it that could have executed' } };
        case 'refused':
          // This request was not executed; an earlier one of ours may have been.
          if (m.maySent) return { mem: m, phase: { kind: 'resolve', onAbsent: { then: 'fail', message: event.message } } };
          return { mem: m, phase: commit({ state: 'failed', api_message: event.message, last_error: event.message }) };
        case 'unavailable':
        case 'auth_refused': {
          const stop: StopReason = { kind: event.kind === 'auth_refused' ? 'auth' : 'unavailable', message: event.message };
          if (m.maySent) return { mem: m, phase: leave(event.message, stop) };
          // Nothing of ours reached the API: the row is simply not sent yet.
          return { mem: m, phase: commit({ state: 'ready', last_error: `not sent yet: ${event.message}` }, stop) };
        }
        case 'stopped':
          // This request never left. The row is not sent (the next run sends it). A send phase after an
          // earlier request that may have executed comes only after the API had no such payout past the
          // grace period; the row keeps that history (its send deadline stays), so the next run asks first.
          return {
            mem: m,
            phase: commit({
              state: 'ready',
              last_error: m.maySent
                ? 'not sent again: the run was stopped (the API had no payout for it after the grace period)'
                : 'not sent yet: the run was stopped before this payout was sent',
            }),
          };
        default:
          return unexpected();
      }

    case 'inspect':
      switch (event.kind) {
        case 'found':
          return { mem: m, phase: commit(collisionOutcome(row, event.info, phase.why)) };
        case 'absent':
        case 'status_unavailable':
          return { mem: m, phase: commit(collisionOutcome(row, undefined, phase.why)) };
        case 'auth_refused':
          return { mem: m, phase: commit(collisionOutcome(row, undefined, phase.why), { kind: 'auth', message: event.message }) };
        default:
          return unexpected();
      }

    case 'done':
      return unexpected();
  }
}
