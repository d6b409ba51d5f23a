import { paiseToJsonNumber } from '../money.js';
import { apiTime, istTime, type PayinRecord, type PayoutRecord } from './ledger.js';

/**
 * Response bodies in the document's shapes and key order. The document is inconsistent about
 * types and so is this on purpose: mobile is a number in the initiate response and a string in
 * the status response and webhook; balance is a string; amounts are JSON numbers.
 */

export interface Envelope {
  error: unknown;
  data: unknown;
  message: string;
  success: boolean;
}

export function ok(data: unknown, message: string): Envelope {
  return { error: '', data, message, success: true };
}

export function fail(error: unknown, message: string): Envelope {
  return { error, data: null, message, success: false };
}

export function invalid(errors: Record<string, string[]>): Envelope {
  return fail(errors, 'The given data was invalid.');
}

function mobileAsNumber(m: string): number | string {
  const n = Number(m);
  return /^\d+$/.test(m) && Number.isSafeInteger(n) ? n : m;
}

const STATUS_MESSAGE = {
  Pending: 'Payout has been processing.',
  Approved: 'Payout has been completed.',
  Rejected: 'Payout has been rejected.',
} as const;

export function initiateData(p: PayoutRecord): Record<string, unknown> {
  return {
    beneficiary_name: p.beneficiaryName,
    beneficiary_email: p.beneficiaryEmail,
    beneficiary_mobile_no: mobileAsNumber(p.beneficiaryMobile),
    beneficiary_address: p.beneficiaryAddress,
    payment_method: p.paymentMethod,
    beneficiary_acc_no: p.accountNo,
    bank_name: p.bankName,
    ifsc: p.ifsc,
    amount: paiseToJsonNumber(p.amountPaise),
    order_id: p.orderId,
    user_id: p.userId,
    // The response of the initiate call is always the state at creation, never a later one.
    transaction_id: null,
    remarks: p.remarks,
    charge: paiseToJsonNumber(p.chargePaise),
    status: 'Pending',
    message: STATUS_MESSAGE.Pending,
    updated_at: apiTime(p.createdAt),
    created_at: apiTime(p.createdAt),
  };
}

export function payoutStatusData(p: PayoutRecord): Record<string, unknown> {
  return {
    order_id: p.orderId,
    user_id: p.userId,
    transaction_id: p.transactionId,
    amount: paiseToJsonNumber(p.amountPaise),
    charge: paiseToJsonNumber(p.chargePaise),
    beneficiary_name: p.beneficiaryName,
    beneficiary_address: p.beneficiaryAddress,
    beneficiary_email: p.beneficiaryEmail,
    beneficiary_mobile_no: p.beneficiaryMobile,
    payment_method: p.paymentMethod,
    beneficiary_acc_no: p.accountNo,
    ifsc: p.ifsc,
    bank_name: p.bankName,
    vpa: null,
    remarks: p.remarks,
    status: p.status,
    created_at: apiTime(p.createdAt),
    updated_at: apiTime(p.updatedAt),
    message: STATUS_MESSAGE[p.status],
  };
}

export function payoutWebhookData(p: PayoutRecord): Record<string, unknown> {
  return {
    transaction_id: p.transactionId,
    amount: paiseToJsonNumber(p.amountPaise),
    charge: paiseToJsonNumber(p.chargePaise),
    beneficiary_name: p.beneficiaryName,
    beneficiary_address: p.beneficiaryAddress,
    beneficiary_email: p.beneficiaryEmail,
    beneficiary_mobile_no: p.beneficiaryMobile,
    payment_method: p.paymentMethod,
    beneficiary_acc_no: p.accountNo,
    ifsc: p.ifsc,
    bank_name: p.bankName,
    vpa: null,
    remarks: p.remarks,
    order_id: p.orderId,
    user_id: p.userId,
    status: p.status,
    created_at: apiTime(p.createdAt),
    updated_at: apiTime(p.updatedAt),
    // The webhook sample says "approved" where the status API says "completed".
    message: p.status === 'Approved' ? 'Payout has been approved.' : STATUS_MESSAGE[p.status],
  };
}

/**
 * A payin as the status API and webhooks show it. `initiated` gives the payin.initiated webhook's
 * view ("Initiated"); the status API says "Pending" for the same state.
 */
export function payinData(p: PayinRecord, initiated = false): Record<string, unknown> {
  const amount = paiseToJsonNumber(p.amountPaise);
  const settled = p.status !== 'Pending';
  return {
    user_id: p.userId,
    order_id: p.orderId,
    transaction_id: p.transactionId,
    amount: p.status === 'Rejected' ? 0 : amount,
    request_amount: amount,
    method: p.method,
    comments: initiated ? 'Payin Initiated' : p.status === 'Approved' ? 'Auto Approved' : p.status === 'Rejected' ? 'Rejected' : 'Pending',
    status: initiated ? 'Initiated' : p.status,
    time_of_processing: istTime(p.processedAt),
    created_at: apiTime(p.createdAt),
    updated_at: apiTime(p.updatedAt),
    bank_upi: settled && p.status === 'Approved' && p.method === 'UPI' ? `sandbox${p.orderId.length}@yesbankltd` : null,
    bank_name: settled && p.status === 'Approved' ? 'SANDBOX BANK' : null,
  };
}
