/**
 * `payouts validate` as a library function: one pass over the file, every problem listed once (file
 * problems once for the file, row problems per row), nothing stored, nothing sent. Account numbers are
 * masked in every message, so the summary can be printed or saved as it is.
 */
import { InputError } from '../errors.js';
import { maskAccount } from '../log.js';
import type { Paise } from '../money.js';
import type { HeaderMapping } from './columns.js';
import type { FileIssue } from './fileIssues.js';
import { readBatchRows } from './ingest.js';

export interface ValidateFileOptions {
  /** Key for the derived order ids (they are not shown; it only has to be stable). Default "validate". */
  batch?: string | undefined;
  /** user_id for rows without one (--user-id). */
  defaultUserId?: string | undefined;
  /** Accept a last line with no line break (see IngestOptions.acceptUnterminated). Default false. */
  acceptUnterminated?: boolean | undefined;
  /** Control totals (see controlTotals.ts): all data rows, valid or not. */
  expectRows?: number | undefined;
  expectTotalPaise?: Paise | undefined;
  /** For a workbook (.xlsx): the sheet to read, by its tab name. Default: the first tab. */
  sheet?: string | undefined;
  /** Most row problems listed; the rest are only counted (problems_omitted). Default 1000. */
  maxProblems?: number | undefined;
}

export interface ValidateProblem {
  /** The line the row starts on (header = 1). */
  row: number;
  /** The field, or "row" for the whole record. */
  field: string;
  code: string;
  severity: 'error' | 'warning';
  message: string;
}

export interface ValidateSummary {
  file: string;
  /** True when the file as a whole is refused (a file issue of severity error): nothing in it would be paid. */
  refused: boolean;
  /** Data rows read (a record held back or merged by a quote is not a row; see file_issues). */
  rows: number;
  valid: number;
  invalid: number;
  /** Rows with at least one warning. */
  warnings: number;
  /** Sum of the valid rows' amounts. */
  total_paise: Paise;
  /** Problems of the file as a whole, each once. */
  file_issues: FileIssue[];
  /** Row problems in file order (errors and warnings), at most maxProblems. */
  problems: ValidateProblem[];
  problems_omitted: number;
  /** Columns whose values are not used, as "Department (column 9)". */
  ignored_columns: string[];
  /** The header of the payee reference column, if the file has one. */
  reference_column: string | null;
}

/** Replaces every occurrence of the account number in a message by its masked form. */
function masker(account: string): (m: string) => string {
  if (account.length < 4) return (m) => m;
  const masked = maskAccount(account);
  return (m) => (m.includes(account) ? m.split(account).join(masked) : m);
}

/**
 * Validates a CSV file or a workbook (.xlsx). Never throws for a problem of the file (it is in `file_issues`, with `refused`);
 * throws only for a bug.
 */
export async function validateFile(file: string, opts: ValidateFileOptions = {}): Promise<ValidateSummary> {
  const maxProblems = opts.maxProblems ?? 1000;
  const summary: ValidateSummary = {
    file,
    refused: false,
    rows: 0,
    valid: 0,
    invalid: 0,
    warnings: 0,
    total_paise: 0n,
    file_issues: [],
    problems: [],
    problems_omitted: 0,
    ignored_columns: [],
    reference_column: null,
  };
  const onHeader = (m: HeaderMapping) => {
    summary.ignored_columns = [...m.ignored];
    summary.reference_column = m.reference?.header ?? null;
  };
  try {
    const rows = readBatchRows(file, {
      batch: opts.batch ?? 'validate',
      defaultUserId: opts.defaultUserId,
      acceptUnterminated: opts.acceptUnterminated,
      expectRows: opts.expectRows,
      expectTotalPaise: opts.expectTotalPaise,
      reportAll: true,
      sheet: opts.sheet,
      onHeader,
      onFileIssue: (i) => summary.file_issues.push(i),
    });
    for await (const r of rows) {
      summary.rows++;
      if (r.errors.length > 0) summary.invalid++;
      else {
        summary.valid++;
        summary.total_paise += r.amountPaise ?? 0n;
      }
      if (r.warnings.length > 0) summary.warnings++;
      const n = r.errors.length + r.warnings.length;
      if (n === 0) continue;
      if (summary.problems.length + n > maxProblems) {
        summary.problems_omitted += n;
        continue;
      }
      const mask = masker(r.accountNumber);
      for (const e of r.errors) summary.problems.push({ row: r.rowNo, field: e.field, code: e.code, severity: 'error', message: mask(e.message) });
      for (const w of r.warnings) summary.problems.push({ row: r.rowNo, field: w.field, code: w.code, severity: 'warning', message: mask(w.message) });
    }
  } catch (e) {
    // readBatchRows reports every problem behind an InputError through onFileIssue before throwing.
    if (!(e instanceof InputError)) throw e;
    if (!summary.file_issues.some((i) => i.severity === 'error')) {
      summary.file_issues.push({ code: 'unreadable', severity: 'error', message: e.message });
    }
  }
  summary.refused = summary.file_issues.some((i) => i.severity === 'error');
  return summary;
}
