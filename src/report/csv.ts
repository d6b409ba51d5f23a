import { csvCell, csvLine } from './files.js';
import type { ReportRow } from './rows.js';
import { localTime } from './time.js';

/** Excel (and LibreOffice) read a UTF-8 file as UTF-8 only with this mark: without it Hindi names are mangled. */
export const BOM = '\uFEFF';

/** Values a spreadsheet would turn into a number and so damage: 12-digit UTRs (7.7981E+11), leading zeros, "1E5". */
const NUMBER_LOOKING = /^(?:\d+|\d+(?:\.\d+)?[eE][+-]?\d+)$/;

/**
 * A cell a spreadsheet keeps as text with every digit: `="779812345678"`, a formula whose value is the
 * constant text (Excel and LibreOffice with "Evaluate formulas" show the digits; LibreOffice without it
 * shows the wrapper around them, every digit intact). Only digit-and-letter values take this form, so
 * nothing but that constant can ever be evaluated; anything else goes through csvCell's neutralising.
 */
export function textSafeCell(value: string | null | undefined): string {
  if (value === null || value === undefined || value === '') return '';
  if (!NUMBER_LOOKING.test(value)) return csvCell(value);
  // The cell ="779812345678", quoted for CSV (its quotes doubled).
  return `"=""${value}"""`;
}

/** The fixed columns of the CSV report; `reference` is named after the input's reference column when it had one. */
export const REPORT_COLUMNS = [
  'row',
  'order_id',
  'reference',
  'beneficiary_name',
  'account',
  'ifsc',
  'bank_name',
  'payment_method',
  'amount',
  'charge',
  'debited',
  'status',
  'status_label',
  'utr',
  'reason',
  'status_message',
  'remarks',
  'warnings',
  'sent_at',
  'final_at',
] as const;

/** The header line (with the BOM): the reference column keeps the input's own name unless it clashes with ours. */
export function csvHeader(referenceColumn: string | null): string {
  const ref = referenceColumn && !(REPORT_COLUMNS as readonly string[]).includes(referenceColumn.trim()) ? referenceColumn.trim() : 'reference';
  return BOM + csvLine(REPORT_COLUMNS.map((c) => (c === 'reference' ? ref : c)));
}

export function csvRow(r: ReportRow, timeZone: string): string {
  const cells: Record<(typeof REPORT_COLUMNS)[number], string> = {
    row: String(r.row),
    order_id: textSafeCell(r.order_id),
    reference: textSafeCell(r.reference),
    beneficiary_name: csvCell(r.beneficiary_name),
    account: csvCell(r.account),
    ifsc: csvCell(r.ifsc),
    bank_name: csvCell(r.bank_name),
    payment_method: csvCell(r.payment_method),
    // Plain numbers (no ₹, no grouping) so a spreadsheet sums them.
    amount: csvCell(r.amount),
    charge: csvCell(r.charge),
    debited: csvCell(r.debited),
    status: csvCell(r.status),
    status_label: csvCell(r.status_label),
    utr: textSafeCell(r.utr),
    reason: csvCell(r.reason),
    status_message: csvCell(r.status_message),
    remarks: csvCell(r.remarks),
    warnings: csvCell(r.warnings.join('; ')),
    sent_at: csvCell(localTime(r.sent_at, timeZone)),
    final_at: csvCell(localTime(r.final_at, timeZone)),
  };
  return REPORT_COLUMNS.map((c) => cells[c]).join(',') + '\r\n';
}
