/**
 * The money path's transition table (src/engine/machine.ts), driven directly: every phase and event, the
 * send cap, collisions, and what each end writes. No database, no network.
 */
import { describe, expect, it } from 'vitest';
import { mayHaveSent, next, start, type Event, type Memory, type Phase } from '../src/engine/machine.js';
import type { PayoutInfo } from '../src/alliance/types.js';
import type { PayoutRow } from '../src/db/rows.js';

const claimedAt = new Date('2026-11-27T10:00:00Z');
const row = {
  id: '1',
  order_id: 'PO1',
  amount_paise: '100000',
  account_no: '123456789012',
  ifsc: 'SBIN0000691',
  first_claimed_at: claimedAt,
} as unknown as PayoutRow;

/** An earlier claim's send deadline: a request of the row may have executed. */
const PREV = new Date('2026-11-01T00:00:00Z');

function mem(over: Partial<Memory> = {}): Memory {
  return { prevSendDeadline: null, sentBoundary: 0, sends: 0, priorSends: 0, maxSends: 3, sending: { kind: 'allowed' }, ...over };
}

function info(over: Partial<PayoutInfo> & { raw?: Record<string, unknown> } = {}): PayoutInfo {
  return {
    orderId: 'PO1',
    status: 'Approved',
    transactionId: '779812345678',
    amountPaise: 100000n,
    chargePaise: 590n,
    message: 'Payout has been completed.',
    raw: { beneficiary_acc_no: '123456789012', ifsc: 'SBIN0000691', created_at: '2026-11-27T10:00:05.000000Z' },
    ...over,
  };
}

const send: Phase = { kind: 'send' };
const resolve: Phase = { kind: 'resolve', onAbsent: { then: 'send' } };

function step(phase: Phase, event: Event, m: Memory = mem()) {
  return next(phase, event, m, row, 1_000);
}

describe('start', () => {
  it('sends a row no request of ours can have reached, without asking', () => {
    expect(start(mem())).toEqual({ kind: 'send' });
  });
  it('asks status first for a row that may have been sent', () => {
    expect(start(mem({ prevSendDeadline: PREV }))).toEqual(resolve);
  });
  it('cancels a never-sent row of a cancelled batch instead of sending it', () => {
    const p = start(mem({ sending: { kind: 'cancelled', note: 'cancelled by an operator before it was sent' } }));
    expect(p).toMatchObject({ kind: 'done', end: { kind: 'commit', outcome: { state: 'cancelled' } } });
  });
});

describe('send', () => {
  it('accepted: commits the outcome and counts one send that executed', () => {
    const s = step(send, { kind: 'accepted', info: info({ status: 'Pending', transactionId: null }) });
    expect(s.phase).toMatchObject({ kind: 'done', end: { kind: 'commit', outcome: { state: 'pending', sends: 1 } } });
    expect(s.mem).toMatchObject({ sends: 1 });
    expect(mayHaveSent(s.mem)).toBe(true);
  });
  it('ambiguous: counts a send, marks the row maybe-sent from now, and asks status next', () => {
    const s = step(send, { kind: 'ambiguous', message: 'timeout' });
    expect(s.phase).toEqual(resolve);
    expect(s.mem).toMatchObject({ sends: 1, sentBoundary: 1_000 });
    expect(mayHaveSent(s.mem)).toBe(true);
  });
  it('unavailable (429s, refused connections): not a send; the row goes back to ready with its send history restored (none), and the run stops', () => {
    const s = step(send, { kind: 'unavailable', message: '429' });
    expect(s.mem.sends).toBe(0);
    expect(s.phase).toMatchObject({
      kind: 'done',
      end: { kind: 'commit', outcome: { state: 'ready', sends: 0, restoreSendDeadline: { to: null } }, stop: { kind: 'unavailable' } },
    });
  });
  it('unavailable after an earlier possible send: leaves the row submitting (status first next time), its sends counted', () => {
    const s = step(send, { kind: 'unavailable', message: '429' }, mem({ sends: 1 }));
    expect(s.phase).toMatchObject({ kind: 'done', end: { kind: 'leave', sends: 1, stop: { kind: 'unavailable' } } });
    const t = step(send, { kind: 'unavailable', message: '429' }, mem({ prevSendDeadline: PREV, priorSends: 1 }));
    expect(t.phase).toMatchObject({ kind: 'done', end: { kind: 'leave', sends: 0 } });
  });
  it("stopped (an operator's stop reached the request before it left): not a send; the row goes back to ready, keeping the history of an earlier send that may have executed", () => {
    const s = step(send, { kind: 'stopped' });
    expect(s.mem.sends).toBe(0);
    expect(s.phase).toMatchObject({ kind: 'done', end: { kind: 'commit', outcome: { state: 'ready', sends: 0, restoreSendDeadline: { to: null } } } });
    expect((s.phase as { end: { stop?: unknown } }).end.stop).toBeUndefined();
    // An earlier claim's request may have executed (a trusted 404 since): ready, its deadline kept as it was.
    const earlier = step(send, { kind: 'stopped' }, mem({ prevSendDeadline: PREV }));
    expect(earlier.phase).toMatchObject({ kind: 'done', end: { kind: 'commit', outcome: { state: 'ready', sends: 0 } } });
    expect((earlier.phase as { end: { outcome: { restoreSendDeadline?: unknown } } }).end.outcome.restoreSendDeadline).toBeUndefined();
    // After an ambiguous send and a trusted 404: ready, but its send deadline is not restored (the next run asks first).
    const again = step(send, { kind: 'stopped' }, mem({ sends: 1 }));
    expect(again.phase).toMatchObject({ kind: 'done', end: { kind: 'commit', outcome: { state: 'ready', sends: 1 } } });
    expect((again.phase as { end: { outcome: { restoreSendDeadline?: unknown } } }).end.outcome.restoreSendDeadline).toBeUndefined();
    expect(start({ ...again.mem })).toEqual(resolve);
  });
  it('auth refused: not a send, the run stops', () => {
    const s = step(send, { kind: 'auth_refused', message: '401' });
    expect(s.phase).toMatchObject({ kind: 'done', end: { kind: 'commit', outcome: { state: 'ready' }, stop: { kind: 'auth' } } });
  });
  it('refused (4xx): failed at once when nothing of ours can have executed', () => {
    const s = step(send, { kind: 'refused', message: '422 ifsc invalid' });
    expect(s.phase).toMatchObject({ kind: 'done', end: { kind: 'commit', outcome: { state: 'failed', last_error: '422 ifsc invalid' } } });
  });
  it('refused after an earlier possible send: asks status first, failing only if none exists', () => {
    const s = step(send, { kind: 'refused', message: '400' }, mem({ sends: 1 }));
    expect(s.phase).toEqual({ kind: 'resolve', onAbsent: { then: 'fail', message: '400' } });
    const absent = next(s.phase, { kind: 'absent' }, s.mem, row, 2_000);
    expect(absent.phase).toMatchObject({ kind: 'done', end: { kind: 'commit', outcome: { state: 'failed' } } });
  });
  it('taken (422) when no request of ours can have executed: a collision, inspected, never adopted', () => {
    const s = step(send, { kind: 'taken', message: 'The order id has already been taken.' });
    expect(s.phase).toMatchObject({ kind: 'inspect' });
    const found = next(s.phase, { kind: 'found', info: info() }, s.mem, row, 2_000);
    expect(found.phase).toMatchObject({ kind: 'done', end: { kind: 'commit', outcome: { state: 'needs_review' } } });
    const end = (found.phase as Extract<Phase, { kind: 'done' }>).end;
    expect(end.kind === 'commit' && end.outcome.last_error).toMatch(/collided.*NOT paid/s);
    // The other payout's UTR is not this row's.
    expect(end.kind === 'commit' && end.outcome.transaction_id).toBeFalsy();
  });
  it('taken when a request of ours may have executed: asks status, adopts what is ours', () => {
    const s = step(send, { kind: 'taken', message: 'taken' }, mem({ sends: 1 }));
    expect(s.phase).toMatchObject({ kind: 'resolve', onAbsent: { then: 'review' } });
    const found = next(s.phase, { kind: 'found', info: info() }, s.mem, row, 2_000);
    expect(found.phase).toMatchObject({ kind: 'done', end: { kind: 'commit', outcome: { state: 'approved', transaction_id: '779812345678' } } });
  });
});

describe('resolve', () => {
  const maybe = mem({ prevSendDeadline: PREV, priorSends: 1 });
  it('found and ours: adopts it', () => {
    const s = step(resolve, { kind: 'found', info: info() }, maybe);
    expect(s.phase).toMatchObject({ kind: 'done', end: { kind: 'commit', outcome: { state: 'approved', charge_paise: 590n } } });
  });
  it('found with another amount: needs review, not adopted', () => {
    const s = step(resolve, { kind: 'found', info: info({ amountPaise: 999n }) }, maybe);
    expect(s.phase).toMatchObject({ kind: 'done', end: { kind: 'commit', outcome: { state: 'needs_review' } } });
  });
  it('found, paying another account, or created long before we first claimed the row: a collision', () => {
    for (const raw of [
      { beneficiary_acc_no: '999999999999', ifsc: 'SBIN0000691', created_at: '2026-11-27T10:00:05.000000Z' },
      { beneficiary_acc_no: '123456789012', ifsc: 'SBIN0000691', created_at: '2026-10-27T10:00:05.000000Z' },
    ]) {
      const s = step(resolve, { kind: 'found', info: info({ raw }) }, maybe);
      const end = (s.phase as Extract<Phase, { kind: 'done' }>).end;
      expect(end).toMatchObject({ kind: 'commit', outcome: { state: 'needs_review' } });
      expect(end.kind === 'commit' && end.outcome.last_error).toMatch(/collided/);
    }
  });
  it('found when no request of ours can have executed: a collision (reconcile and recovery never adopt it)', () => {
    const s = step(resolve, { kind: 'found', info: info() }, mem());
    expect(s.phase).toMatchObject({ kind: 'done', end: { kind: 'commit', outcome: { state: 'needs_review' } } });
  });
  it('absent (404 after the grace period): sends again, within the cap', () => {
    expect(step(resolve, { kind: 'absent' }, maybe).phase).toEqual(send);
  });
  it('absent with the cap reached: needs review, saying what happened', () => {
    const s = step(resolve, { kind: 'absent' }, mem({ prevSendDeadline: PREV, priorSends: 2, sends: 1 }));
    const end = (s.phase as Extract<Phase, { kind: 'done' }>).end;
    expect(end).toMatchObject({ kind: 'commit', outcome: { state: 'needs_review' } });
    expect(end.kind === 'commit' && end.outcome.last_error).toMatch(/sent 3 times.*404/);
  });
  it('absent in a cancelled batch: cancelled, never sent', () => {
    const s = step(resolve, { kind: 'absent' }, mem({ prevSendDeadline: PREV, sending: { kind: 'cancelled', note: 'cancelled by an operator before it was sent' } }));
    expect(s.phase).toMatchObject({ kind: 'done', end: { kind: 'commit', outcome: { state: 'cancelled' } } });
  });
  it('status unavailable: leaves the row submitting for a later run', () => {
    expect(step(resolve, { kind: 'status_unavailable', message: 'down' }, maybe).phase).toMatchObject({ kind: 'done', end: { kind: 'leave', why: 'down' } });
  });
  it('an event that cannot happen in a phase is a bug, not a guess', () => {
    expect(() => step(resolve, { kind: 'accepted', info: info() }, maybe)).toThrow(/cannot happen/);
    expect(() => step(send, { kind: 'absent' })).toThrow(/cannot happen/);
  });
});

describe('reconcile: the same table with a never-send policy', () => {
  const never = (over: Partial<Memory> = {}) => mem({ prevSendDeadline: PREV, sending: { kind: 'never' }, ...over });
  it('found and ours: adopted, as in a run', () => {
    expect(step(resolve, { kind: 'found', info: info() }, never()).phase).toMatchObject({ kind: 'done', end: { kind: 'commit', outcome: { state: 'approved' } } });
  });
  it('absent (404 trusted): back to ready for the next run, never sent here', () => {
    const s = step(resolve, { kind: 'absent' }, never());
    expect(s.phase).toMatchObject({ kind: 'done', end: { kind: 'commit', outcome: { state: 'ready' } } });
    expect((s.phase as Extract<Phase, { kind: 'done' }>).end).not.toMatchObject({ outcome: { state: 'submitting' } });
  });
  it('absent but asked too soon after the last send: left for later, nothing decided', () => {
    expect(step(resolve, { kind: 'absent_early' }, never()).phase).toMatchObject({ kind: 'done', end: { kind: 'leave', sends: 0 } });
  });
  it('a row of a cancelled batch found absent: cancelled (the cancel wins over requeueing)', () => {
    const s = step(resolve, { kind: 'absent' }, mem({ prevSendDeadline: PREV, sending: { kind: 'cancelled', note: 'x' } }));
    expect(s.phase).toMatchObject({ kind: 'done', end: { kind: 'commit', outcome: { state: 'cancelled' } } });
  });
});

describe('issue 18, bug 2: a claim that ends unresolved keeps its send count', () => {
  it('an ambiguous initiate, then status unavailable: left submitting with the one send that may have executed', () => {
    const sent = step(send, { kind: 'ambiguous', message: '502 on the POST' });
    const left = next(sent.phase, { kind: 'status_unavailable', message: '503 on status' }, sent.mem, row, 2_000);
    expect(left.phase).toMatchObject({ kind: 'done', end: { kind: 'leave', sends: 1 } });
  });
});
