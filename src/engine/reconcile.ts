import { AllianceError, AuthenticationError, NotFoundError } from '../alliance/errors.js';
import { withRetry } from '../alliance/retry.js';
import type { PayoutInfo } from '../alliance/types.js';
import { advance, claimStale, leaseOwners, type Claimed, type Outcome } from '../db/claims.js';
import { iterateRows, type PayoutRow } from '../db/rows.js';
import { ApiUnavailableError } from '../errors.js';
import type { RowState } from '../states.js';
import { Runner, type EngineDeps, type EngineOptions } from './context.js';
import { collisionOutcome, notOurs, outcomeOf } from './payout.js';
import { ownerIsDead } from './owner.js';
import { pastReviewAge } from './review.js';
import { MOVES, maySent, type MoveSpec } from './machine.js';
import { processRow, StopSending } from './submit.js';

export interface ReconcileOptions extends Partial<EngineOptions> {
  batch: string;
  /** Rows still Pending at the API (or unresolved) this long after they were first sent move to needs_review. Default 1 hour. */
  reviewAfterMs?: number;
  /** Only list, change nothing. */
  dryRun?: boolean;
  /** Stop early (Ctrl-C): what was checked stays done. */
  stopSignal?: AbortSignal | undefined;
}

export type ReconcileAction = 'adopted' | 'needs_review' | 'requeued' | 'flagged' | 'none';

export interface ReconcileFinding {
  row: number;
  orderId: string;
  ours: RowState;
  api: string;
  action: ReconcileAction;
  note: string;
}

export interface ReconcileResult {
  batch: string;
  checked: number;
  /** Rows whose state the API confirmed. */
  agreed: number;
  /** Rows a live runner holds: not checked now. */
  held: number;
  findings: ReconcileFinding[];
  /** Every change actually written (a refused fenced write is not counted). */
  changed: Record<Exclude<ReconcileAction, 'flagged' | 'none'>, number>;
}

type Status = { kind: 'found'; info: PayoutInfo } | { kind: 'absent'; askedAt: number } | { kind: 'error'; message: string };

/**
 * Compares every row of a batch that may concern the API with the API's status, and makes only safe
 * repairs: a payout that is ours and final is adopted (never a final state overwritten), a payout that is
 * not ours (a collision) or a row Pending past the review age goes to needs_review, and a row whose
 * payout certainly does not exist goes back to ready for the next resume. It never sends a payout.
 * Rows left `submitting` are claimed in small chunks right before they are checked, so a backlog of any
 * size is worked through under fresh leases.
 */
export async function reconcileBatch(opts: ReconcileOptions, deps: EngineDeps): Promise<ReconcileResult> {
  const runner = new Runner(deps, opts);
  const { db } = runner;
  const reviewAfter = opts.reviewAfterMs ?? 3_600_000;
  const dryRun = opts.dryRun ?? false;
  const res: ReconcileResult = {
    batch: opts.batch,
    checked: 0,
    agreed: 0,
    held: 0,
    findings: [],
    changed: { adopted: 0, needs_review: 0, requeued: 0 },
  };
  const record = (row: PayoutRow, f: Omit<ReconcileFinding, 'row' | 'orderId' | 'ours'> | undefined, emitted = false) => {
    res.checked++;
    runner.emit({ type: 'checked', checked: res.checked });
    if (!f) {
      res.agreed++;
      return;
    }
    res.findings.push({ row: row.row_no, orderId: row.order_id!, ours: row.state, ...f });
    if (f.action !== 'flagged' && f.action !== 'none') res.changed[f.action]++;
    if (!emitted && (f.action === 'adopted' || f.action === 'needs_review' || f.action === 'requeued')) {
      runner.emit({ type: 'row', state: f.action === 'adopted' ? (f.note.replace(/^adopted /, '') as RowState) : f.action === 'requeued' ? 'ready' : 'needs_review', amountPaise: BigInt(row.amount_paise ?? '0') });
    }
  };
  const limit = Math.max(4, (opts.concurrency ?? runner.options.concurrency) * 4);
  let authError: AuthenticationError | undefined;

  // 1. Rows a dead or expired runner left submitting: claimed a chunk at a time, checked at once.
  if (!dryRun) {
    const dead = (await leaseOwners(db, opts.batch)).filter(ownerIsDead);
    const tried: string[] = [];
    for (;;) {
      if (opts.stopSignal?.aborted || authError) break;
      const claimedAt = Date.now();
      const chunk = await claimStale(db, opts.batch, runner.owner, runner.options.leaseMs, limit, dead, tried);
      if (chunk.length === 0) break;
      await Promise.all(
        chunk.map(async (row) => {
          tried.push(row.id);
          try {
            record(row, await checkClaimed(runner, row, claimedAt), true);
          } catch (err) {
            if (err instanceof StopSending && err.reason === 'auth') authError = new AuthenticationError(err.message);
            else if (err instanceof AuthenticationError) authError = err;
            else throw err;
          }
        }),
      );
    }
  }

  // 2. Every other row that may concern the API, a page at a time, checked through the rate-limited queue.
  const work = new Set<Promise<void>>();
  for await (const row of iterateRows(db, opts.batch)) {
    if (opts.stopSignal?.aborted || authError) break;
    if (!row.order_id || row.state === 'invalid' || row.state === 'cancelled') continue;
    if (row.state === 'submitting') {
      if (dryRun) record(row, { api: '-', action: 'flagged', note: 'outcome unknown here; a real reconcile asks its status' });
      else res.held++;
      continue;
    }
    const p = checkRow(runner, row, reviewAfter, dryRun)
      .then((f) => record(row, f))
      .catch((err: unknown) => {
        if (err instanceof AuthenticationError) authError = err;
        else throw err;
      })
      .finally(() => work.delete(p));
    work.add(p);
    if (work.size >= limit) await Promise.race(work);
  }
  await Promise.all(work);
  if (authError) throw new ApiUnavailableError(`the API refused our credentials: ${authError.message}`, { cause: authError });
  // Rows still submitting after the claims above belong to a live runner.
  res.findings.sort((a, b) => a.row - b.row);
  return res;
}

async function fetchStatus(runner: Runner, orderId: string): Promise<Status> {
  let askedAt = 0;
  try {
    const info = await withRetry(
      () =>
        runner.api(() => {
          askedAt = Date.now();
          return runner.client.payoutStatus(orderId, runner.call);
        }),
      { ...runner.options.retry, retries: 3, signal: runner.signal },
    );
    return { kind: 'found', info };
  } catch (err) {
    if (err instanceof NotFoundError) return { kind: 'absent', askedAt };
    if (err instanceof AuthenticationError) throw err;
    if (err instanceof AllianceError) return { kind: 'error', message: err.message };
    throw err;
  }
}

/**
 * A submitting row this reconcile claimed: taken through the claimed-row table (machine.ts) like any claim,
 * with the never-send policy: found and ours is adopted, a collision goes to a person, a payout certainly
 * absent goes back to ready for the next run, and a 404 asked too soon (or no answer) leaves it as it is.
 */
async function checkClaimed(runner: Runner, row: Claimed, claimedAt: number): Promise<Omit<ReconcileFinding, 'row' | 'orderId' | 'ours'> | undefined> {
  const end = await processRow(runner, row, claimedAt, 'never_send');
  if (!end) return { api: '-', action: 'none', note: 'not written: the claim was lost (another runner resolves it)' };
  if (end.kind === 'leave') return { api: /not found/.test(end.why) ? 'not found' : 'unreachable', action: 'none', note: end.why };
  const o = end.outcome;
  switch (o.state) {
    case 'ready':
      return { api: 'not found', action: 'requeued', note: 'not at the API: back to ready for the next resume' };
    case 'needs_review':
      return { api: o.api_status ?? 'not found', action: 'needs_review', note: o.collision ? `order_id collision: ${o.last_error ?? ''}` : (o.last_error ?? '') };
    case 'pending':
    case 'approved':
    case 'rejected':
      return { api: o.api_status ?? o.state, action: 'adopted', note: `adopted ${o.state}` };
    default:
      return { api: o.api_status ?? '-', action: 'none', note: o.last_error ?? o.state };
  }
}

/** A row outside a claim (pending, final, never or no longer in flight). */
async function checkRow(runner: Runner, row: PayoutRow, reviewAfter: number, dryRun: boolean): Promise<Omit<ReconcileFinding, 'row' | 'orderId' | 'ours'> | undefined> {
  const { db } = runner;
  const s = await fetchStatus(runner, row.order_id!);
  if (s.kind === 'error') return { api: 'unreachable', action: 'none', note: s.message };
  const old = pastReviewAge(row, reviewAfter);
  // Every write is a named move (machine.ts MOVES), from the state the row was read in.
  const write = async (move: MoveSpec, o: Outcome, action: ReconcileAction, api: string, note: string) => {
    if (dryRun) return { api, action: 'flagged' as const, note: `would be ${action}: ${note}` };
    const ok = await advance(db, move, row.id, o, row.state);
    return { api, action: ok ? action : 'none', note: ok ? note : `${note} (not written: the row changed meanwhile)` };
  };

  if (s.kind === 'absent') {
    if (row.state === 'pending' && old) {
      return write(MOVES.review_age, { state: 'needs_review', last_error: 'the API accepted this payout earlier but now has no such order_id: ask Alliance' }, 'needs_review', 'not found', 'accepted earlier, not found now');
    }
    if (row.state === 'pending' || row.state === 'approved' || row.state === 'rejected') {
      return { api: 'not found', action: 'flagged', note: `we hold ${row.state}, the API has no such payout` };
    }
    return undefined; // ready, skipped, failed, needs_review: nothing exists, as we think
  }

  const info = s.info;
  const why = notOurs(row, info, maySent(row));
  if (row.state === 'approved' || row.state === 'rejected') {
    if (why || info.status.toLowerCase() !== row.state) {
      return { api: info.status, action: 'flagged', note: why ? `the API's payout under this order_id is not this row's (${why}): check by hand` : 'a final state disagrees with the API: not changed, check by hand' };
    }
    return undefined;
  }
  if (why) {
    if (row.state === 'needs_review') return undefined; // already with an operator
    return write(MOVES.collision, collisionOutcome(row, info, why), 'needs_review', info.status, `order_id collision: ${why}`);
  }
  const o = outcomeOf(row, info);
  if (o.state === 'needs_review') {
    if (row.state === 'needs_review') return undefined;
    return write(MOVES.collision, o, 'needs_review', info.status, o.last_error ?? 'amount differs from the API');
  }
  if (o.state === 'pending') {
    if (row.state === 'needs_review') return undefined; // with an operator already
    if (row.state === 'pending') {
      if (!old) return undefined;
      return write(MOVES.review_age, { state: 'needs_review', last_error: `still Pending at the API more than ${Math.round(reviewAfter / 60_000)} min after it was sent: ask Alliance about it` }, 'needs_review', info.status, 'Pending past the review age');
    }
    // ready, skipped, failed or needs_review rows the API holds as ours: they must never be sent again.
    return write(MOVES.adopt, o, 'adopted', info.status, 'adopted pending');
  }
  return write(row.state === 'pending' ? MOVES.poll : MOVES.adopt, o, 'adopted', info.status, `adopted ${o.state}`);
}
