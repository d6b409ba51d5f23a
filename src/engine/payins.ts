import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { RateGate } from '../alliance/gate.js';
import type { AllianceClient } from '../alliance/client.js';
import { AllianceError, NotFoundError } from '../alliance/errors.js';
import { withRetry, type BackoffOptions } from '../alliance/retry.js';
import type { PayinInfo } from '../alliance/types.js';
import { upsertPayin, type PayinFacts, type PayinRow, type PayinStoreOutcome } from '../db/payins.js';

/**
 * Payins: what the authenticated payin status API says is the only truth stored. A webhook is a hint to
 * ask (the document defines no webhook signature, so anyone could send one): a forged payin.succeeded
 * for a payin the API says is Rejected stores Rejected.
 */

export interface PayinDeps {
  client: AllianceClient;
  db: Knex;
  logger?: Logger | undefined;
  /** Retries of the lookup on retryable errors (429, 5xx, network). */
  retry?: BackoffOptions;
  /** The API account's rate gate, when a batch shares it. */
  gate?: RateGate | undefined;
}

export function payinFacts(info: PayinInfo): PayinFacts {
  return {
    orderId: info.orderId,
    userId: info.userId,
    amountPaise: info.amountPaise,
    requestAmountPaise: info.requestAmountPaise,
    method: info.method,
    utr: info.transactionId,
    bankUpi: info.bankUpi,
    bankName: info.bankName,
    // The payin.initiated webhook says "Initiated" where the status API says "Pending": one state.
    status: info.status === 'Initiated' ? 'Pending' : info.status,
    comments: info.comments,
    timeOfProcessing: info.timeOfProcessing,
    apiCreatedAt: info.createdAt,
    apiUpdatedAt: info.updatedAt,
    rawResponse: info.raw,
  };
}

/** Asks the API about one payin and stores the answer. Throws NotFoundError when the API does not know it. */
export async function fetchAndStorePayin(
  deps: PayinDeps,
  orderId: string,
  event?: { event: string; receivedAt: Date },
): Promise<{ info: PayinInfo; outcome: PayinStoreOutcome; previousStatus: string | null; row: PayinRow }> {
  const info = await withRetry(() => deps.client.payinStatus(orderId, deps.gate ? { gate: deps.gate } : {}), deps.retry ?? { retries: 3 });
  // The API's order_id is the key only when it is the one asked about; a server answering for another
  // payin must not overwrite that one's record.
  const facts = { ...payinFacts(info), orderId };
  const stored = await upsertPayin(deps.db, facts, event);
  return { info, ...stored };
}

/** What one hint led to, counted by the receiver. */
export type PayinHintOutcome = PayinStoreOutcome | 'unknown_order' | 'api_error' | 'coalesced';

export interface PayinHint {
  orderId: string;
  event: string;
  receivedAt: Date;
}

/**
 * The receiver's `onPayinHint`: confirms each hint with the payin status call and stores the result.
 * Hints for one order_id while its lookup is running are folded into one more lookup after it (the
 * later event may describe a later state); at most `concurrency` lookups run at once, so a flood of
 * webhooks cannot take the API account's whole rate budget.
 */
export function payinHintHandler(deps: PayinDeps, opts: { concurrency?: number } = {}): (hint: PayinHint) => Promise<PayinHintOutcome> {
  const limit = Math.max(1, opts.concurrency ?? 2);
  let running = 0;
  const waiting: Array<() => void> = [];
  const slot = async <T>(fn: () => Promise<T>): Promise<T> => {
    if (running >= limit) await new Promise<void>((r) => waiting.push(r));
    running++;
    try {
      return await fn();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
  const inflight = new Map<string, { again: PayinHint | undefined }>();

  const confirm = async (hint: PayinHint): Promise<PayinHintOutcome> => {
    try {
      const r = await slot(() => fetchAndStorePayin(deps, hint.orderId, { event: hint.event, receivedAt: hint.receivedAt }));
      const claimed = /succeeded/.test(hint.event) ? 'Approved' : /failed/.test(hint.event) ? 'Rejected' : undefined;
      if (claimed && r.info.status !== claimed && r.info.status !== 'Pending') {
        // Not an error to act on, but worth a line: the webhook claimed one outcome, the API says another.
        deps.logger?.warn({ orderId: hint.orderId, event: hint.event, apiStatus: r.info.status }, 'payin webhook contradicts the API; stored what the API says');
      }
      deps.logger?.info({ orderId: hint.orderId, event: hint.event, status: r.row.status, outcome: r.outcome }, 'payin confirmed');
      return r.outcome;
    } catch (err) {
      if (err instanceof NotFoundError) {
        deps.logger?.warn({ orderId: hint.orderId, event: hint.event }, 'payin webhook for an order_id the API does not know: ignored');
        return 'unknown_order';
      }
      if (err instanceof AllianceError) {
        deps.logger?.error({ orderId: hint.orderId, event: hint.event, err: err.message }, 'payin webhook could not be confirmed');
        return 'api_error';
      }
      throw err;
    }
  };

  return async (hint) => {
    const current = inflight.get(hint.orderId);
    if (current) {
      current.again = hint;
      return 'coalesced';
    }
    const entry: { again: PayinHint | undefined } = { again: undefined };
    inflight.set(hint.orderId, entry);
    try {
      let outcome = await confirm(hint);
      while (entry.again) {
        const next = entry.again;
        entry.again = undefined;
        outcome = await confirm(next);
      }
      return outcome;
    } finally {
      inflight.delete(hint.orderId);
    }
  };
}
