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
  /** Resolves when one request may go on the wire; the caller sends at once and calls `sent()` (or `cancel()`). */
  take(signal?: AbortSignal): Promise<Ticket>;
  /** The server answered 429: back off (Retry-After, when given, is honoured by everyone sharing the gate). */
  rateLimited(retryAfterMs: number | undefined): void;
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
  add(signal: AbortSignal | undefined): Promise<Ticket> {
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
      this.items.push(w);
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

  take(signal?: AbortSignal): Promise<Ticket> {
    return this.waiters.add(signal);
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
