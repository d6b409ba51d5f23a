/**
 * The API's rate limit, governed where the server counts it: at the moment a request goes on the wire.
 *
 * A server that limits to R requests per second counts arrivals in a sliding one-second window. A client
 * that starts tasks at R per second can still put more than R on the wire in one second (tasks wait in the
 * connection pool and leave together; windows at the client and the server do not line up). So the gate
 * spaces the requests themselves: the client takes a slot right before writing a request, and slots are at
 * least `(1000 + margin) / R` ms apart, measured from when the previous one was actually released. Any delay
 * after that only spreads requests further apart, so no one-second window at the server can hold more than
 * R of them; the margin absorbs jitter between our clock and arrival. R × 1000 / (1000 + margin) is what is
 * achieved (98 % with the default 20 ms).
 *
 * On a 429 every request waits out Retry-After, the rate is halved, and it climbs back by a tenth of R per
 * second (additive increase, multiplicative decrease).
 */
export interface RateGate {
  /** Resolves when one request may go on the wire; the caller sends at once. Rejects if `signal` aborts. */
  take(signal?: AbortSignal): Promise<void>;
  /** The server answered 429: back off (Retry-After, when given, is honoured by everyone sharing the gate). */
  rateLimited(retryAfterMs: number | undefined): void;
}

export interface GateOptions {
  /** Requests per second at the server. */
  rate: number;
  /** Added to the one-second window to absorb jitter between the send and the arrival. Default 20 ms. */
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

/** One process's gate: slots spaced by the interval from the previous release. */
export class LocalGate implements RateGate {
  private readonly now: () => number;
  private readonly windowMs: number;
  private readonly backoff: Backoff;
  private nextAt: number;
  private readonly waiters: { resolve: () => void; reject: (e: unknown) => void; signal?: AbortSignal | undefined; onAbort?: () => void }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: GateOptions) {
    if (!(o.rate > 0)) throw new RangeError('rate must be > 0 requests per second');
    this.now = o.now ?? (() => performance.now());
    this.windowMs = 1000 + (o.marginMs ?? 20);
    this.backoff = new Backoff(this.now, o.minFactor, o.recoverPerSecond);
    this.nextAt = this.now();
  }

  /** Milliseconds between two requests now. */
  intervalMs(): number {
    return this.windowMs / (this.o.rate * this.backoff.current());
  }

  take(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const w: (typeof this.waiters)[number] = { resolve, reject, signal };
      if (signal) {
        w.onAbort = () => {
          const i = this.waiters.indexOf(w);
          if (i !== -1) this.waiters.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.waiters.push(w);
      this.pump();
    });
  }

  rateLimited(retryAfterMs: number | undefined): void {
    this.backoff.decrease();
    if (retryAfterMs !== undefined) this.nextAt = Math.max(this.nextAt, this.now() + retryAfterMs);
    this.reschedule();
  }

  private pump(): void {
    while (this.waiters.length > 0) {
      const t = this.now();
      if (t < this.nextAt) {
        this.reschedule();
        return;
      }
      const w = this.waiters.shift()!;
      if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
      // From the release itself: a late release never lets the next one come sooner.
      this.nextAt = t + this.intervalMs();
      w.resolve();
    }
  }

  private reschedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.waiters.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, Math.max(0, Math.ceil(this.nextAt - this.now())));
  }
}
