/**
 * The hints waiting for their lookup, in bounded memory. A hint is three short strings and a time (never
 * the body it came in), at most one waits per order_id (a later hint for it replaces the earlier: the
 * lookup asks about now, whatever either claimed), and at most `max` wait: beyond that a hint is dropped
 * and counted. Dropping is safe: a hint only brings a status check forward; for payouts the poll and
 * `payouts reconcile` catch up, and a payin can be looked up with `payouts payin-status`.
 *
 * A hint for an order_id whose lookup is running is kept for one more lookup after it (the later event
 * may describe a later state), so one order_id never has two lookups at once.
 */
export interface QueuedHint {
  orderId: string;
  event: string;
  receivedAt: Date;
}

export type OfferOutcome = 'queued' | 'deduplicated' | 'dropped';

export interface HintQueueOptions<H extends QueuedHint> {
  /** Most hints waiting; more are dropped. */
  max: number;
  /** Lookups at once. */
  concurrency: number;
  /** One lookup; its errors are the caller's to catch (a rejection is ignored here). */
  run: (hint: H) => Promise<void>;
}

export class HintQueue<H extends QueuedHint> {
  /** Waiting, oldest first (a Map keeps insertion order; replacing a value keeps its place). */
  private readonly waiting = new Map<string, H>();
  /** Running, each with the hint that arrived for it meanwhile. */
  private readonly running = new Map<string, { again: H | undefined }>();
  private stopped = false;
  private peak = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly o: HintQueueOptions<H>) {
    if (!(o.max >= 1) || !(o.concurrency >= 1)) throw new RangeError('a hint queue needs room for one hint and one lookup');
  }

  offer(h: H): OfferOutcome {
    if (this.stopped) return 'dropped';
    const run = this.running.get(h.orderId);
    if (run) {
      const had = run.again !== undefined;
      run.again = h;
      this.notePeak();
      return had ? 'deduplicated' : 'queued';
    }
    if (this.waiting.has(h.orderId)) {
      this.waiting.set(h.orderId, h);
      return 'deduplicated';
    }
    if (this.waiting.size >= this.o.max) return 'dropped';
    this.waiting.set(h.orderId, h);
    this.notePeak();
    this.pump();
    return 'queued';
  }

  /** Hints waiting for a lookup (including those kept to run again after the current one). */
  get length(): number {
    let n = this.waiting.size;
    for (const r of this.running.values()) if (r.again) n++;
    return n;
  }

  /** Lookups running now. */
  get active(): number {
    return this.running.size;
  }

  /** The most hints that were ever waiting at once. */
  get maxLength(): number {
    return this.peak;
  }

  /** Resolves when nothing waits and no lookup runs. */
  idle(): Promise<void> {
    if (this.running.size === 0 && this.waiting.size === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Drops every waiting hint and takes no more; the lookups running finish. Returns how many were dropped. */
  stop(): number {
    this.stopped = true;
    const n = this.length;
    this.waiting.clear();
    for (const r of this.running.values()) r.again = undefined;
    this.settleIdle();
    return n;
  }

  private notePeak(): void {
    this.peak = Math.max(this.peak, this.length);
  }

  private pump(): void {
    while (this.running.size < this.o.concurrency && this.waiting.size > 0) {
      const [orderId, h] = this.waiting.entries().next().value as [string, H];
      this.waiting.delete(orderId);
      const entry: { again: H | undefined } = { again: undefined };
      this.running.set(orderId, entry);
      void this.work(h, entry).finally(() => {
        this.running.delete(orderId);
        this.pump();
        this.settleIdle();
      });
    }
  }

  private async work(first: H, entry: { again: H | undefined }): Promise<void> {
    let h: H | undefined = first;
    while (h) {
      await this.o.run(h).catch(() => undefined);
      h = entry.again;
      entry.again = undefined;
    }
  }

  private settleIdle(): void {
    if (this.running.size > 0 || this.waiting.size > 0) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const r of w) r();
  }
}
