import { formatRupees } from '../money.js';
import { maskAccount } from '../log.js';
import type { Issue, PayoutRow } from '../db/rows.js';
import type { ReportSourceRow } from '../db/reports.js';
import { reportStatus, STATUS_LABELS, type ReportStatus } from '../states.js';

/**
 * One row of the report as people and scripts see it: accounts masked, money in rupees, a reason in words
 * for every row that was not paid. The CSV, JSON and HTML reports are all made from this.
 */
export interface ReportRow {
  row: number;
  order_id: string | null;
  /** The payee reference from the input (e.g. employee id), if the file had a reference column. */
  reference: string | null;
  beneficiary_name: string | null;
  /** Last 4 digits only. */
  account: string;
  ifsc: string | null;
  bank_name: string | null;
  payment_method: string | null;
  /** Rupees; null when the input had no usable amount. */
  amount: string | null;
  /** What the API charged, rupees: 0.00 when nothing was charged or it was refunded; null when not known yet. */
  charge: string | null;
  /** What the API debited for this row (amount + charge), rupees; 0.00 if nothing; null when not known yet. */
  debited: string | null;
  status: ReportStatus;
  /** The status in words ("paid", "rejected by the bank", …). */
  status_label: string;
  /** The bank's reference (UTR), once the API gives one. */
  utr: string | null;
  /** Why the row was not paid, or what happens next; empty for a paid row. */
  reason: string;
  /** The API's own status message, as it said it. */
  status_message: string | null;
  remarks: string | null;
  warnings: string[];
  /** When the payout was first sent, and when its final outcome was recorded. */
  sent_at: Date | null;
  final_at: Date | null;
  /** False for a row kept from an earlier revision of the file (it was sent) that the latest file lacks. */
  in_latest_file: boolean;
}

/** What the words of a reason depend on besides the row. */
export interface ReasonContext {
  batch: string;
  /** batches.decision: 'declined' means no run sends until confirmed again. */
  decision: string | null;
  /** For the corrections file: the problem only, without pointing at the corrections file itself. */
  forCorrections?: boolean;
}

/**
 * A run of 9 or more digits, spaces or hyphens allowed between them, standing alone (not inside an IFSC,
 * an order id or an amount such as 100000000.00 or 100000000 paise): what an account or mobile number
 * looks like.
 */
const DIGIT_RUN = /(?<![\p{L}\d.,₹])\d(?:[ -]?\d){8,}(?![\p{L}\d]|[.,]\d|\s*paise)/gu;

/**
 * Personal data stays masked in reports: the row's account and mobile wherever a message quotes them,
 * and any other account-like digit run (a value quoted with spaces, another row's number), last 4 kept.
 */
const MOBILE_SHOWN_MAX_DIGITS = 13;

export function safeMessage(row: Pick<PayoutRow, 'account_no' | 'mobile'>, message: string, o: { showMobile?: boolean } = {}): string {
  let m = message;
  if (row.account_no && row.account_no.length >= 5) m = m.split(row.account_no).join(maskAccount(row.account_no));
  // The error about the mobile itself shows it whole: it is not a number anyone can be reached on, and a
  // person cannot fix "XXXXXXX2100 has 11 digits" without seeing which digit is extra. Only while it looks
  // like a mistyped mobile (up to 13 digits, room for +91 and a slip): a longer run is more likely an account
  // number pasted into the wrong column, and stays masked like one.
  if (o.showMobile && row.mobile && row.mobile.replace(/\D/g, '').length <= MOBILE_SHOWN_MAX_DIGITS) {
    const [before, ...after] = m.split(row.mobile);
    return [before, ...after].map((part) => part.replace(DIGIT_RUN, (run) => maskAccount(run.replace(/[ -]/g, '')))).join(row.mobile);
  }
  if (row.mobile && row.mobile.length >= 6) m = m.split(row.mobile).join(maskAccount(row.mobile));
  return m.replace(DIGIT_RUN, (run) => maskAccount(run.replace(/[ -]/g, '')));
}

function issueList(list: Issue[] | string | null | undefined): Issue[] {
  if (typeof list === 'string') return JSON.parse(list) as Issue[];
  return list ?? [];
}

function rupees(paise: string | bigint | null | undefined): string | null {
  return paise === null || paise === undefined ? null : formatRupees(BigInt(paise));
}

function sentence(s: string): string {
  const t = s.trim().replace(/\s+/g, ' ');
  if (!t) return '';
  return /[.!?:]$/.test(t) ? t : `${t}.`;
}

/** The reason a row was not paid, or what happens to it next, in words an accountant can act on. */
export function reasonOf(row: ReportSourceRow, ctx: ReasonContext): string {
  const status = reportStatus(row.state);
  const msg = (m: string | null | undefined) => (m ? safeMessage(row, m) : '');
  const b = ctx.batch;
  let reason: string;
  switch (status) {
    case 'approved':
      reason = '';
      break;
    case 'invalid': {
      const errs = issueList(row.errors).map((i) => (i.field === 'beneficiary_mobile_no' && i.code === 'mobile_format' ? safeMessage(row, i.message, { showMobile: true }) : msg(i.message)));
      reason = `Invalid, not sent: ${errs.length ? errs.join('; ') : 'the row could not be read'}.`;
      if (!ctx.forCorrections) reason += ` Fix it in the corrections file (payouts report ${b} --fixable) and run it with --revise.`;
      break;
    }
    case 'rejected':
      reason =
        `Rejected by the bank: ${sentence(msg(row.api_message) || 'the API gave no reason')} ` +
        'The charge was refunded. Check the beneficiary\'s account details; a corrected account is a new payout' +
        (ctx.forCorrections ? ' (a line left unchanged is not paid again).' : ` (corrections file: payouts report ${b} --fixable, then run it with --revise).`);
      break;
    case 'failed':
      reason = `Refused by the API, not created: ${sentence(msg(row.last_error ?? row.api_message) || 'no reason given')}`;
      reason += ctx.forCorrections
        ? ' Fix the row; if nothing in it was wrong (a temporary refusal), remove it here and run payouts resume ' + b + ' --retry-failed instead.'
        : ` Fix the row (corrections file: payouts report ${b} --fixable) and run it with --revise, or if the refusal was temporary: payouts resume ${b} --retry-failed.`;
      break;
    case 'needs_review':
      reason =
        `Needs review: ${sentence(msg(row.last_error) || 'the program cannot tell whether this payout was made')} ` +
        `Check it with Alliance (payouts payout-status ${row.order_id ?? '<order_id>'}) before paying this person by any other means; ` +
        `then payouts resume ${b} --retry-review asks its status again and sends it only if the API has no such payout.`;
      break;
    case 'pending':
      reason = `Accepted by the API, awaiting the bank: the money has left the wallet. payouts resume ${b} records the outcome.`;
      break;
    case 'sending':
      reason =
        `Sent, outcome not known yet${row.last_error ? ` (${msg(row.last_error)})` : ''}: it may have been paid, so never pay it by hand. ` +
        `payouts resume ${b} asks the API for its status before anything else.`;
      break;
    case 'not_sent':
      if (row.state === 'skipped') {
        const why = msg(row.last_error).replace(/^not sent:\s*/i, '');
        reason = `Not sent: ${sentence(why || 'skipped by an earlier run')} The next run (payouts resume ${b}) considers it again.`;
      } else if (ctx.decision === 'declined') {
        reason = `Not sent: the batch was declined at the confirmation prompt. It is sent only when payouts resume ${b} is confirmed again.`;
      } else if (row.first_claimed_at) {
        reason = `Not sent again yet${row.last_error ? ` (last attempt: ${msg(row.last_error)})` : ''}: payouts resume ${b} asks its status first and sends it only if the API has none.`;
      } else {
        reason = `Not sent yet: payouts resume ${b} sends it.`;
      }
      break;
    case 'cancelled':
      reason = 'Cancelled: the batch was cancelled before this row was sent; it will not be sent.';
      break;
  }
  if (!row.in_file) {
    reason = `${reason}${reason ? ' ' : ''}(Kept from an earlier revision of the file because it was sent; the latest file does not have it.)`;
  }
  return reason;
}

/** The row as reports show it. */
export function reportRow(row: ReportSourceRow, ctx: ReasonContext): ReportRow {
  const status = reportStatus(row.state);
  const amount = row.amount_paise === null ? null : BigInt(row.amount_paise);
  const charge = row.charge_paise === null ? 0n : BigInt(row.charge_paise);
  let chargeText: string | null;
  let debited: string | null;
  if (status === 'approved' || status === 'pending') {
    chargeText = formatRupees(charge);
    debited = formatRupees((amount ?? 0n) + charge);
  } else if (status === 'sending' || status === 'needs_review') {
    // May or may not have been debited: the summary counts these as "possibly debited".
    chargeText = null;
    debited = null;
  } else {
    // Rejected payouts are refunded, charge included; the other rows never became a payout.
    chargeText = '0.00';
    debited = '0.00';
  }
  return {
    row: row.row_no,
    order_id: row.order_id,
    reference: row.reference ?? null,
    beneficiary_name: row.name,
    account: maskAccount(row.account_no),
    ifsc: row.ifsc,
    bank_name: row.bank_name,
    payment_method: row.method,
    amount: rupees(amount),
    charge: chargeText,
    debited,
    status,
    status_label: STATUS_LABELS[status],
    utr: row.transaction_id,
    reason: reasonOf(row, ctx),
    status_message: row.api_status && row.api_message ? safeMessage(row, row.api_message) : null,
    remarks: row.remarks,
    warnings: issueList(row.warnings).map((w) => safeMessage(row, w.message)),
    sent_at: row.first_claimed_at ?? null,
    final_at: row.finalized_at ?? null,
    in_latest_file: row.in_file ?? true,
  };
}
