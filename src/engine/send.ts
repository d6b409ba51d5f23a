import { claimReady, claimStale, leaseOwners, type Claimed } from '../db/claims.js';
import type { Runner } from './context.js';
import { CrashError } from './crash.js';
import { ownerIsDead } from './owner.js';
import { processRow } from './submit.js';

/**
 * The send phase: first the rows other runners left unresolved (status first), then ready rows claimed a
 * few at a time, keeping about twice the concurrency in hand so the queue never idles. Several runners on
 * one batch (PostgreSQL) share the work through the claims; each row goes to exactly one of them.
 * Throws StopSending when the API stopped taking requests (after the rows in hand are settled).
 */
export async function sendAll(runner: Runner, batch: string, stop: AbortSignal | undefined): Promise<void> {
  const { db, options, owner } = runner;
  runner.stopSending = stop;
  const target = Math.max(2, options.concurrency * 2);
  const active = new Set<Promise<void>>();
  let fatal: unknown;
  const start = (row: Claimed, claimStartedAt: number) => {
    const p: Promise<void> = processRow(runner, row, claimStartedAt)
      .then(() => undefined)
      .catch((err: unknown) => {
        // The first reason to stop wins; a crash kills everything at once.
        if (fatal === undefined || (err instanceof CrashError && !(fatal instanceof CrashError))) fatal = err;
        if (err instanceof CrashError) runner.kill(err);
      })
      .finally(() => active.delete(p));
    active.add(p);
  };

  // Rows others left unresolved (a dead process on this host, or an expired lease): each is tried once per
  // run (one it cannot resolve now is not retaken in a loop), status first. Returns how many it took.
  const tried: string[] = [];
  const recover = async (): Promise<number> => {
    const dead = (await leaseOwners(db, batch)).filter(ownerIsDead);
    let taken = 0;
    for (;;) {
      if (fatal !== undefined || stop?.aborted) break;
      const t = Date.now();
      const rows = await claimStale(db, batch, owner, options.leaseMs, target, dead, tried);
      if (rows.length === 0) break;
      taken += rows.length;
      runner.emit({ type: 'recovering', rows: rows.length });
      for (const r of rows) {
        tried.push(r.id);
        start(r, t);
      }
      await Promise.all([...active]);
    }
    return taken;
  };
  await recover();

  for (;;) {
    if (fatal !== undefined || stop?.aborted) break;
    // Refill in chunks once half the rows in hand are done: one claim statement per several payouts.
    const room = active.size <= target / 2 ? target - active.size : 0;
    if (room > 0) {
      const t = Date.now();
      const rows = await claimReady(db, batch, owner, options.leaseMs, room, runner.approvedRevision);
      for (const r of rows) start(r, t);
      if (rows.length === 0) {
        if (active.size > 0) await Promise.race(active);
        // Nothing left to claim: a peer that died meanwhile left rows, take them over now, not after its lease.
        else if ((await recover()) === 0) break;
      }
    } else {
      await Promise.race(active);
    }
  }
  await Promise.all([...active]);
  if (fatal !== undefined) throw fatal;
}
