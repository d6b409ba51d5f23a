/**
 * The API's rate limit, governed where the server counts it: at the moment a request goes on the wire.
 *
 * A server that limits to R requests per second counts arrivals in a sliding one-second window. A client
 * that starts tasks at R per second can still put more than R on the wire in one second (tasks wait in the
 * connection pool and leave together; a stalled event loop holds one request back and lets the next go
 * right after it). So the gate counts the requests themselves: a request takes a ticket, and says `sent()`
 * at the moment it is written. A ticket is granted only while fewer than R requests were sent (or granted
 * and not yet sent) in the last 1000 + margin ms, and tickets are paced evenly, (1000 + margin) / R apart.
 * Whatever delays a request between its ticket and the wire, no 1000 + margin window of send times holds
 * more than R; the margin absorbs the jitter between sending and arriving (measured on this machine: 20 ms
 * was not always enough, 40 ms was; BENCHMARKS.md). R × 1000 / (1000 + margin) is what is achieved (96 %
 * with the default 40 ms).
 *
 * On a 429 every request waits out Retry-After, the rate is halved, and it climbs back by a tenth of R per
 * second (additive increase, multiplicative decrease).
 */
export interface Ticket {
  /** The request is being written now. */
  sent(): void;
  /** The request will not be sent after all (cancelled before the wire). */
  cancel(): void;
}

export interface RateGate {
  /**
   * Resolves when one request may go on the wire; the caller sends at once and calls `sent()` (or `cancel()`).
   * `first`: ahead of those already waiting (the hint lane, which rations itself: splitLanes).
   */
  take(signal?: AbortSignal, opts?: { first?: boolean }): Promise<Ticket>;
  /** The server answered 429: back off (Retry-After, when given, is honoured by everyone sharing the gate). */
  rateLimited(retryAfterMs: number | undefined): void;
  /** Requests per second the gate grants now (the rate after any 429 backoff), when it knows. */
  limitNow?(): number;
}

export interface GateOptions {
  /** Requests per second at the server. */
  rate: number;
  /** Added to the one-second window to absorb jitter between the send and the arrival. Default 40 ms. */
  marginMs?: number;
  /** Lowest fraction of the rate after repeated 429s. Default 0.1. */
  minFactor?: number;
  /** Fraction of the rate regained per second after a 429. Default 0.1. */
  recoverPerSecond?: number;
  /** Clock (ms, monotonic). Default performance.now. */
  now?: () => number;
}

/** Time-based AIMD factor: halves on a 429, climbs back linearly. */
export class Backoff {
  private factor = 1;
  private at: number;
  constructor(
    private readonly now: () => number,
    private readonly minFactor = 0.1,
    private readonly recoverPerSecond = 0.1,
  ) {
    this.at = now();
  }
  current(): number {
    const t = this.now();
    this.factor = Math.min(1, this.factor + ((t - this.at) / 1000) * this.recoverPerSecond);
    this.at = t;
    return this.factor;
  }
  decrease(): void {
    this.factor = Math.max(this.minFactor, this.current() / 2);
  }
}

type Waiter = { resolve: (t: Ticket) => void; reject: (e: unknown) => void; signal?: AbortSignal | undefined; onAbort?: () => void };

/** Waiters in order, each given up when its signal aborts. */
export class WaitQueue {
  private readonly items: Waiter[] = [];
  constructor(private readonly onChange: () => void) {}
  get length(): number {
    return this.items.length;
  }
  add(signal: AbortSignal | undefined, first = false): Promise<Ticket> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<Ticket>((resolve, reject) => {
      const w: Waiter = { resolve, reject, signal };
      if (signal) {
        w.onAbort = () => {
          const i = this.items.indexOf(w);
          if (i !== -1) this.items.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      if (first) this.items.unshift(w);
      else this.items.push(w);
      this.onChange();
    });
  }
  grant(ticket: Ticket): void {
    const w = this.items.shift()!;
    if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
    w.resolve(ticket);
  }
}

/** One process's gate. */
export class LocalGate implements RateGate {
  private readonly now: () => number;
  private readonly windowMs: number;
  private readonly backoff: Backoff;
  /** Send times in the window; Infinity for a ticket granted and not yet sent. */
  private log: number[] = [];
  private nextAt: number;
  private readonly waiters = new WaitQueue(() => this.pump());
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: GateOptions) {
    if (!(o.rate > 0)) throw new RangeError('rate must be > 0 requests per second');
    this.now = o.now ?? (() => performance.now());
    this.windowMs = 1000 + (o.marginMs ?? 40);
    this.backoff = new Backoff(this.now, o.minFactor, o.recoverPerSecond);
    this.nextAt = this.now();
  }

  /** Milliseconds between two requests now. */
  intervalMs(): number {
    return this.windowMs / this.limit();
  }

  private limit(): number {
    return Math.max(1, this.o.rate * this.backoff.current());
  }

  limitNow(): number {
    return this.limit();
  }

  take(signal?: AbortSignal, opts?: { first?: boolean }): Promise<Ticket> {
    return this.waiters.add(signal, opts?.first);
  }

  rateLimited(retryAfterMs: number | undefined): void {
    this.backoff.decrease();
    if (retryAfterMs !== undefined) this.nextAt = Math.max(this.nextAt, this.now() + retryAfterMs);
    this.pump();
  }

  private pump(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    while (this.waiters.length > 0) {
      const t = this.now();
      // Sent requests leave the window; granted-but-unsent ones (Infinity) stay until they are sent.
      this.log = this.log.filter((s) => s > t - this.windowMs);
      let waitUntil = this.nextAt;
      if (this.log.length >= Math.floor(this.limit())) {
        const oldest = Math.min(...this.log);
        // Full of unsent grants: wait for a `sent()` or `cancel()` to call pump again.
        if (!Number.isFinite(oldest)) return;
        waitUntil = Math.max(waitUntil, oldest + this.windowMs);
      }
      if (t < waitUntil) {
        this.timer = setTimeout(() => this.pump(), Math.max(1, Math.ceil(waitUntil - t)));
        return;
      }
      // Even pacing without drift: the next slot follows this one's, unless this grant came late.
      this.nextAt = Math.max(this.nextAt, t - this.intervalMs()) + this.intervalMs();
      this.log.push(Infinity);
      const entry = { done: false };
      const settle = (at: number | undefined) => {
        if (entry.done) return;
        entry.done = true;
        // Unsent grants are interchangeable placeholders: settle any one of them.
        const k = this.log.indexOf(Infinity);
        if (k !== -1) {
          if (at === undefined) this.log.splice(k, 1);
          else this.log[k] = at;
        }
        this.pump();
      };
      this.waiters.grant({ sent: () => settle(this.now()), cancel: () => settle(undefined) });
    }
  }
}

/** A gate for a request whose ticket was taken already (it only passes the ticket and a 429 on). */
export function ticketTaken(ticket: Ticket, gate: RateGate): RateGate {
  return { take: () => Promise.resolve(ticket), rateLimited: (ms) => gate.rateLimited(ms) };
}

export interface LaneOptions {
  /** The gate's rate (requests per second), used when the gate cannot tell its current one. */
  rate: number;
  /** The window the share is counted over, as the gate's. Default 40 (1,040 ms). */
  marginMs?: number;
  /** Fraction of the rate the hint lane may take while the main lane wants slots. Default 0.2. */
  share?: number;
  /**
   * The budget is shared with processes whose demand cannot be seen from here (the PostgreSQL budget):
   * the hint lane keeps to its share even when this process has nothing else to send.
   */
  alwaysCap?: boolean;
  now?: () => number;
}

export interface Lanes {
  /** Payouts, polls, the balance check: what a batch needs. */
  main: RateGate;
  /** Work nobody is waiting on (lookups prompted by webhooks): at most its share while the main lane is busy. */
  hints: RateGate;
}

/**
 * Two lanes over one gate, so that lookups prompted by webhooks never starve the payouts. Anyone who has
 * the webhook URL can make us look things up (the document defines no webhook signature), and before this
 * a flood of payin hints queued 800 s of lookups at the account's whole rate ahead of the payouts.
 *
 * The hint lane sends one request at a time into the gate, and only while it took fewer than
 * share × rate tickets in the last window — whenever the main lane is busy (waiting for a ticket, or
 * granted one within the last window) or the budget is shared with processes this one cannot see. With
 * the main lane idle on a local gate, hints use the whole rate: nothing else wants it. A hint that may go
 * goes to the head of the gate's queue (else it would wait behind every payout and get no share at all);
 * the main lane's requests go straight to the gate, behind at most that one hint.
 */
export function splitLanes(gate: RateGate, o: LaneOptions): Lanes {
  const split = new LaneSplit(gate, o);
  const limitNow = () => gate.limitNow?.() ?? o.rate;
  return {
    main: { take: (signal) => split.takeMain(signal), rateLimited: (ms) => gate.rateLimited(ms), limitNow },
    hints: { take: (signal) => split.takeHint(signal), rateLimited: (ms) => gate.rateLimited(ms), limitNow },
  };
}

class LaneSplit {
  private readonly now: () => number;
  private readonly windowMs: number;
  private readonly share: number;
  private mainWaiting = 0;
  private lastMainGrant = -Infinity;
  /** When the hint lane's tickets of the last window were granted. */
  private hintGrants: number[] = [];
  private readonly hintWaiters = new WaitQueue(() => this.pump());
  /** A hint request is waiting in the gate itself. */
  private atGate = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly gate: RateGate,
    private readonly o: LaneOptions,
  ) {
    this.now = o.now ?? (() => performance.now());
    this.windowMs = 1000 + (o.marginMs ?? 40);
    this.share = o.share ?? 0.2;
    if (!(this.share > 0 && this.share <= 1)) throw new RangeError('the hint share must be above 0 and at most 1');
  }

  async takeMain(signal?: AbortSignal): Promise<Ticket> {
    this.mainWaiting++;
    try {
      const t = await this.gate.take(signal);
      this.lastMainGrant = this.now();
      return t;
    } finally {
      this.mainWaiting--;
      // The main lane going quiet lifts the cap after a window: have a timer for that.
      if (this.mainWaiting === 0) this.pump();
    }
  }

  takeHint(signal?: AbortSignal): Promise<Ticket> {
    return this.hintWaiters.add(signal);
  }

  /** Hint tickets allowed in one window now. */
  private cap(t: number): number {
    const mainBusy = this.mainWaiting > 0 || t - this.lastMainGrant < this.windowMs;
    if (!mainBusy && !this.o.alwaysCap) return Infinity;
    return Math.max(1, Math.floor(this.share * (this.gate.limitNow?.() ?? this.o.rate) + 1e-9));
  }

  private pump(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.hintWaiters.length === 0 || this.atGate) return;
    const t = this.now();
    this.hintGrants = this.hintGrants.filter((g) => g > t - this.windowMs);
    if (this.hintGrants.length >= this.cap(t)) {
      // Look again when the oldest hint ticket leaves the window, or when the main lane has been quiet a window.
      let at = this.hintGrants[0]! + this.windowMs;
      if (!this.o.alwaysCap && this.mainWaiting === 0) at = Math.min(at, this.lastMainGrant + this.windowMs);
      this.timer = setTimeout(() => this.pump(), Math.max(1, Math.ceil(at - t)));
      return;
    }
    this.atGate = true;
    this.gate.take(undefined, { first: true }).then(
      (ticket) => {
        this.atGate = false;
        this.hintGrants.push(this.now());
        // Its caller may have given up while it waited in the gate: the next one takes it, or it goes back.
        if (this.hintWaiters.length > 0) this.hintWaiters.grant(ticket);
        else ticket.cancel();
        this.pump();
      },
      () => {
        this.atGate = false;
        this.pump();
      },
    );
  }
}
