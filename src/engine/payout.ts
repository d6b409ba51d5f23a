import type { PayoutInfo, PayoutRequest, PaymentMethod } from '../alliance/types.js';
import type { Outcome, PayoutRow } from '../db/rows.js';

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
 * What a payout the API reports means for our row. A payout under our order_id whose amount differs from
 * the row's is not ours to adopt: an operator must look.
 */
export function outcomeOf(row: PayoutRow, info: PayoutInfo): Outcome {
  const expected = BigInt(row.amount_paise ?? '0');
  if (info.amountPaise !== null && info.amountPaise !== expected) {
    return {
      state: 'needs_review',
      api_status: info.status,
      api_message: info.message,
      transaction_id: info.transactionId,
      last_error: `the API holds order_id ${row.order_id} with amount ${info.amountPaise} paise, this row has ${expected}: check before paying again`,
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
