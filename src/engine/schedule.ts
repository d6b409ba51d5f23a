/**
 * When a pending payout is asked about. Without webhooks the poll is how results arrive: the first check
 * after `pollIntervalMs`, then 1.5× longer each time up to `pollMaxIntervalMs`.
 *
 * With webhooks the webhook is how results arrive, and its check is the one status request a payout
 * needs; a poll is only the safety net for a webhook that is late or lost. So the first check waits for
 * the webhook: `webhookWaitMs` until the run has seen enough webhooks, then 1.5× the 90th percentile of
 * how long this run's payouts took from being sent to their webhook, plus a second, never less than
 * `pollIntervalMs`. After a check that still says Pending, the waits grow 1.5× from there. (Issue 20: with
 * the plain schedule, payouts settling in 20 s cost 7 requests each; this way about 2.)
 */
export interface PollScheduleOptions {
  pollIntervalMs: number;
  pollMaxIntervalMs: number;
  webhookWaitMs: number;
}

/** Webhooks seen before their timing is trusted over webhookWaitMs. */
const MIN_SAMPLES = 5;
/** The latest this many are kept: the estimate follows a change in the bank's pace. */
const MAX_SAMPLES = 200;
/** However slow the webhooks, a pending payout is asked about within this long. */
const MAX_WAIT_MS = 30 * 60_000;

export class PollSchedule {
  private webhooks = false;
  private readonly samples: number[] = [];
  private next = 0;
  private learned: number | undefined;

  constructor(private readonly o: PollScheduleOptions) {}

  /** Webhooks are being received: polling becomes the fallback. */
  useWebhooks(): void {
    this.webhooks = true;
  }

  get webhooksOn(): boolean {
    return this.webhooks;
  }

  /** A webhook's check found its payout final, `ms` after the payout was first sent. */
  observeWebhook(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    if (this.samples.length < MAX_SAMPLES) this.samples.push(ms);
    else this.samples[this.next] = ms;
    this.next = (this.next + 1) % MAX_SAMPLES;
    this.learned = undefined;
  }

  /** The learned wait for a webhook (ms), once enough were seen. */
  learnedWaitMs(): number | undefined {
    if (this.samples.length < MIN_SAMPLES) return undefined;
    if (this.learned === undefined) {
      const sorted = [...this.samples].sort((a, b) => a - b);
      const p90 = sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.9) - 1)]!;
      this.learned = Math.min(MAX_WAIT_MS, 1.5 * p90 + 1000);
    }
    return this.learned;
  }

  private base(): number {
    return Math.max(this.o.pollIntervalMs, this.learnedWaitMs() ?? this.o.webhookWaitMs);
  }

  /** The wait before the first check of a payout just accepted (Pending). */
  firstWaitMs(): number {
    return this.webhooks ? this.base() : this.o.pollIntervalMs;
  }

  /** The wait after a check that found the payout still pending; `pollCount` checks were made before it. */
  afterCheckMs(pollCount: number): number {
    if (!this.webhooks) return Math.min(this.o.pollMaxIntervalMs, this.o.pollIntervalMs * 1.5 ** pollCount);
    const base = this.base();
    return Math.min(Math.max(this.o.pollMaxIntervalMs, base), base * 1.5 ** (pollCount + 1));
  }
}
