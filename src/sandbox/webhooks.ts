import { Agent, request } from 'undici';
import type { FaultOptions } from './faults.js';
import type { Rng } from './rng.js';

/**
 * Webhook delivery as a provider would do it: POST {event, data} to the merchant's URL, retry with
 * exponential backoff on a non-2xx answer or a network error, give up after a few attempts.
 * The document defines no webhook signature, so none is sent; a receiver must treat the body as a
 * hint and confirm through the authenticated status API.
 * Faults: some deliveries are sent twice (webhookDuplicateRate), some are held back so that later
 * events overtake them (webhookReorder).
 */

export type WebhookEvent = 'payout.succeeded' | 'payout.failed' | 'payin.initiated' | 'payin.succeeded' | 'payin.failed';

export interface WebhookSenderOptions {
  url: string | undefined;
  rng: Rng;
  faults: () => FaultOptions;
  logger?: ((line: object) => void) | undefined;
  /** Attempts per delivery, the first included. */
  attempts?: number;
  baseDelayMs?: number;
  timeoutMs?: number;
  /** Shortest and longest hold-back of a reordered delivery (default 50 to 500 ms). */
  reorderMinMs?: number;
  reorderMaxMs?: number;
}

export class WebhookSender {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inflight = new Set<AbortController>();
  private pending = 0;
  private waiters: Array<() => void> = [];
  private closed = false;
  private sent = 0;
  private failed = 0;
  private heldBack = 0;
  /** Keep-alive connections to the receiver (undici's request costs a fraction of fetch's CPU per call). */
  private readonly agent = new Agent({ connections: 64, keepAliveTimeout: 10_000 });

  constructor(private readonly o: WebhookSenderOptions) {}

  /** Queues an event; returns at once. */
  send(event: WebhookEvent, data: Record<string, unknown>): void {
    if (!this.o.url || this.closed) return;
    const f = this.o.faults();
    // Draw both values every time so the stream stays aligned whatever the options are.
    const dup = this.o.rng.chance(f.webhookDuplicateRate);
    const holdBack = this.o.rng.chance(f.webhookReorder ? 0.5 : 0);
    const holdMs = this.o.rng.int(this.o.reorderMinMs ?? 50, Math.max(this.o.reorderMinMs ?? 50, this.o.reorderMaxMs ?? 500));
    if (holdBack) this.heldBack++;
    const body = JSON.stringify({ event, data });
    this.deliver(event, body, holdBack ? holdMs : 0);
    if (dup) this.deliver(event, body, (holdBack ? holdMs : 0) + 20);
  }

  /** Resolves when every queued delivery has succeeded or given up. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  stats(): { sent: number; failed: number; pending: number; heldBack: number } {
    return { sent: this.sent, failed: this.failed, pending: this.pending, heldBack: this.heldBack };
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const c of this.inflight) c.abort();
    this.inflight.clear();
    void this.agent.close().catch(() => undefined);
    this.pending = 0;
    this.flushWaiters();
  }

  private deliver(event: string, body: string, delayMs: number): void {
    this.pending++;
    this.later(delayMs, () => void this.attempt(event, body, 1));
  }

  private later(ms: number, fn: () => void): void {
    if (this.closed) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    t.unref();
    this.timers.add(t);
  }

  private async attempt(event: string, body: string, n: number): Promise<void> {
    if (this.closed) return;
    const attempts = this.o.attempts ?? 5;
    const ctl = new AbortController();
    this.inflight.add(ctl);
    const timer = setTimeout(() => ctl.abort(), this.o.timeoutMs ?? 5000);
    timer.unref();
    let outcome: string;
    try {
      const res = await request(this.o.url!, {
        dispatcher: this.agent,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'alliance-sandbox-webhook' },
        body,
        signal: ctl.signal,
      });
      // Drain so the connection can be reused.
      await res.body.dump().catch(() => undefined);
      outcome = res.statusCode >= 200 && res.statusCode < 300 ? 'ok' : `http ${res.statusCode}`;
    } catch (e) {
      outcome = `error ${(e as Error).name}`;
    } finally {
      clearTimeout(timer);
      this.inflight.delete(ctl);
    }
    if (this.closed) return;
    this.o.logger?.({ component: 'sandbox', msg: 'webhook', event, attempt: n, outcome });
    if (outcome === 'ok') {
      this.sent++;
      this.done();
    } else if (n < attempts) {
      this.later((this.o.baseDelayMs ?? 100) * 2 ** (n - 1), () => void this.attempt(event, body, n + 1));
    } else {
      this.failed++;
      this.done();
    }
  }

  private done(): void {
    this.pending = Math.max(0, this.pending - 1);
    if (this.pending === 0) this.flushWaiters();
  }

  private flushWaiters(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }
}
