/**
 * Issue 20 point 7: with webhooks, polling is the safety net. The schedule on its own (the runs that use
 * it, counting status requests at the sandbox, are in test/webhooks-run.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { PollSchedule } from '../src/engine/schedule.js';

const O = { pollIntervalMs: 2_000, pollMaxIntervalMs: 60_000, webhookWaitMs: 30_000 };

describe('the poll schedule', () => {
  it('without webhooks: the poll interval, then 1.5x per check up to the maximum (as before)', () => {
    const s = new PollSchedule(O);
    expect(s.firstWaitMs()).toBe(2_000);
    expect([0, 1, 2, 3, 20].map((k) => s.afterCheckMs(k))).toEqual([2_000, 3_000, 4_500, 6_750, 60_000]);
    // Webhook timings change nothing while webhooks are off.
    for (let i = 0; i < 10; i++) s.observeWebhook(20_000);
    expect(s.firstWaitMs()).toBe(2_000);
  });

  it('with webhooks: --webhook-wait until five webhooks were seen, then 1.5x their 90th percentile plus a second', () => {
    const s = new PollSchedule(O);
    s.useWebhooks();
    expect(s.firstWaitMs()).toBe(30_000);
    for (let i = 0; i < 4; i++) s.observeWebhook(20_000 + i * 100);
    expect(s.firstWaitMs()).toBe(30_000);
    s.observeWebhook(20_400);
    // p90 of 20.0–20.4 s is 20.4 s: 1.5 × 20.4 + 1 = 31.6 s, after the webhooks a 20 s settle brings.
    expect(s.firstWaitMs()).toBe(31_600);
    // Still pending at that check: waits grow from there.
    expect(s.afterCheckMs(0)).toBe(31_600 * 1.5);
    expect(s.afterCheckMs(9)).toBe(60_000);
  });

  it('learns a fast bank too, never below --poll-interval, and follows a change of pace', () => {
    const s = new PollSchedule(O);
    s.useWebhooks();
    for (let i = 0; i < 50; i++) s.observeWebhook(300);
    expect(s.firstWaitMs()).toBe(2_000);
    // The bank slows down: the latest 200 webhooks are what counts.
    for (let i = 0; i < 200; i++) s.observeWebhook(120_000);
    expect(s.firstWaitMs()).toBe(181_000);
    // Nonsense (a clock step back) is ignored.
    s.observeWebhook(-5);
    s.observeWebhook(Number.NaN);
    expect(s.firstWaitMs()).toBe(181_000);
  });
});
