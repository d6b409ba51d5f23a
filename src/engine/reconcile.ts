import { NotFoundError } from '../alliance/errors.js';
import { withRetry } from '../alliance/retry.js';
import type { PayoutInfo } from '../alliance/types.js';
import { advance, claimStale, commitOutcome, iterateRows, leaseOwners, releaseLease, type PayoutRow } from '../db/rows.js';
import { Runner, type EngineDeps, type EngineOptions } from './context.js';
import { outcomeOf } from './payout.js';
import type { RowState } from '../states.js';
import { ownerIsDead } from './owner.js';

export interface ReconcileOptions extends Partial<EngineOptions> {
  batch: string;
  /** Rows still unresolved this long after they were first sent move to needs_review. Default 1 hour. */
  reviewAfterMs?: number;
  /** Only list, change nothing. */
  dryRun?: boolean;
}

export interface ReconcileFinding {
  row: number;
  orderId: string;
  ours: RowState;
  api: string;
  action: 'adopted' | 'flagged' | 'needs_review' | 'none';
  note: string;
}

export interface ReconcileResult {
  batch: string;
  checked: number;
  agreed: number;
  findings: ReconcileFinding[];
}

const STATUS_OF: Partial<Record<RowState, string>> = { pending: 'Pending', approved: 'Approved', rejected: 'Rejected' };

/**
 * Compares every sendable row of a batch with the API's status. Safe repairs are made: a final state the
 * API reports is adopted by a row that was not final (never the other way round). What stays unresolved
 * past `reviewAfterMs` moves to needs_review, for an operator. Final rows that disagree are only listed.
 */
export async function reconcileBatch(opts: ReconcileOptions, deps: EngineDeps): Promise<ReconcileResult> {
  const runner = new Runner(deps, opts);
  const { db } = runner;
  const reviewAfter = opts.reviewAfterMs ?? 3_600_000;
  const findings: ReconcileFinding[] = [];
  let checked = 0;
  let agreed = 0;

  // Rows a dead or expired runner left submitting are claimed first, so nobody else acts on them meanwhile.
  const dead = (await leaseOwners(db, opts.batch)).filter(ownerIsDead);
  const claimed = new Map<string, Awaited<ReturnType<typeof claimStale>>[number]>();
  if (!opts.dryRun) {
    for (;;) {
      const rows = await claimStale(db, opts.batch, runner.owner, runner.options.leaseMs, 500, dead);
      if (rows.length === 0) break;
      for (const r of rows) claimed.set(r.id, r);
    }
  }

  const work: Promise<void>[] = [];
  for await (const row of iterateRows(db, opts.batch)) {
    if (!row.order_id || row.state === 'invalid') continue;
    if (row.state === 'submitting' && !claimed.has(row.id) && !opts.dryRun) continue; // a live runner holds it
    checked++;
    work.push(
      check(runner, row, claimed.get(row.id)?.fence, reviewAfter, opts.dryRun ?? false).then((f) => {
        if (f) findings.push(f);
        else agreed++;
      }),
    );
    if (work.length >= 200) await Promise.all(work.splice(0));
  }
  await Promise.all(work);
  // Claims that ended in no decision go back at once, so the next run or reconcile can take them.
  for (const r of claimed.values()) await releaseLease(db, r.id, r.fence, r.last_error ?? 'checked by reconcile: unresolved');
  findings.sort((a, b) => a.row - b.row);
  return { batch: opts.batch, checked, agreed, findings };
}

async function fetchStatus(runner: Runner, orderId: string): Promise<PayoutInfo | null | Error> {
  try {
    return await withRetry(() => runner.api(() => runner.client.payoutStatus(orderId)), { ...runner.options.retry, retries: 3 });
  } catch (err) {
    if (err instanceof NotFoundError) return null;
    return err as Error;
  }
}

async function check(
  runner: Runner,
  row: PayoutRow,
  fence: string | undefined,
  reviewAfter: number,
  dryRun: boolean,
): Promise<ReconcileFinding | undefined> {
  const orderId = row.order_id!;
  const info = await fetchStatus(runner, orderId);
  const base = { row: row.row_no, orderId, ours: row.state };
  const sentAt = row.first_sent_at ? new Date(row.first_sent_at).getTime() : Date.now();
  const old = Date.now() - sentAt > reviewAfter;
  const db = runner.db;

  if (info instanceof Error) {
    return { ...base, api: 'unreachable', action: 'none', note: info.message };
  }
  if (info === null) {
    if (row.state === 'ready' || row.state === 'skipped' || row.state === 'failed') return undefined;
    const unresolved = row.state === 'submitting' || row.state === 'pending';
    if (unresolved && old && !dryRun) {
      const moved = await toReview(db, row, fence, 'the API has no payout with this order_id after the review age: check before resending');
      return { ...base, api: 'not found', action: moved ? 'needs_review' : 'none', note: 'not found at the API' };
    }
    return { ...base, api: 'not found', action: 'flagged', note: `we hold ${row.state}, the API has no such payout` };
  }
  const o = outcomeOf(row, info);
  if (STATUS_OF[row.state] === info.status && o.state !== 'needs_review') return undefined;
  const final = o.state === 'approved' || o.state === 'rejected';
  if (row.state === 'approved' || row.state === 'rejected') {
    return { ...base, api: info.status, action: 'flagged', note: 'a final state disagrees with the API: not changed, check by hand' };
  }
  if (dryRun) return { ...base, api: info.status, action: 'flagged', note: 'would adopt' };
  if (o.state === 'needs_review') {
    const moved = await toReview(db, row, fence, o.last_error ?? 'amount differs from the API');
    return { ...base, api: info.status, action: moved ? 'needs_review' : 'none', note: o.last_error ?? '' };
  }
  if (row.state === 'submitting') {
    if (!fence) return { ...base, api: info.status, action: 'none', note: 'held by a live runner' };
    const ok = await commitOutcome(db, row.id, fence, o);
    return { ...base, api: info.status, action: ok ? 'adopted' : 'none', note: `adopted ${o.state}` };
  }
  if (final || row.state !== 'pending') {
    // ready, skipped, failed, needs_review or pending rows take what the API says exists: it must never be sent again.
    const ok = await advance(db, row.id, ['ready', 'skipped', 'failed', 'needs_review', 'pending'], o);
    return { ...base, api: info.status, action: ok ? 'adopted' : 'none', note: `adopted ${o.state}` };
  }
  if (old && !dryRun) {
    const moved = await toReview(db, row, fence, 'still Pending at the API after the review age');
    return { ...base, api: info.status, action: moved ? 'needs_review' : 'none', note: 'pending too long' };
  }
  return undefined;
}

async function toReview(db: EngineDeps['db'], row: PayoutRow, fence: string | undefined, why: string): Promise<boolean> {
  if (row.state === 'submitting') {
    if (!fence) return false;
    return commitOutcome(db, row.id, fence, { state: 'needs_review', last_error: why });
  }
  return advance(db, row.id, ['pending'], { state: 'needs_review', last_error: why });
}
