/**
 * Validation of one CSV row against what the payout-initiate API needs. Every problem of a row is
 * collected (not just the first), each naming the field, the value and the fix. Nothing is silently
 * repaired: spreadsheet damage (scientific notation, formula text) is an error.
 */
import { PAYMENT_METHODS, type PaymentMethod } from '../alliance/types.js';
import { formatRupeesIndian, type Paise } from '../money.js';
import type { CanonicalField } from './columns.js';
import { bankNameForIfsc, lookupIfsc } from './ifscData.js';
import { validateExplicitOrderId } from './orderId.js';

export interface RowIssue {
  /** The canonical field, or "row" for problems of the whole record. */
  field: string;
  /** Stable machine code, e.g. "ifsc_format". */
  code: string;
  /** The row's value problem and the fix, in one sentence. */
  message: string;
}

export interface ValidatedRow {
  /** 1-based line where the record starts, the header being line 1 (what a spreadsheet shows). */
  rowNo: number;
  orderId: string | null;
  userId: string | null;
  name: string;
  email: string;
  /** 10 digits when valid; the trimmed input otherwise. */
  mobile: string;
  address: string;
  method: PaymentMethod | null;
  accountNumber: string;
  bankName: string;
  /** Trimmed, upper case. */
  ifsc: string;
  amountPaise: bigint | null;
  remarks: string | null;
  /** The payee reference (employee id…) trimmed, or null when the file has none for this row. */
  reference: string | null;
  errors: RowIssue[];
  warnings: RowIssue[];
}

export interface ValidateOptions {
  defaultUserId?: string | undefined;
  /**
   * The file as a whole has no user_id (no column, no default) and that was reported once for the file:
   * do not repeat it on every row. Default false.
   */
  userIdReportedForFile?: boolean | undefined;
}

/** A row's raw values by field; a field absent from the file is undefined (or missing). */
export type RawRow = Partial<Record<CanonicalField, string | undefined>>;

/** Per-method amount limits (inclusive), in paise. */
export const METHOD_LIMITS: Readonly<Record<PaymentMethod, { minPaise?: Paise; maxPaise?: Paise; instead: string }>> = {
  IMPS: { maxPaise: 5_00_000_00n, instead: 'use NEFT or RTGS, or split the payment' },
  NEFT: { instead: '' },
  RTGS: { minPaise: 2_00_000_00n, instead: 'use NEFT or IMPS' },
  UPI: { maxPaise: 1_00_000_00n, instead: 'use IMPS or NEFT, or split the payment' },
};

/** Length limits for free-text fields (characters). */
export const TEXT_LIMITS = {
  name: 100,
  email: 254,
  address: 255,
  remarks: 255,
  userId: 64,
  reference: 64,
} as const;

/** Largest amount the JSON body can carry exactly (paise must stay below 2^53). */
// ₹1,000 crore: far beyond any payout, and small enough that rupees print exactly as a JSON number.
const MAX_AMOUNT_PAISE = 10n ** 12n;

export const IFSC_RE = /^[A-Z]{4}0[A-Z0-9]{6}$/;
const MOBILE_RE = /^[6-9]\d{9}$/;
/** A plain amount ("2500", "2500.5", "2500.50"): parsed without the checks that name what is wrong. */
const PLAIN_AMOUNT_RE = /^(\d{1,12})(?:\.(\d{1,2}))?$/;
const SCIENTIFIC_RE = /^[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)[eE][+-]?\d+$/;
const EMAIL_RE = /^[^\s@]+@[^\s@.]+(?:\.[^\s@.]+)*\.[^\s@.]{2,}$/;
// Control characters, line breaks included; only tab is allowed (one test per value: this runs on every cell).
const CONTROL_RE = /[\u0000-\u0008\u000A-\u001F\u007F]/;

/** Quote a value for a message, shortened. */
function q(v: string): string {
  const s = v.length > 40 ? `${v.slice(0, 37)}…` : v;
  return JSON.stringify(s);
}

function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Characters as a person counts them (code points); only counted when the UTF-16 length is over `max`. */
function longerThan(s: string, max: number): number | undefined {
  if (s.length <= max) return undefined; // code points <= UTF-16 units
  const n = codePoints(s);
  return n > max ? n : undefined;
}

class Issues {
  readonly errors: RowIssue[] = [];
  readonly warnings: RowIssue[] = [];
  error(field: string, code: string, message: string): void {
    this.errors.push({ field, code, message });
  }
  warn(field: string, code: string, message: string): void {
    this.warnings.push({ field, code, message });
  }
}

/**
 * Checks that apply to every field: formula text and control characters. Returns false when the value
 * is unusable (the field's own checks are skipped so the row gets one clear error per field).
 */
function commonChecks(issues: Issues, field: string, value: string): boolean {
  if (value.startsWith('=')) {
    issues.error(
      field,
      'formula',
      `${field} ${q(value)} is spreadsheet formula text, not a value: re-export the sheet with values (copy, paste as values) and check the cell`,
    );
    return false;
  }
  if (CONTROL_RE.test(value)) {
    issues.error(
      field,
      'control_characters',
      `${field} ${q(value)} contains a line break or control character: keep the value on one line`,
    );
    return false;
  }
  return true;
}

function scientific(issues: Issues, field: string, value: string): boolean {
  if (!SCIENTIFIC_RE.test(value)) return false;
  issues.error(
    field,
    'scientific_notation',
    `${field} ${q(value)} is in scientific notation: a spreadsheet rounded the number and its digits are lost; ` +
      `re-export the column formatted as text and take the value from the original source`,
  );
  return true;
}

function required(issues: Issues, field: string, value: string, what: string): boolean {
  if (value !== '') return true;
  issues.error(field, 'required', `${field} is empty: fill in ${what}`);
  return false;
}

function textLimit(issues: Issues, field: string, value: string, max: number): void {
  const n = longerThan(value, max);
  if (n !== undefined) issues.error(field, 'too_long', `${field} is ${n} characters long: shorten it to at most ${max}`);
}

/** Mobile: 10 digits starting 6-9 after dropping spaces, hyphens and a +91 / 91 / 0 prefix. */
function validateMobile(issues: Issues, raw: string): string {
  const field = 'beneficiary_mobile_no';
  if (MOBILE_RE.test(raw)) return raw; // the common case, checked first
  if (!required(issues, field, raw, "the beneficiary's 10-digit mobile number")) return raw;
  if (!commonChecks(issues, field, raw) || scientific(issues, field, raw)) return raw;
  let s = raw.replace(/[\s-]/g, '');
  if (/^\+91\d{10}$/.test(s)) s = s.slice(3);
  else if (/^91\d{10}$/.test(s)) s = s.slice(2);
  else if (/^0\d{10}$/.test(s)) s = s.slice(1);
  if (/^[6-9]\d{9}$/.test(s)) return s;
  if (!/^\+?\d+$/.test(s)) {
    issues.error(field, 'mobile_format', `${field} ${q(raw)} is not a phone number: use 10 digits like 9876543210 (a +91 or 0 prefix is allowed)`);
  } else if (/^\d{10}$/.test(s)) {
    issues.error(field, 'mobile_format', `${field} ${q(raw)} starts with ${s[0]}: Indian mobile numbers start with 6, 7, 8 or 9; check the number (landlines are not accepted)`);
  } else {
    const digits = s.replace(/^\+/, '').length;
    issues.error(field, 'mobile_format', `${field} ${q(raw)} has ${digits} digits: use the 10-digit mobile number, optionally with +91 or 0 in front`);
  }
  return raw;
}

function validateEmail(issues: Issues, raw: string): void {
  const field = 'beneficiary_email';
  if (!required(issues, field, raw, "the beneficiary's email address")) return;
  if (!commonChecks(issues, field, raw)) return;
  if (/\s/.test(raw)) {
    issues.error(field, 'email_format', `${field} ${q(raw)} contains a space: remove it`);
  } else if (!EMAIL_RE.test(raw)) {
    issues.error(field, 'email_format', `${field} ${q(raw)} is not an email address: use the form name@domain.tld`);
  } else {
    textLimit(issues, field, raw, TEXT_LIMITS.email);
  }
}

function validateAccount(issues: Issues, raw: string): boolean {
  const field = 'beneficiary_acc_no';
  if (!required(issues, field, raw, "the beneficiary's bank account number")) return false;
  if (!commonChecks(issues, field, raw) || scientific(issues, field, raw)) return false;
  if (/\s/.test(raw)) {
    issues.error(field, 'account_format', `${field} ${q(raw)} contains spaces: write the account number as digits only, without spaces`);
    return false;
  }
  if (!/^\d+$/.test(raw)) {
    issues.error(field, 'account_format', `${field} ${q(raw)} contains characters other than digits: write the account number as digits only`);
    return false;
  }
  if (raw.length < 5 || raw.length > 35) {
    issues.error(field, 'account_length', `${field} ${q(raw)} has ${raw.length} digits: an account number has 5 to 35 digits; check it against the bank details`);
    return false;
  }
  return true;
}

/** Returns whether the IFSC is well formed (whether a payout id can be derived from it). */
function validateIfsc(issues: Issues, ifsc: string, raw: string): boolean {
  const field = 'ifsc';
  if (!required(issues, field, raw, "the branch's 11-character IFSC, like SBIN0060589")) return false;
  if (!commonChecks(issues, field, raw)) return false;
  if (!IFSC_RE.test(ifsc)) {
    let why: string;
    if (/\s/.test(ifsc)) why = 'contains a space: remove it';
    else if (ifsc.length !== 11) why = `is not 11 characters like SBIN0060589 (it has ${ifsc.length}): check the branch code`;
    else if (!/^[A-Z]{4}/.test(ifsc)) why = 'does not start with a 4-letter bank code like SBIN: check the code';
    else if (ifsc[4] !== '0') why = `has "${ifsc[4]}" as its fifth character, which is always 0 (zero, not the letter O): correct it`;
    else why = 'contains characters other than letters and digits: correct it';
    issues.error(field, 'ifsc_format', `ifsc ${q(raw)} ${why}`);
    return false;
  }
  const found = lookupIfsc(ifsc);
  if (found === 'unknown_bank') {
    issues.error(field, 'ifsc_unknown_bank', `ifsc ${q(ifsc)} has the bank code ${ifsc.slice(0, 4)}, which no bank uses: check the IFSC on a cheque or the bank's website`);
  } else if (found === 'unknown_branch') {
    issues.warn(field, 'ifsc_unknown_branch', `ifsc ${q(ifsc)} is not in the offline branch list (it lags new branches): confirm the IFSC with the beneficiary if the payout is rejected`);
  }
  return true;
}

/** Returns the amount in paise, or null with an error. */
export function parseAmount(raw: string): { paise: Paise } | { code: string; message: string } {
  const field = 'amount';
  const plain = PLAIN_AMOUNT_RE.exec(raw);
  if (plain) {
    const paise = BigInt(plain[1]!) * 100n + BigInt((plain[2] ?? '').padEnd(2, '0'));
    if (paise > 0n && paise <= MAX_AMOUNT_PAISE) return { paise };
    // zero or too large: the checks below name the problem
  }
  let s = raw.trim();
  s = s.replace(/^(?:₹|rs\.?|inr)\s*/i, '').replace(/\s*\/-$/, ''); // "Rs. 500/-"
  if (s === '') return { code: 'required', message: `${field} is empty: fill in the amount in rupees, like 2500 or 2,500.50` };
  if (SCIENTIFIC_RE.test(s)) {
    return {
      code: 'scientific_notation',
      message: `${field} ${q(raw)} is in scientific notation: re-export the column as a plain number with two decimals`,
    };
  }
  if (/^[-−(]/.test(s) || /^\+?0*(?:[.,]0*)?$/.test(s.replace(/,/g, ''))) {
    const neg = /^[-−(]/.test(s);
    return {
      code: 'amount_not_positive',
      message: `${field} ${q(raw)} is ${neg ? 'negative' : 'zero'}: a payout must be more than ₹0; remove the row or correct the amount`,
    };
  }
  if (/^\d{1,3}(?:[\s\u00a0\u202f']\d{2,3})+(?:\.\d+)?$/.test(s)) {
    // "1 000", "1'000": digits grouped with spaces or apostrophes (some locales' exports).
    return {
      code: 'amount_format',
      message: `${field} ${q(raw)} groups its digits with spaces or apostrophes: write it without them (like 1000) or with commas (1,000)`,
    };
  }
  if (/[^\d.,]/.test(s)) {
    return {
      code: 'amount_format',
      message: `${field} ${q(raw)} contains letters or symbols: write the amount in rupees using digits, like 2500 or 2,500.50`,
    };
  }
  const m = /^([\d,]+)(?:\.(\d+))?$/.exec(s);
  if (!m) {
    return {
      code: 'amount_format',
      message: `${field} ${q(raw)} is not a number: write the amount in rupees with a dot for decimals, like 2500.50`,
    };
  }
  const whole = m[1]!;
  const frac = m[2] ?? '';
  if (whole.includes(',')) {
    const indian = /^\d{1,2}(?:,\d{2})*,\d{3}$/.test(whole);
    const western = /^\d{1,3}(?:,\d{3})+$/.test(whole);
    if (!indian && !western) {
      return {
        code: 'amount_format',
        message: `${field} ${q(raw)} has commas in the wrong places for Indian (1,00,000) or Western (100,000) grouping: write the amount without commas`,
      };
    }
  }
  if (frac.length > 2) {
    return {
      code: 'amount_precision',
      message: `${field} ${q(raw)} has ${frac.length} decimals: rupee amounts have at most 2 (paise); round it in the source`,
    };
  }
  const digits = whole.replace(/,/g, '');
  const paise = BigInt(digits) * 100n + BigInt(frac.padEnd(2, '0') || '0');
  if (paise <= 0n) {
    return { code: 'amount_not_positive', message: `${field} ${q(raw)} is zero: a payout must be more than ₹0` };
  }
  if (paise > MAX_AMOUNT_PAISE) {
    return { code: 'amount_too_large', message: `${field} ${q(raw)} is far beyond any payout: check the amount` };
  }
  return { paise };
}

function validateMethod(issues: Issues, raw: string): PaymentMethod | null {
  const field = 'payment_method';
  if (!required(issues, field, raw, `one of ${PAYMENT_METHODS.join(', ')}`)) return null;
  if (!commonChecks(issues, field, raw)) return null;
  const up = raw.toUpperCase();
  if ((PAYMENT_METHODS as readonly string[]).includes(up)) return up as PaymentMethod;
  issues.error(field, 'method_unknown', `${field} ${q(raw)} is not a payment method: use one of ${PAYMENT_METHODS.join(', ')}`);
  return null;
}

function checkMethodLimit(issues: Issues, method: PaymentMethod, paise: Paise): void {
  const lim = METHOD_LIMITS[method];
  if (lim.maxPaise !== undefined && paise > lim.maxPaise) {
    issues.error(
      'amount',
      'method_limit',
      `amount ${formatRupeesIndian(paise)} is over the ${method} limit of ${formatRupeesIndian(lim.maxPaise)}: ${lim.instead}`,
    );
  }
  if (lim.minPaise !== undefined && paise < lim.minPaise) {
    issues.error(
      'amount',
      'method_limit',
      `amount ${formatRupeesIndian(paise)} is below the ${method} minimum of ${formatRupeesIndian(lim.minPaise)}: ${lim.instead}`,
    );
  }
}

/** Validates one row. Never throws on bad data; every problem ends up in `errors` or `warnings`. */
export function validateRow(raw: RawRow, rowNo: number, opts: ValidateOptions = {}): ValidatedRow {
  const issues = new Issues();
  const v = (f: CanonicalField): string => (raw[f] ?? '').trim();

  // name
  const name = v('beneficiary_name');
  if (required(issues, 'beneficiary_name', name, "the beneficiary's name as the bank has it") &&
      commonChecks(issues, 'beneficiary_name', name)) {
    textLimit(issues, 'beneficiary_name', name, TEXT_LIMITS.name);
  }

  const email = v('beneficiary_email');
  validateEmail(issues, email);

  const mobile = validateMobile(issues, v('beneficiary_mobile_no'));

  // address: the API requires it. A line break is refused like anywhere else: a quoted address that runs
  // onto the next line is how one stray quote merges two people into one record.
  const address = v('beneficiary_address');
  if (required(issues, 'beneficiary_address', address, "the beneficiary's address (the API requires one; a city is enough)") &&
      commonChecks(issues, 'beneficiary_address', address)) {
    textLimit(issues, 'beneficiary_address', address, TEXT_LIMITS.address);
  }

  const method = validateMethod(issues, v('payment_method'));

  const accountNumber = v('beneficiary_acc_no');
  validateAccount(issues, accountNumber);

  const ifscRaw = v('ifsc');
  const ifsc = ifscRaw.toUpperCase();
  const ifscOk = validateIfsc(issues, ifsc, ifscRaw);

  // bank name: filled from the IFSC when empty, with a warning.
  let bankName = v('bank_name');
  if (bankName === '') {
    const known = ifscOk ? bankNameForIfsc(ifsc) : undefined;
    if (known) {
      bankName = known;
      issues.warn('bank_name', 'bank_name_filled', `bank_name is empty: filled in as ${q(known)} from the IFSC ${ifsc}`);
    } else {
      issues.error(
        'bank_name',
        'required',
        `bank_name is empty and cannot be filled from the IFSC ${q(ifscRaw)}: fill in the bank's name`,
      );
    }
  } else {
    commonChecks(issues, 'bank_name', bankName);
  }

  // amount
  let amountPaise: bigint | null = null;
  const amountRaw = v('amount');
  if (commonChecks(issues, 'amount', amountRaw)) {
    const parsed = parseAmount(amountRaw);
    if ('paise' in parsed) amountPaise = parsed.paise;
    else issues.error('amount', parsed.code, parsed.message);
  }
  if (method && amountPaise !== null) checkMethodLimit(issues, method, amountPaise);

  // remarks (optional)
  const remarksRaw = v('remarks');
  let remarks: string | null = null;
  if (remarksRaw !== '' && commonChecks(issues, 'remarks', remarksRaw)) {
    remarks = remarksRaw;
    textLimit(issues, 'remarks', remarksRaw, TEXT_LIMITS.remarks);
  }

  // order_id (optional; derived later when absent)
  const orderIdRaw = v('order_id');
  let orderId: string | null = null;
  if (orderIdRaw !== '') {
    const problem = validateExplicitOrderId(orderIdRaw);
    if (problem) issues.error('order_id', 'order_id_format', problem);
    else orderId = orderIdRaw;
  }

  // user_id: from the row, else the run's default.
  const userIdRaw = v('user_id');
  let userId: string | null = null;
  if (userIdRaw !== '') {
    if (commonChecks(issues, 'user_id', userIdRaw)) {
      userId = userIdRaw;
      textLimit(issues, 'user_id', userIdRaw, TEXT_LIMITS.userId);
    }
  } else if (opts.defaultUserId !== undefined && opts.defaultUserId.trim() !== '') {
    userId = opts.defaultUserId.trim();
  } else if (!opts.userIdReportedForFile) {
    issues.error('user_id', 'user_id_missing', 'user_id missing: add a user_id column or pass --user-id');
  }

  // reference (optional, ours): how a corrected copy finds this payee, so damage to it is an error.
  const referenceRaw = v('reference');
  let reference: string | null = null;
  if (referenceRaw !== '' && commonChecks(issues, 'reference', referenceRaw) && !scientific(issues, 'reference', referenceRaw)) {
    reference = referenceRaw;
    textLimit(issues, 'reference', referenceRaw, TEXT_LIMITS.reference);
  }

  return {
    rowNo,
    orderId,
    userId,
    name,
    email,
    mobile,
    address,
    method,
    accountNumber,
    bankName,
    ifsc,
    amountPaise,
    remarks,
    reference,
    errors: issues.errors,
    warnings: issues.warnings,
  };
}

/** Whether the row's account, IFSC and amount are well formed enough to identify the payout. */
export function hasPayoutIdentity(row: Pick<ValidatedRow, 'accountNumber' | 'ifsc' | 'amountPaise'>): boolean {
  return (
    row.amountPaise !== null &&
    /^\d{5,35}$/.test(row.accountNumber) &&
    IFSC_RE.test(row.ifsc)
  );
}
