import { withRetry } from '../alliance/retry.js';
import { readyByMethod } from '../db/rows.js';
import type { Paise } from '../money.js';
import type { Runner } from './context.js';
import type { Preflight } from './events.js';

export interface ReadyRows {
  count: number;
  paise: Paise;
  byMethod?: { method: string; count: number; paise: Paise }[];
}

/**
 * Balance check before anything is sent: rows still to send plus the fee estimate against the wallet.
 * `known` gives the rows to send when they are not in the database (a dry run stores nothing).
 */
export async function preflight(runner: Runner, opts: { feePerPayoutPaise?: Paise | undefined; batch: string }, known?: ReadyRows): Promise<Preflight> {
  // Rows already submitting were most likely debited already; counting them could refuse the very run
  // that would resolve them.
  const methods = known ? (known.byMethod ?? []) : await readyByMethod(runner.db, opts.batch);
  const count = known ? known.count : methods.reduce((n, m) => n + m.count, 0);
  const paise = known ? known.paise : methods.reduce((n, m) => n + m.paise, 0n);
  const fees = (opts.feePerPayoutPaise ?? 0n) * BigInt(count);
  const need = paise + fees;
  const byMethod = methods.map((m) => ({ method: m.method, count: m.count, amountPaise: m.paise }));
  if (count === 0) {
    return { toSend: 0, amountPaise: 0n, feesPaise: 0n, needPaise: 0n, balancePaise: null, shortfallPaise: 0n, byMethod };
  }
  const bal = await withRetry(() => runner.api(() => runner.client.balance(runner.call)), { ...runner.options.retry, signal: runner.signal });
  return {
    toSend: count,
    amountPaise: paise,
    feesPaise: fees,
    needPaise: need,
    balancePaise: bal.balancePaise,
    shortfallPaise: need > bal.balancePaise ? need - bal.balancePaise : 0n,
    byMethod,
  };
}
