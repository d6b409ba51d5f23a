import type { Rng } from './rng.js';
import type { PayoutInput } from './validate.js';

/**
 * The sandbox's books: the wallet, every payout and payin, and the timers that settle them.
 * Node runs each request handler to completion between awaits, and every method here is
 * synchronous, so check-then-debit is atomic without locks.
 *
 * Money decision: initiate debits amount + charge; a rejected payout refunds both (the charge is
 * a fee for a transfer that did not happen). An approved payin credits its amount, no fee.
 */

export type PayoutStatus = 'Pending' | 'Approved' | 'Rejected';

export interface LedgerEntry {
  orderId: string;
  executions: number;
  amountPaise: bigint;
  chargePaise: bigint;
  status: PayoutStatus;
  transactionId: string | null;
  accountNo: string;
  ifsc: string;
  method: string;
  createdAt: string;
  updatedAt: string;
}

export interface PayoutRecord extends PayoutInput {
  seq: number;
  chargePaise: bigint;
  status: PayoutStatus;
  transactionId: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface PayinRecord {
  orderId: string;
  userId: string;
  amountPaise: bigint;
  method: string;
  outcome: 'Approved' | 'Rejected';
  status: PayoutStatus;
  transactionId: string | null;
  createdAt: number;
  updatedAt: number;
  processedAt: number;
}

export interface LedgerOptions {
  balancePaise: bigint;
  settleMs: number;
  dedupOrderIds: boolean;
  chargePaise: (amountPaise: bigint, method: string) => bigint;
  rejectAccount: (accountNo: string) => boolean;
  rng: Rng;
  onPayoutSettled: (p: PayoutRecord) => void;
  onPayinCreated: (p: PayinRecord) => void;
  onPayinSettled: (p: PayinRecord) => void;
  now?: () => number;
}

export type InitiateResult =
  | { kind: 'created'; payout: PayoutRecord }
  | { kind: 'insufficient' };

/** "2024-11-14T14:35:26.000000Z": seconds precision with six zeros, as Laravel serializes MySQL timestamps. */
export function apiTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, '.000000Z');
}

/** "2025-08-04 16:58:30" in India time, as the document's time_of_processing (updated_at is the same instant in UTC). */
export function istTime(ms: number): string {
  return new Date(ms + 330 * 60_000).toISOString().slice(0, 19).replace('T', ' ');
}

export class Ledger {
  private balance: bigint;
  private readonly payouts: PayoutRecord[] = [];
  private readonly latest = new Map<string, PayoutRecord>();
  private readonly execCount = new Map<string, number>();
  private readonly payins = new Map<string, PayinRecord>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private seq = 0;
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly o: LedgerOptions) {
    this.balance = o.balancePaise;
    this.now = o.now ?? Date.now;
  }

  balancePaise(): bigint {
    return this.balance;
  }

  orderIdTaken(orderId: string): boolean {
    return this.o.dedupOrderIds && this.latest.has(orderId);
  }

  /** Debits and records a payout already validated (including the order_id check). */
  initiate(input: PayoutInput): InitiateResult {
    const charge = this.o.chargePaise(input.amountPaise, input.paymentMethod);
    const total = input.amountPaise + charge;
    if (total > this.balance) return { kind: 'insufficient' };
    this.balance -= total;
    const at = this.now();
    const payout: PayoutRecord = {
      ...input,
      seq: ++this.seq,
      chargePaise: charge,
      status: 'Pending',
      transactionId: null,
      createdAt: at,
      updatedAt: at,
    };
    this.payouts.push(payout);
    this.latest.set(input.orderId, payout);
    this.execCount.set(input.orderId, (this.execCount.get(input.orderId) ?? 0) + 1);
    this.schedule(`payout:${payout.seq}`, () => this.settlePayout(payout));
    return { kind: 'created', payout };
  }

  /** The most recent payout with this order_id (several exist only when dedup is off). */
  payout(orderId: string): PayoutRecord | undefined {
    return this.latest.get(orderId);
  }

  executions(orderId: string): number {
    return this.execCount.get(orderId) ?? 0;
  }

  entries(): LedgerEntry[] {
    return this.payouts.map((p) => ({
      orderId: p.orderId,
      executions: this.executions(p.orderId),
      amountPaise: p.amountPaise,
      chargePaise: p.chargePaise,
      status: p.status,
      transactionId: p.transactionId,
      accountNo: p.accountNo,
      ifsc: p.ifsc,
      method: p.paymentMethod,
      createdAt: apiTime(p.createdAt),
      updatedAt: apiTime(p.updatedAt),
    }));
  }

  payin(orderId: string): PayinRecord | undefined {
    return this.payins.get(orderId);
  }

  allPayins(): PayinRecord[] {
    return [...this.payins.values()];
  }

  createPayin(p: { orderId: string; amountPaise: bigint; userId?: string; method?: string; outcome?: 'Approved' | 'Rejected' }): PayinRecord {
    if (this.payins.has(p.orderId)) throw new Error(`payin order_id already exists: ${p.orderId}`);
    if (p.amountPaise <= 0n) throw new RangeError('payin amount must be positive');
    const at = this.now();
    const payin: PayinRecord = {
      orderId: p.orderId,
      userId: p.userId ?? 'sandbox-user',
      amountPaise: p.amountPaise,
      method: p.method ?? 'UPI',
      outcome: p.outcome ?? 'Approved',
      status: 'Pending',
      transactionId: null,
      createdAt: at,
      updatedAt: at,
      processedAt: at,
    };
    this.payins.set(p.orderId, payin);
    this.o.onPayinCreated(payin);
    this.schedule(`payin:${p.orderId}`, () => this.settlePayin(payin));
    return payin;
  }

  /** Settles everything pending now, in creation order; returns how many settled. */
  settleAll(): number {
    let n = 0;
    for (const p of this.payouts) if (p.status === 'Pending') (this.settlePayout(p), n++);
    for (const p of this.payins.values()) if (p.status === 'Pending') (this.settlePayin(p), n++);
    return n;
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private schedule(key: string, fn: () => void): void {
    if (this.closed) return;
    const t = setTimeout(() => {
      this.timers.delete(key);
      fn();
    }, this.o.settleMs);
    t.unref();
    this.timers.set(key, t);
  }

  private cancel(key: string): void {
    const t = this.timers.get(key);
    if (t) clearTimeout(t);
    this.timers.delete(key);
  }

  private utr(): string {
    return this.o.rng.digits(this.o.rng.int(10, 12));
  }

  private settlePayout(p: PayoutRecord): void {
    this.cancel(`payout:${p.seq}`);
    // Status only moves forward: a settled payout is never settled again.
    if (p.status !== 'Pending') return;
    if (this.o.rejectAccount(p.accountNo)) {
      p.status = 'Rejected';
      this.balance += p.amountPaise + p.chargePaise;
    } else {
      p.status = 'Approved';
      p.transactionId = this.utr();
    }
    p.updatedAt = this.now();
    this.o.onPayoutSettled(p);
  }

  private settlePayin(p: PayinRecord): void {
    this.cancel(`payin:${p.orderId}`);
    if (p.status !== 'Pending') return;
    p.status = p.outcome;
    if (p.outcome === 'Approved') {
      p.transactionId = this.utr();
      this.balance += p.amountPaise;
    }
    p.updatedAt = p.processedAt = this.now();
    this.o.onPayinSettled(p);
  }
}
