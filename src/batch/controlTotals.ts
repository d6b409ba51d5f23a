/**
 * Control totals: the row count and rupee total a person expects (from the payroll sheet, or as a bank
 * bulk-upload file's trailer carries them), compared with what the file holds. A cut, merged or
 * half-copied file changes one of them.
 *
 * What is counted: every data row, valid or not, and the amounts of every row whose amount could be
 * read (an invalid row's amount too, e.g. one over its method's limit). The totals check that the file
 * is complete and undamaged, which is a different question from which rows are payable (that is the
 * rows' own errors): counting only valid rows would refuse a whole file for one bad mobile number, and
 * could let a cut file through when the cut row happened to be invalid.
 */
import { InputError, UsageError } from '../errors.js';
import { formatRupeesIndian, type Paise } from '../money.js';
import type { FileIssue } from './fileIssues.js';
import { parseAmount } from './validate.js';

export interface ExpectedTotals {
  /** Data rows the file must hold (valid or not; blank lines and the header not counted). */
  expectRows?: number | undefined;
  /** Sum of the amounts of all data rows, in paise. */
  expectTotalPaise?: Paise | undefined;
}

export interface FileTotals {
  /** Data rows read. */
  rows: number;
  /** Sum of every amount that could be read, in paise. */
  totalPaise: Paise;
  /** Lines of rows whose amount could not be read (they add nothing to the total); the first few. */
  unreadableAmountLines: readonly number[];
  /** How many rows had an unreadable amount (may exceed the lines listed). */
  unreadableAmounts: number;
}

/** The mismatches between what the file holds and what was expected; empty when they match. */
export function controlTotalIssues(actual: FileTotals, expected: ExpectedTotals): FileIssue[] {
  const issues: FileIssue[] = [];
  if (expected.expectRows !== undefined && actual.rows !== expected.expectRows) {
    const fewer = actual.rows < expected.expectRows;
    issues.push({
      code: 'control_rows',
      severity: 'error',
      message:
        `the file has ${actual.rows} data row${actual.rows === 1 ? '' : 's'}, but ${expected.expectRows} were expected ` +
        `(--expect-rows): ${fewer ? 'rows are missing (a cut or unfinished file, or two rows merged by a quote)' : 'there are extra rows (a row repeated or another sheet pasted in)'}; ` +
        `compare the file with the payroll sheet`,
    });
  }
  if (expected.expectTotalPaise !== undefined && actual.totalPaise !== expected.expectTotalPaise) {
    const unreadable =
      actual.unreadableAmounts > 0
        ? `; ${actual.unreadableAmounts} row${actual.unreadableAmounts === 1 ? ' has an amount' : 's have amounts'} that could not be read ` +
          `(line${actual.unreadableAmountLines.length === 1 ? '' : 's'} ${actual.unreadableAmountLines.join(', ')}${actual.unreadableAmounts > actual.unreadableAmountLines.length ? ', …' : ''}) ` +
          `and add${actual.unreadableAmounts === 1 ? 's' : ''} nothing`
        : '';
    issues.push({
      code: 'control_total',
      severity: 'error',
      message:
        `the amounts in the file add up to ${formatRupeesIndian(actual.totalPaise)}, but ${formatRupeesIndian(expected.expectTotalPaise)} ` +
        `was expected (--expect-total), a difference of ${formatRupeesIndian(absDiff(actual.totalPaise, expected.expectTotalPaise))}${unreadable}: ` +
        `compare the file with the payroll sheet`,
    });
  }
  return issues;
}

function absDiff(a: Paise, b: Paise): Paise {
  return a > b ? a - b : b - a;
}

/** Throws an InputError (exit 2) naming both numbers when the file does not match the control totals. */
export function assertControlTotals(actual: FileTotals, expected: ExpectedTotals, what = 'the CSV file'): void {
  const issues = controlTotalIssues(actual, expected);
  if (issues.length === 0) return;
  throw new InputError(`${what} is refused: ${issues.map((i) => i.message).join('; and ')}`);
}

/**
 * Parses an expected total as a person types it: "425000", "4,25,000.50", "₹4,25,000", "Rs. 4,25,000/-".
 * Throws a UsageError naming the value when it is not a positive rupee amount.
 */
export function parseExpectedTotal(text: string): Paise {
  const r = parseAmount(text);
  if ('paise' in r) return r.paise;
  throw new UsageError(`--expect-total ${JSON.stringify(text)} is not a rupee amount: give the total like 425000 or 4,25,000.50`);
}

/** Validates an expected row count (a CLI value). */
export function parseExpectedRows(text: string | number): number {
  const n = typeof text === 'number' ? text : Number(String(text).trim().replace(/[,_]/g, ''));
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new UsageError(`--expect-rows ${JSON.stringify(String(text))} is not a row count: give a whole number like 300`);
  }
  return n;
}

/** Accumulates FileTotals row by row. */
export class TotalsCounter {
  rows = 0;
  totalPaise: Paise = 0n;
  unreadableAmounts = 0;
  readonly unreadableAmountLines: number[] = [];
  add(amountPaise: Paise | null, line: number): void {
    this.rows++;
    if (amountPaise !== null) this.totalPaise += amountPaise;
    else {
      this.unreadableAmounts++;
      if (this.unreadableAmountLines.length < 10) this.unreadableAmountLines.push(line);
    }
  }
  totals(): FileTotals {
    return {
      rows: this.rows,
      totalPaise: this.totalPaise,
      unreadableAmountLines: this.unreadableAmountLines,
      unreadableAmounts: this.unreadableAmounts,
    };
  }
}
