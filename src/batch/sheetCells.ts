/**
 * A workbook cell -> the text the row validation reads (the same validateRow as for a CSV), plus what
 * only the workbook can tell: a number that cannot be an intact account or mobile number, a date where no
 * date belongs, a formula with no saved result, an error value. Nothing is repaired: such a cell is an
 * error on its row naming the cell and the fix, and its text is chosen so that the row's account or
 * amount never counts as well formed (no order id is derived from it, no amount added to the totals).
 *
 * Decisions (README "Excel input"):
 * - Text cells are read as they are: a column formatted as Text keeps every digit and leading zero.
 * - A number in an identifier column (account, mobile, order_id, user_id, reference) is accepted when it is
 *   a whole number of at most 15 digits: Excel stores those exactly, and they are what the cell shows.
 *   A number of 16 or more digits is refused (Excel keeps only 15 significant digits: the last ones were
 *   turned into zeros when it was typed or pasted), and so is one shown in scientific notation (it came
 *   from text like 7.87879E+09, whose digits were already gone). A custom format of zeros ("00000000000")
 *   shows leading zeros, and they are kept. Without one, a leading zero a number lost cannot be known: the
 *   file gets one warning per such column (accountCellsWarning), not an error, since most account numbers
 *   do not start with 0 and the digits are what the person sees in the sheet.
 * - An amount number is taken as its shortest decimal text (String(n)): 2500.5 is "2500.5"; a formula
 *   result like 1234.5600000000001 has more than 2 decimals and is refused (round it in the sheet), never
 *   rounded here.
 * - A date is refused in every column (no payout field is a date); a formula uses its saved result (a
 *   formula with none, or one whose result is an error value, is refused).
 */
import type { CanonicalField } from './columns.js';
import type { SheetValue } from './xlsxSource.js';

export interface CellText {
  text: string;
  /** An error for the cell's field, replacing whatever validateRow says about the placeholder text. */
  issue?: { code: string; message: string };
  /** A number accepted in an identifier column (its leading zeros, if it had any, are unknown). */
  numberAsDigits?: boolean;
}

/** Fields whose values are identifiers: every digit matters and a number's rounding is damage. */
const IDENTIFIER_FIELDS: ReadonlySet<CanonicalField> = new Set<CanonicalField>([
  'beneficiary_acc_no',
  'beneficiary_mobile_no',
  'order_id',
  'user_id',
  'reference',
]);

/** The largest whole number Excel keeps every digit of: it stores 15 significant digits. */
const MAX_EXACT = 999_999_999_999_999;

/** For a date in a field with a format code, that code (the same as the CSV twin's text gets). */
const FORMAT_CODE: Partial<Record<CanonicalField, string>> = {
  amount: 'amount_format',
  beneficiary_acc_no: 'account_format',
  beneficiary_mobile_no: 'mobile_format',
};

const TEXT_FIX = 'format the column as Text in Excel and re-enter the numbers';

/** "2024-01-05", or with the time when it has one. */
function dateText(d: Date): string {
  const iso = d.toISOString();
  return iso.endsWith('T00:00:00.000Z') ? iso.slice(0, 10) : iso.slice(0, 19).replace('T', ' ');
}

function scientificFormat(fmt: string | undefined): boolean {
  return fmt !== undefined && /E[+-]/i.test(fmt.replace(/"[^"]*"/g, ''));
}

/**
 * The text of one cell for `field` (undefined: a column the file's header does not map; header cells).
 * `where` names the cell for messages: `cell F7 (column "Account No")`.
 */
export function cellText(v: SheetValue, field: CanonicalField | undefined, where: string): CellText {
  switch (v.kind) {
    case 'empty':
      return { text: '' };
    case 'text':
      return { text: v.text };
    case 'error':
      if (field === undefined) return { text: v.text };
      return {
        text: v.text,
        issue: { code: 'cell_error', message: `${field} in ${where} shows the error ${v.text} in Excel: correct the formula or type the value` },
      };
    case 'formula_no_result': {
      const text = `=${v.formula}`;
      if (field === undefined) return { text };
      return {
        text,
        issue: {
          code: 'formula',
          message:
            `${field} in ${where} is a formula with no saved result (the file was written by a program that does not calculate): ` +
            'open the file in Excel and save it again, or paste the column as values',
        },
      };
    }
    case 'date': {
      const text = dateText(v.date);
      if (field === undefined) return { text };
      return {
        text,
        issue: {
          code: FORMAT_CODE[field] ?? 'date_cell',
          message: `${field} in ${where} is a date in Excel (${text}), and ${field} is not a date: format the column as Text in Excel and re-enter the value`,
        },
      };
    }
    case 'number':
      return numberText(v.value, v.numFmt, field, where);
  }
}

function numberText(n: number, numFmt: string | undefined, field: CanonicalField | undefined, where: string): CellText {
  const plain = String(n);
  if (field === undefined) return { text: plain };
  if (field === 'amount') {
    const decimals = /\.(\d+)$/.exec(plain)?.[1]?.length ?? 0;
    if (decimals > 2 && !/e/i.test(plain)) {
      return {
        text: plain,
        issue: {
          code: 'amount_precision',
          message:
            `amount in ${where} is ${plain} in Excel (the cell may show it rounded): rupee amounts have at most 2 decimals; ` +
            'round it in the sheet (=ROUND(…, 2)) or type the amount',
        },
      };
    }
    return { text: plain };
  }
  if (!IDENTIFIER_FIELDS.has(field) || !Number.isInteger(n) || n < 0) return { text: plain };
  if (n > MAX_EXACT || scientificFormat(numFmt)) {
    // An account number is never written out, not even damaged (messages reach logs and reports).
    const shown = field === 'beneficiary_acc_no' ? '' : ` ${plain}`;
    const why =
      n > MAX_EXACT
        ? `is a number of ${Math.floor(Math.log10(n)) + 1} digits in Excel${shown}, which keeps only 15 digits of a number: its last digits are lost`
        : `is a number shown in scientific notation in Excel${shown}: its digits were most likely lost before it reached the sheet`;
    // The placeholder is in scientific notation: never digits, so no payout identity is made from it.
    return { text: n.toExponential(), issue: { code: 'scientific_notation', message: `${field} in ${where} ${why}; ${TEXT_FIX}` } };
  }
  // A format of only zeros ("00000000000") shows leading zeros: they are part of what the person typed.
  if (numFmt !== undefined && /^0+$/.test(numFmt) && numFmt.length > plain.length) return { text: plain.padStart(numFmt.length, '0') };
  return { text: plain, numberAsDigits: true };
}

/**
 * The one warning for a column whose account numbers are number cells: Excel drops a leading zero from a
 * number, and the file cannot tell which rows had one.
 */
export function accountCellsWarning(columnLabel: string, firstRow: number, rows: number): string {
  return (
    `the account numbers in ${columnLabel} are numbers in Excel, not text (${rows} row${rows === 1 ? '' : 's'}, from row ${firstRow}): ` +
    `Excel drops a leading zero from a number, so an account that starts with 0 has lost it; check those rows against the bank details, or ${TEXT_FIX}`
  );
}
