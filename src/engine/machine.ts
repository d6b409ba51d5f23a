import type { PayoutInfo } from '../alliance/types.js';
import type { Outcome } from '../db/claims.js';
import type { PayoutRow } from '../db/rows.js';
import type { RowState } from '../states.js';
import { collisionOutcome, notOurs, outcomeOf } from './payout.js';

/**
 * Every move a payout row can make, and why: the one place to read. Two parts:
 *
 * 1. `MOVES` (below): every move of a row outside a claim — a short-balance refusal, an operator's retry
 *    or cancel, a corrected copy keeping or dropping rows, a poll or a reconcile adopting what the API
 *    says — each named, with the states it may leave, the states it may reach, and its guard. The queries
 *    in src/db apply a move only through its entry (`db/moves.ts`), so a move and its guard cannot drift
 *    apart, and `test/moves.test.ts` drives every entry against every state.
 * 2. The claimed-row table (`start`, `next`): a row claimed for sending (`ready -> submitting`, the claim
 *    move) goes through named phases to one commit (or is left `submitting` for a later run). The same
 *    table serves the send phase and reconcile; reconcile runs it with a "never send" policy.
 *
 * And the three facts every part decides the same way, computed here once: whether a request of a row
 * may have executed (`maySent`), until when a request of ours could still reach the API (`recoveryBoundary`),
 * and whether a 404 can be trusted (`trust404`).
 */

/** A request for the row may have executed at the API: its send_deadline is set (never inferred from its state). */
export function maySent(row: { send_deadline: Date | string | null }): boolean {
  return row.send_deadline !== null && row.send_deadline !== undefined;
}

/** The row was claimed at least once: it is never deleted (a request of it may have left). */
export function everClaimed(row: { first_claimed_at: Date | string | null }): boolean {
  return row.first_claimed_at !== null && row.first_claimed_at !== undefined;
}

/**
 * The last moment (local clock) a request of an earlier claim could have left: its recorded send_deadline,
 * moved to the local clock by the offset of the database's clock (`dbNow`, read with the claim), or now
 * when there is none. A dead process on this host sent nothing after it died: now at the latest.
 */
export function recoveryBoundary(prevSendDeadline: Date | string | null, dbNow: Date | string, now: number, prevOwnerDead: boolean): number {
  const offset = now - new Date(dbNow).getTime();
  const deadline = prevSendDeadline ? new Date(prevSendDeadline).getTime() + offset : now;
  return prevOwnerDead ? Math.min(deadline, now) : deadline;
}

/** A 404 asked at `askedAt` means "never created" only once every request of ours could have arrived and run. */
export function trust404(askedAt: number, boundary: number, graceMs: number): boolean {
  return askedAt >= boundary + graceMs;
}

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
 *                     │                                                        | commit(ready) (never-send policy)
 *                     │ ──absent, asked too soon (never-send policy: no waiting)──▶ leave
 *                     └─ status unavailable──▶ leave (stays submitting; asked again by the next run)
 *
 * "Ours" needs a request of ours that may have executed (`mayHaveSent(mem)`), durable across claims through
 * the row's send_deadline. A send counts toward the per-row cap only when it may have executed (a 2xx or an
 * ambiguous failure), never for a 429 or a refused connection; every end carries the claim's sends, a left
 * row's too.
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
  /** Left submitting: a later run (or reconcile) asks its status; `sends` of this claim are still counted. */
  | { kind: 'leave'; why: string; sends: number; stop?: StopReason };

export type Event =
  | { kind: 'found'; info: PayoutInfo }
  | { kind: 'absent' }
  /** 404, but asked before a request of ours could surely have arrived (only when the resolver does not wait). */
  | { kind: 'absent_early' }
  | { kind: 'status_unavailable'; message: string }
  | { kind: 'accepted'; info: PayoutInfo }
  | { kind: 'ambiguous'; message: string }
  | { kind: 'taken'; message: string }
  | { kind: 'refused'; message: string }
  | { kind: 'unavailable'; message: string }
  | { kind: 'auth_refused'; message: string }
  /** The run was asked to stop before this request left (it waited for its slot): nothing was sent. */
  | { kind: 'stopped' };

/**
 * What a claim may do once the payout is known not to exist: send it (the run), not send it because the
 * batch was cancelled or the row left the file (cancelled), or never send at all (reconcile: the row goes
 * back to ready for the next run).
 */
export type Sending = { kind: 'allowed' } | { kind: 'cancelled'; note: string } | { kind: 'never' };

/** What the machine knows while it works on one claimed row: values read with the claim, and what this claim did. */
export interface Memory {
  /** send_deadline before this claim (null: no earlier request can have executed). */
  prevSendDeadline: Date | null;
  /** Requests of this claim that may have executed. */
  sends: number;
  /** Local time after which no request of ours can still reach the API (a 404 is trusted from boundary + grace). */
  sentBoundary: number;
  /** Such requests of earlier claims (send_count, since an operator last reset it). */
  priorSends: number;
  /** Sends of one order_id, each after a trusted 404, before leaving the row to an operator. */
  maxSends: number;
  sending: Sending;
}

/** A request of this row may have executed: an earlier claim's (its send deadline) or this claim's. */
export function mayHaveSent(mem: Pick<Memory, 'prevSendDeadline' | 'sends'>): boolean {
  return mem.prevSendDeadline !== null || mem.sends > 0;
}

export interface Step {
  phase: Phase;
  mem: Memory;
}

const done = (end: End): Phase => ({ kind: 'done', end });

/** The first phase of a claimed row. A row no request of ours can have reached needs no question. */
export function start(mem: Memory): Phase {
  return mayHaveSent(mem) ? { kind: 'resolve', onAbsent: { then: 'send' } } : toSend(mem);
}

/** Into `send`, unless sending is not allowed (cancelled, or reconcile) or the row has been sent too often already. */
function toSend(mem: Memory): Phase {
  if (mem.sending.kind === 'cancelled') {
    return done({ kind: 'commit', outcome: { state: 'cancelled', last_error: mem.sending.note, ...closing(mem) } });
  }
  if (mem.sending.kind === 'never') {
    return done({
      kind: 'commit',
      outcome: { state: 'ready', last_error: 'the API has no payout under this order_id: the next `payouts resume` sends it (status first)', ...closing(mem) },
    });
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
    ...(mayHaveSent(mem) ? {} : { restoreSendDeadline: { to: mem.prevSendDeadline } }),
  };
}

export function next(phase: Phase, event: Event, mem: Memory, row: PayoutRow, now: number): Step {
  const m = { ...mem };
  const commit = (outcome: Outcome, stop?: StopReason): Phase => done({ kind: 'commit', outcome: { ...outcome, ...closing(m) }, ...(stop ? { stop } : {}) });
  const leave = (why: string, stop?: StopReason): Phase => done({ kind: 'leave', why, sends: m.sends, ...(stop ? { stop } : {}) });
  const unexpected = (): never => {
    throw new Error(`payout state machine: event ${event.kind} cannot happen in phase ${phase.kind}`);
  };

  switch (phase.kind) {
    case 'resolve':
      switch (event.kind) {
        case 'found': {
          const why = notOurs(row, event.info, mayHaveSent(m));
          return { mem: m, phase: why ? commit(collisionOutcome(row, event.info, why)) : commit(outcomeOf(row, event.info)) };
        }
        case 'absent': {
          const plan = phase.onAbsent;
          if (plan.then === 'send') return { mem: m, phase: toSend(m) };
          if (plan.then === 'fail') return { mem: m, phase: commit({ state: 'failed', api_message: plan.message, last_error: plan.message }) };
          return { mem: m, phase: commit({ state: 'needs_review', last_error: plan.message }) };
        }
        case 'absent_early':
          return { mem: m, phase: leave('not found yet, but a request may still be on its way: asked again later') };
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
          return { mem: m, phase: commit(outcomeOf(row, event.info)) };
        case 'ambiguous':
          m.sends++;
          m.sentBoundary = now;
          return { mem: m, phase: { kind: 'resolve', onAbsent: { then: 'send' } } };
        case 'taken':
          if (mayHaveSent(m)) {
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
          if (mayHaveSent(m)) return { mem: m, phase: { kind: 'resolve', onAbsent: { then: 'fail', message: event.message } } };
          return { mem: m, phase: commit({ state: 'failed', api_message: event.message, last_error: event.message }) };
        case 'unavailable':
        case 'auth_refused': {
          const stop: StopReason = { kind: event.kind === 'auth_refused' ? 'auth' : 'unavailable', message: event.message };
          if (mayHaveSent(m)) return { mem: m, phase: leave(event.message, stop) };
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
              last_error: mayHaveSent(m)
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
        case 'absent_early':
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

/**
 * What must hold of a row for a move outside a claim, besides its state. Each is one column's fact:
 * - `never_sent`: no request of it can have executed (send_deadline is null; see `maySent`);
 * - `may_have_sent`: a request of it may have executed (send_deadline is set);
 * - `never_claimed`: it was never claimed (first_claimed_at is null; see `everClaimed`): only such a row
 *   may be deleted;
 * - `none`: the state alone decides.
 * src/db/moves.ts turns each into its SQL; test/moves.test.ts checks both forms agree.
 */
export type Guard = 'none' | 'never_sent' | 'may_have_sent' | 'never_claimed';

export interface MoveSpec {
  /** The states the row may be in. */
  from: readonly RowState[];
  /** The states the row may reach; empty for a move that deletes the row. */
  to: readonly RowState[];
  guard: Guard;
  /** Why the move exists and why its guard. */
  why: string;
}

const NOT_FINAL: readonly RowState[] = ['ready', 'skipped', 'failed', 'needs_review', 'pending'];

/**
 * Every move of a row, with its guard. The claim and its end (`claim`, `take_over`, `commit`, `leave`) are
 * fenced statements of their own (src/db/claims.ts), listed here so that this table is every state a row can
 * reach; `commit`'s outcome is chosen by the claimed-row table above.
 */
export const MOVES = {
  claim: {
    from: ['ready'],
    to: ['submitting'],
    guard: 'none',
    why: "the intent, before any request: a lease, a fencing token and a send deadline in one statement. A cancelled batch's row is claimed only when it may have been sent, to be asked about, never sent",
  },
  take_over: {
    from: ['submitting'],
    to: ['submitting'],
    guard: 'none',
    why: 'a row a dead runner or an expired lease left: a new fence, status asked first',
  },
  commit: {
    from: ['submitting'],
    to: ['pending', 'approved', 'rejected', 'failed', 'ready', 'needs_review', 'cancelled'],
    guard: 'none',
    why: "the claimed-row table's end, fenced: nothing changes unless this runner still holds the claim",
  },
  leave: {
    from: ['submitting'],
    to: ['submitting'],
    guard: 'none',
    why: "the outcome cannot be known now: the lease is given up (fenced), the claim's sends counted, and a later run or reconcile asks its status",
  },
  skip_short_balance: {
    from: ['ready'],
    to: ['skipped'],
    guard: 'never_sent',
    why: 'refused before sending (the balance is short): not sent by decision. A row that may have been sent stays ready, so the next run, or a cancel, asks about it first',
  },
  reconsider_skipped: {
    from: ['skipped'],
    to: ['ready'],
    guard: 'none',
    why: 'a later run reconsiders the rows a refusal skipped',
  },
  recheck_sent_of_cancelled: {
    from: ['skipped'],
    to: ['ready'],
    guard: 'may_have_sent',
    why: 'a cancelled batch still resolves a row that may have been sent: back to ready to be claimed and asked about (a cancelled batch never sends)',
  },
  retry_failed: {
    from: ['failed'],
    to: ['ready'],
    guard: 'none',
    why: '--retry-failed: an operator sends refused rows again; the send count is reset, the send history kept, so status is asked first',
  },
  retry_review: {
    from: ['needs_review'],
    to: ['ready'],
    guard: 'none',
    why: '--retry-review: an operator has checked the rows; as --retry-failed',
  },
  cancel: {
    from: ['ready', 'skipped'],
    to: ['cancelled'],
    guard: 'never_sent',
    why: "an operator's cancel: a row no request of which can have executed is never sent; the others are resolved by status",
  },
  not_in_file: {
    from: ['ready', 'skipped'],
    to: ['cancelled'],
    guard: 'never_sent',
    why: "a corrected copy no longer has a row that was claimed but never sent: never sent now (one that may have been sent is kept and asked about)",
  },
  drop: {
    from: ['invalid', 'ready', 'skipped', 'failed', 'cancelled'],
    to: [],
    guard: 'never_claimed',
    why: 'a corrected copy replaces or removes a row never claimed (or a partial read leaves one): nothing of it can exist at the API. A row ever claimed is never deleted',
  },
  poll: {
    from: ['pending'],
    to: ['approved', 'rejected', 'needs_review'],
    guard: 'none',
    why: 'the status API (asked on a schedule, or on a webhook hint) moves a pending payout forward, never back',
  },
  adopt: {
    from: NOT_FINAL,
    to: ['pending', 'approved', 'rejected'],
    guard: 'may_have_sent',
    why: 'reconcile: the API holds a payout of ours under the order_id (a request of ours may have executed): it is never sent again',
  },
  collision: {
    from: NOT_FINAL,
    to: ['needs_review'],
    guard: 'none',
    why: "reconcile: the API holds a payout under the order_id that is not this row's (or holds another amount): a person must look",
  },
  review_age: {
    from: ['pending'],
    to: ['needs_review'],
    guard: 'none',
    why: 'reconcile: still Pending at the API (or gone from it) past the review age: handed to a person',
  },
} as const satisfies Record<string, MoveSpec>;

export type MoveName = keyof typeof MOVES;

/** Whether a row (its state and its two history columns) may make the move: what the SQL of db/moves.ts says. */
export function allows(move: MoveSpec, row: { state: RowState; send_deadline: Date | string | null; first_claimed_at: Date | string | null }): boolean {
  if (!move.from.includes(row.state)) return false;
  switch (move.guard) {
    case 'none':
      return true;
    case 'never_sent':
      return !maySent(row);
    case 'may_have_sent':
      return maySent(row);
    case 'never_claimed':
      return !everClaimed(row);
  }
}
