import type { PayoutInfo, PayoutRequest, PaymentMethod } from '../alliance/types.js';
import type { Outcome } from '../db/claims.js';
import type { PayoutRow } from '../db/rows.js';
import { formatRupeesIndian } from '../money.js';
import { maskAccount } from '../log.js';
import { accountKey } from './revise.js';
import { DEFAULT_TIME_ZONE, localTime } from '../report/time.js';

/** The API request for a stored row. Only rows that passed validation get here (CHECK enforces it). */
export function payoutRequestOf(row: PayoutRow): PayoutRequest {
  return {
    beneficiaryName: row.name ?? '',
    beneficiaryEmail: row.email ?? '',
    beneficiaryMobile: row.mobile ?? '',
    beneficiaryAddress: row.address ?? '',
    paymentMethod: (row.method ?? 'IMPS') as PaymentMethod,
    accountNumber: row.account_no ?? '',
    bankName: row.bank_name ?? '',
    ifsc: row.ifsc ?? '',
    amountPaise: BigInt(row.amount_paise ?? '0'),
    orderId: row.order_id!,
    userId: row.user_id ?? '',
    remarks: row.remarks,
  };
}

/**
 * What a payout the API reports means for our row, once it is known to be ours. One under our order_id
 * whose amount differs from the row's is not ours to adopt: an operator must look.
 */
export function outcomeOf(row: PayoutRow, info: PayoutInfo): Outcome {
  const expected = BigInt(row.amount_paise ?? '0');
  if (info.amountPaise !== null && info.amountPaise !== expected) {
    return {
      state: 'needs_review',
      api_status: info.status,
      api_message: info.message,
      transaction_id: info.transactionId,
      last_error: `the API holds order_id ${row.order_id} with amount ${formatRupeesIndian(info.amountPaise)}, this row has ${formatRupeesIndian(expected)}: check with Alliance before paying this row again`,
    };
  }
  const state = info.status === 'Approved' ? 'approved' : info.status === 'Rejected' ? 'rejected' : 'pending';
  return {
    state,
    api_status: info.status,
    api_message: info.message,
    transaction_id: info.transactionId,
    charge_paise: info.chargePaise,
    last_error: null,
  };
}

/** How much earlier than our first claim the API's created_at may be before the payout cannot be ours (clock skew). */
export const CREATED_BEFORE_CLAIM_TOLERANCE_MS = 15 * 60_000;

/**
 * Why a payout the API holds under this row's order_id is not this row's, or undefined when it may be.
 * It can only be ours if a request of ours may have executed; and then its account, IFSC and creation time
 * must fit (a payout created well before we first claimed the row is an older one with the same order_id).
 */
export function notOurs(row: PayoutRow, info: PayoutInfo, maySent: boolean): string | undefined {
  if (!maySent) return 'no request of this batch for it can have executed';
  const acc = str(info.raw['beneficiary_acc_no']);
  if (acc !== null && row.account_no && accountKey(acc) !== accountKey(row.account_no)) return 'it pays another account';
  const ifsc = str(info.raw['ifsc']);
  if (ifsc !== null && row.ifsc && ifsc.trim().toUpperCase() !== row.ifsc.toUpperCase()) return 'it pays another IFSC';
  const created = Date.parse(str(info.raw['created_at']) ?? '');
  const claimed = row.first_claimed_at ? new Date(row.first_claimed_at).getTime() : NaN;
  if (Number.isFinite(created) && Number.isFinite(claimed) && created < claimed - CREATED_BEFORE_CLAIM_TOLERANCE_MS) {
    return `it was created ${localTime(new Date(created), DEFAULT_TIME_ZONE)}, before this batch first tried to send the row`;
  }
  return undefined;
}

/** The needs_review outcome for an order_id that another payout holds: details for the operator, never adopted. */
export function collisionOutcome(row: PayoutRow, info: PayoutInfo | undefined, why: string): Outcome {
  const details = info
    ? ` (the API's payout: ${info.status}, ${info.amountPaise === null ? 'amount unknown' : formatRupeesIndian(info.amountPaise)}` +
      `${str(info.raw['beneficiary_acc_no']) ? `, account ${maskAccount(str(info.raw['beneficiary_acc_no']))}` : ''}` +
      `${str(info.raw['created_at']) ? `, created ${str(info.raw['created_at'])}` : ''}${info.transactionId ? `, UTR ${info.transactionId}` : ''})`
    : '';
  return {
    state: 'needs_review',
    collision: true,
    // The other payout's status and UTR are not this row's: they stay out of its columns.
    last_error:
      `order_id ${row.order_id} collided: the API already holds a payout under it that is not this row's (${why})${details}. ` +
      `This row was NOT paid. If the order_id came from your file, give the row a new one and run the batch again with --revise (it asks for --accept-change once you have checked the payout above is not this payee's); otherwise report it to Alliance.`,
  };
}

function str(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  return null;
}
