import { formatRupees, formatRupeesIndian } from '../money.js';
import type { AllianceClient } from '../alliance/client.js';
import { clientOf, loggerOf, printJson, type CommandIO } from './context.js';

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
    const p = await client.payoutStatus(orderId);
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

/** `payouts payin-status <order-id>` */
export async function payinStatusCommand(io: CommandIO, orderId: string): Promise<number> {
  return withClient(io, async (client) => {
    const p = await client.payinStatus(orderId);
    if (io.json) {
      printJson(io, {
        order_id: p.orderId,
        status: p.status,
        transaction_id: p.transactionId,
        amount: p.amountPaise === null ? null : formatRupees(p.amountPaise),
        request_amount: p.requestAmountPaise === null ? null : formatRupees(p.requestAmountPaise),
        method: p.method,
      });
    } else {
      io.out(`${p.orderId}: ${p.status}${p.transactionId ? ` (UTR ${p.transactionId})` : ''}`);
      if (p.amountPaise !== null) io.out(`  amount ${formatRupeesIndian(p.amountPaise)}${p.method ? ` via ${p.method}` : ''}`);
    }
  });
}
