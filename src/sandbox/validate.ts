import { parseApiAmount } from '../money.js';
import { PAYMENT_METHODS, type PaymentMethod } from '../alliance/types.js';

/**
 * Laravel-style validation of the initiate body: every failing field is listed at once, each with
 * messages in Laravel's wording ("The order id field is required."), because a real Laravel API
 * answers that way and the client's 422 handling should be exercised against it.
 */

export type FieldErrors = Record<string, string[]>;

export interface PayoutInput {
  beneficiaryName: string;
  beneficiaryEmail: string;
  /** Kept as text: the document returns it as a number in one place and a string in another. */
  beneficiaryMobile: string;
  beneficiaryAddress: string;
  paymentMethod: PaymentMethod;
  accountNo: string;
  bankName: string;
  ifsc: string;
  amountPaise: bigint;
  orderId: string;
  userId: string;
  remarks: string | null;
}

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const IFSC_RE = /^[A-Z]{4}0[A-Z0-9]{6}$/;
const MOBILE_RE = /^\d{10}$/;
const ACCOUNT_RE = /^[0-9A-Za-z@._-]{4,64}$/;

/** "beneficiary_acc_no" -> "beneficiary acc no", as Laravel names attributes in messages. */
function label(field: string): string {
  return field.replace(/_/g, ' ');
}

/** Laravel trims strings and turns "" into null before validating, so blank counts as missing. */
function isMissing(v: unknown): boolean {
  return v === undefined || v === null || (typeof v === 'string' && v.trim() === '');
}

export interface ValidateOptions {
  /** A server whose rule for beneficiary_mobile_no is a number (the document's cURL): a string is refused. */
  mobileAsNumber?: boolean;
}

export function validateInitiate(
  body: Record<string, unknown>,
  /** Laravel's `unique` rule: part of the same error bag as every other field. */
  orderIdTaken: (orderId: string) => boolean = () => false,
  opts: ValidateOptions = {},
): { ok: true; value: PayoutInput } | { ok: false; errors: FieldErrors } {
  const errors: FieldErrors = {};
  const add = (field: string, msg: string) => (errors[field] ??= []).push(msg);

  const str = (field: string, max = 255): string | undefined => {
    const v = body[field];
    if (isMissing(v)) return add(field, `The ${label(field)} field is required.`), undefined;
    if (typeof v !== 'string') return add(field, `The ${label(field)} must be a string.`), undefined;
    if (v.trim().length > max) return add(field, `The ${label(field)} must not be greater than ${max} characters.`), undefined;
    return v.trim();
  };
  /** Fields the document shows both as a number and a string. */
  const numOrStr = (field: string): string | undefined => {
    const v = body[field];
    if (isMissing(v)) return add(field, `The ${label(field)} field is required.`), undefined;
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return String(v);
    if (typeof v === 'string') return v.trim();
    add(field, `The ${label(field)} must be a string.`);
    return undefined;
  };

  const beneficiaryName = str('beneficiary_name');

  const beneficiaryEmail = str('beneficiary_email');
  if (beneficiaryEmail !== undefined && !EMAIL_RE.test(beneficiaryEmail)) {
    add('beneficiary_email', 'The beneficiary email must be a valid email address.');
  }

  let beneficiaryMobile = numOrStr('beneficiary_mobile_no');
  if (opts.mobileAsNumber && typeof body['beneficiary_mobile_no'] === 'string' && beneficiaryMobile !== undefined) {
    add('beneficiary_mobile_no', 'The beneficiary mobile no must be a number.');
    beneficiaryMobile = undefined;
  }
  if (beneficiaryMobile !== undefined && !MOBILE_RE.test(beneficiaryMobile)) {
    add('beneficiary_mobile_no', 'The beneficiary mobile no must be 10 digits.');
  }

  const beneficiaryAddress = str('beneficiary_address');

  const method = body['payment_method'];
  let paymentMethod: PaymentMethod | undefined;
  if (isMissing(method)) add('payment_method', 'The payment method field is required.');
  else if (typeof method !== 'string' || !(PAYMENT_METHODS as readonly string[]).includes(method)) {
    add('payment_method', 'The selected payment method is invalid.');
  } else paymentMethod = method as PaymentMethod;

  const accountNo = numOrStr('beneficiary_acc_no');
  if (accountNo !== undefined && !ACCOUNT_RE.test(accountNo)) {
    add('beneficiary_acc_no', 'The beneficiary acc no format is invalid.');
  }

  const bankName = str('bank_name');

  const ifsc = str('ifsc');
  if (ifsc !== undefined && !IFSC_RE.test(ifsc)) add('ifsc', 'The ifsc format is invalid.');

  const amountRaw = body['amount'];
  let amountPaise: bigint | undefined;
  if (isMissing(amountRaw)) add('amount', 'The amount field is required.');
  else if (
    !(typeof amountRaw === 'number' && Number.isFinite(amountRaw)) &&
    !(typeof amountRaw === 'string' && /^-?\d+(\.\d+)?$/.test(amountRaw.trim()))
  ) {
    add('amount', 'The amount must be a number.');
  } else {
    const n = typeof amountRaw === 'number' ? amountRaw : Number(amountRaw);
    if (!(n > 0)) add('amount', 'The amount must be greater than 0.');
    else {
      const p = parseApiAmount(typeof amountRaw === 'string' ? amountRaw.trim() : amountRaw);
      if (p === undefined) add('amount', 'The amount must have 0-2 decimal places.');
      else if (p > BigInt(Number.MAX_SAFE_INTEGER)) add('amount', 'The amount is too large.');
      else amountPaise = p;
    }
  }

  const orderId = str('order_id');
  if (orderId !== undefined && orderIdTaken(orderId)) add('order_id', 'The order id has already been taken.');
  const userId = str('user_id');

  let remarks: string | null = null;
  const r = body['remarks'];
  if (!isMissing(r)) {
    if (typeof r !== 'string') add('remarks', 'The remarks must be a string.');
    else if (r.length > 255) add('remarks', 'The remarks must not be greater than 255 characters.');
    else remarks = r;
  }

  if (Object.keys(errors).length > 0) return { ok: false, errors };
  return {
    ok: true,
    value: {
      beneficiaryName: beneficiaryName!,
      beneficiaryEmail: beneficiaryEmail!,
      beneficiaryMobile: beneficiaryMobile!,
      beneficiaryAddress: beneficiaryAddress!,
      paymentMethod: paymentMethod!,
      accountNo: accountNo!,
      bankName: bankName!,
      ifsc: ifsc!,
      amountPaise: amountPaise!,
      orderId: orderId!,
      userId: userId!,
      remarks,
    },
  };
}
