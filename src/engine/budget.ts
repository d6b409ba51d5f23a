import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { LocalGate, WaitQueue, type RateGate, type Ticket } from '../alliance/gate.js';
import { budgetRateLimited, reserveSlots } from '../db/budget.js';

/**
 * The rate gate of a runner: one budget per API account. On PostgreSQL every runner on the database shares
 * it (SharedGate): N runners with --rate R send R in total, and a 429 slows them all. The embedded database
 * has one process, so its gate is local.
 */
export function gateFor(db: Knex, account: string, rate: number, logger?: Logger, marginMs = 40): RateGate {
  return budgetIsShared(db) ? new SharedGate(db, account, { rate, marginMs, ...(logger ? { logger } : {}) }) : new LocalGate({ rate, marginMs });
}

/** PostgreSQL: other processes draw on the same budget, and what they want cannot be seen from here. */
export function budgetIsShared(db: Knex): boolean {
  return (db.client as { config?: { client?: unknown } }).config?.client === 'pg';
}

export interface SharedGateOptions {
  rate: number;
  /** Window margin, as in LocalGate. Default 40 ms. */
  marginMs?: number;
  /** Slots reserved per database round trip, as seconds of the full rate. Default 0.25 s. */
  reserveSeconds?: number;
  logger?: Logger;
  now?: () => number;
}

/** The shared sequence's slots are spent when granted: a late send cannot be taken back. */
const SPENT: Ticket = { sent: () => {}, cancel: () => {} };

/**
 * Slots reserved from the database a few at a time (a quarter second's worth), each used only within half
 * the margin after its time (a late slot is dropped, never used late: a request sent late could land in
 * the next window beside another runner's). So arrivals from all runners keep the spacing of the shared
 * sequence: any R + 1 of them span at least 1000 + margin/2 ms, less the error in placing the database's
 * clock on ours — kept small by using the reservation with the shortest round trip seen lately. A runner
 * that dies leaves at most its last reservation unused.
 */
export class SharedGate implements RateGate {
  private readonly now: () => number;
  private readonly baseIntervalMs: number;
  private readonly marginMs: number;
  private slots: number[] = [];
  private readonly waiters = new WaitQueue(() => this.pump());
  private reserving = false;
  /** After a failed reservation: no new attempt before this. */
  private pausedUntil = 0;
  /** Database clock minus ours (ms), with the round trip it was measured over. */
  private readonly offsets: { rtt: number; offset: number }[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The shared budget's factor (after 429s) at the last reservation. */
  private factor = 1;

  constructor(
    private readonly db: Knex,
    private readonly account: string,
    private readonly o: SharedGateOptions,
  ) {
    if (!(o.rate > 0)) throw new RangeError('rate must be > 0 requests per second');
    this.now = o.now ?? (() => performance.now());
    this.marginMs = o.marginMs ?? 40;
    this.baseIntervalMs = (1000 + this.marginMs) / o.rate;
  }

  take(signal?: AbortSignal, opts?: { first?: boolean }): Promise<Ticket> {
    return this.waiters.add(signal, opts?.first);
  }

  limitNow(): number {
    return this.o.rate * this.factor;
  }

  rateLimited(retryAfterMs: number | undefined): void {
    const wait = retryAfterMs ?? 1000;
    const until = this.now() + wait;
    this.slots = this.slots.filter((s) => s >= until);
    budgetRateLimited(this.db, this.account, wait, 0.1).catch((err: unknown) =>
      this.o.logger?.warn({ err: (err as Error).message }, 'could not record a 429 in the shared rate budget'),
    );
  }

  private pump(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    while (this.waiters.length > 0) {
      const t = this.now();
      while (this.slots.length > 0 && t >= this.slots[0]! + this.marginMs / 2) this.slots.shift(); // too late to use
      if (this.slots.length === 0) {
        if (t < this.pausedUntil) this.timer = setTimeout(() => this.pump(), Math.ceil(this.pausedUntil - t));
        else this.reserve();
        return;
      }
      const slot = this.slots[0]!;
      if (t < slot) {
        this.timer = setTimeout(() => this.pump(), Math.max(0, Math.ceil(slot - t)));
        return;
      }
      this.slots.shift();
      this.waiters.grant(SPENT);
    }
  }

  private reserve(): void {
    if (this.reserving) return;
    this.reserving = true;
    const n = Math.max(1, Math.min(this.waiters.length, Math.ceil(this.o.rate * (this.o.reserveSeconds ?? 0.25))));
    const t0 = this.now();
    reserveSlots(this.db, this.account, n, this.baseIntervalMs, 0.1)
      .then((r) => {
        // The database's "now" happened between sending the query and reading its answer: at the midpoint,
        // give or take half the round trip. The shortest round trip of the last few gives the best estimate.
        const t1 = this.now();
        this.offsets.push({ rtt: t1 - t0, offset: r.dbNow.getTime() - (t0 + t1) / 2 });
        if (this.offsets.length > 20) this.offsets.shift();
        const best = this.offsets.reduce((a, b) => (b.rtt < a.rtt ? b : a));
        const first = r.first.getTime() - best.offset;
        this.factor = Math.min(1, this.baseIntervalMs / r.intervalMs);
        for (let k = 0; k < n; k++) this.slots.push(first + k * r.intervalMs);
      })
      .catch((err: unknown) => {
        // Without the shared budget nothing is sent: wait a second and ask again.
        this.o.logger?.warn({ err: (err as Error).message }, 'could not reserve from the shared rate budget; retrying');
        this.pausedUntil = this.now() + 1000;
      })
      .finally(() => {
        this.reserving = false;
        this.pump();
      });
  }
}
