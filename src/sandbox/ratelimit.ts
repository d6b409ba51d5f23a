/**
 * A token bucket per access key. Capacity is one second's worth of requests (at least 1), so a
 * client that paces itself at `rate` per second is never refused, and a burst above it is.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly capacity: number;

  constructor(private readonly rate: number) {
    this.capacity = Math.max(1, rate);
  }

  /** Takes a token; returns 0 when allowed, else the seconds to wait (for Retry-After). */
  take(key: string, now: number): number {
    const b = this.buckets.get(key) ?? { tokens: this.capacity, at: now };
    b.tokens = Math.min(this.capacity, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.rate));
  }
}

/**
 * A sliding one-second window per access key: a request is refused when, counting it, more than `rate`
 * requests arrived in (t - 1000, t]. Every arrival counts, refused ones too, as a server that counts
 * requests at its door does; so a client that keeps knocking while refused stays refused. Arrival
 * times are taken when the request arrives (before its body is read), so two requests checked out of
 * order are still counted in the order they came.
 */
export class SlidingWindowLimiter {
  private readonly arrivals = new Map<string, number[]>();
  private readonly limit: number;

  constructor(rate: number, private readonly windowMs = 1000) {
    this.limit = Math.max(1, Math.floor(rate));
  }

  /** Counts an arrival at `t` (ms, fractional allowed); returns 0 when allowed, else seconds to wait. */
  take(key: string, t: number): number {
    // Keep two windows: an arrival checked late may still need the ones just before it.
    const kept = (this.arrivals.get(key) ?? []).filter((x) => x > t - 2 * this.windowMs);
    kept.push(t);
    this.arrivals.set(key, kept);
    const inWindow = kept.filter((x) => x > t - this.windowMs && x <= t);
    if (inWindow.length <= this.limit) return 0;
    // The window drops below the limit once enough of its oldest arrivals age out.
    const sorted = inWindow.sort((a, b) => a - b);
    const freeAt = sorted[inWindow.length - this.limit - 1]! + this.windowMs;
    return Math.max(1, Math.ceil((freeAt - t) / 1000));
  }
}
