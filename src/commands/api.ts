import { formatRupees, formatRupeesIndian } from '../money.js';
import type { AllianceClient } from '../alliance/client.js';
import type { PayinInfo } from '../alliance/types.js';
import { fetchAndStorePayin } from '../engine/payins.js';
import { clientOf, loggerOf, printJson, withDb, type CommandIO } from './context.js';
import { NotFoundError } from '../alliance/errors.js';
import { UsageError } from '../errors.js';

/**
 * A 404 to a lookup is the API's documented "no such transaction": an answer, not an unreachable API. Exit 2
 * (no such thing, as for an unknown batch), never 6, so a script does not wait for an API that is up.
 */
async function found<T>(what: string, orderId: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new UsageError(`the API has no ${what} with order_id ${orderId} (404): check the order_id (\`payouts status <batch>\` and the report list a batch's order_ids)`, { cause: err });
    }
    throw err;
  }
}

async function withClient(io: CommandIO, fn: (client: AllianceClient) => Promise<void>): Promise<number> {
  const client = clientOf(io, loggerOf(io));
  try {
    await fn(client);
    return 0;
  } finally {
    await client.close();
  }
}

/** `payouts balance` */
export async function balanceCommand(io: CommandIO): Promise<number> {
  return withClient(io, async (client) => {
    const b = await client.balance();
    if (io.json) printJson(io, { balance: formatRupees(b.balancePaise), balance_paise: b.balancePaise.toString() });
    else io.out(`Wallet balance: ${formatRupeesIndian(b.balancePaise)}`);
  });
}

/** `payouts payout-status <order-id>` */
export async function payoutStatusCommand(io: CommandIO, orderId: string): Promise<number> {
  return withClient(io, async (client) => {
    const p = await found('payout', orderId, client.payoutStatus(orderId));
    if (io.json) {
      printJson(io, {
        order_id: p.orderId,
        status: p.status,
        transaction_id: p.transactionId,
        amount: p.amountPaise === null ? null : formatRupees(p.amountPaise),
        charge: p.chargePaise === null ? null : formatRupees(p.chargePaise),
        message: p.message,
      });
    } else {
      io.out(`${p.orderId}: ${p.status}${p.transactionId ? ` (UTR ${p.transactionId})` : ''}`);
      if (p.amountPaise !== null) io.out(`  amount ${formatRupeesIndian(p.amountPaise)}${p.chargePaise !== null ? `, charge ${formatRupeesIndian(p.chargePaise)}` : ''}`);
      if (p.message) io.out(`  ${p.message}`);
    }
  });
}

/**
 * Every field of a payin as the API returned it, snake_case as it sends them, amounts as rupee decimal
 * strings ("100.00"); fields the document does not list are passed through.
 */
export function payinJson(p: PayinInfo): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p.raw)) out[k] = v;
  out['order_id'] = p.orderId;
  out['status'] = p.status;
  out['amount'] = p.amountPaise === null ? (p.raw['amount'] ?? null) : formatRupees(p.amountPaise);
  out['request_amount'] = p.requestAmountPaise === null ? (p.raw['request_amount'] ?? null) : formatRupees(p.requestAmountPaise);
  for (const k of ['user_id', 'transaction_id', 'method', 'comments', 'time_of_processing', 'created_at', 'updated_at', 'bank_upi', 'bank_name']) {
    if (!(k in out)) out[k] = null;
  }
  return out;
}

/** `payouts payin-status <order-id>`: asks the API, stores the answer (status only moves forward), prints it. */
export async function payinStatusCommand(io: CommandIO, orderId: string): Promise<number> {
  const logger = loggerOf(io);
  const client = clientOf(io, logger);
  try {
    return await withDb(io, async (db) => {
      const { info: p, outcome, row } = await found('payin', orderId, fetchAndStorePayin({ client, db: db.knex, logger }, orderId));
      if (io.json) {
        printJson(io, { ...payinJson(p), stored: { outcome, status: row.status } });
        return 0;
      }
      io.out(`${p.orderId}: ${p.status}${p.transactionId ? ` (UTR ${p.transactionId})` : ''}`);
      if (p.amountPaise !== null || p.requestAmountPaise !== null) {
        io.out(
          `  amount ${p.amountPaise === null ? '?' : formatRupeesIndian(p.amountPaise)}` +
            `${p.requestAmountPaise !== null ? ` of ${formatRupeesIndian(p.requestAmountPaise)} requested` : ''}${p.method ? ` via ${p.method}` : ''}`,
        );
      }
      if (p.userId) io.out(`  user ${p.userId}`);
      if (p.bankUpi || p.bankName) io.out(`  from ${[p.bankName, p.bankUpi].filter(Boolean).join(', ')}`);
      if (p.comments) io.out(`  ${p.comments}`);
      if (p.timeOfProcessing) io.out(`  processed ${p.timeOfProcessing}`);
      if (p.createdAt) io.out(`  created ${p.createdAt}, updated ${p.updatedAt ?? '?'}`);
      io.out(
        outcome === 'unchanged'
          ? `  stored: kept ${row.status} (a status never moves back; the API now says ${p.status})`
          : `  stored (${outcome}) in ${db.where}`,
      );
      return 0;
    });
  } finally {
    await client.close();
  }
}
