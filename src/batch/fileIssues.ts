/**
 * Problems of the file as a whole, as opposed to one row's values: each reported once, naming the line
 * and column where a person should look and the fix. An `error` refuses the file (nothing in it is
 * paid); a `warning` is shown and the file is usable.
 */
import type { CsvFailure, MultilineValue } from './csvRecords.js';

export interface FileIssue {
  /**
   * Stable code: multiline_record, unclosed_quote, record_too_long, unterminated_last_line, delimiter,
   * header, user_id_missing, control_rows, control_total, ignored_columns, unreadable (not a CSV
   * text file, missing, empty…).
   */
  code: string;
  severity: 'error' | 'warning';
  /** The line to look at (where a quote opened, the last line…), when there is one. */
  line?: number;
  /** The column, as the header names it, when there is one. */
  column?: string;
  /** What is wrong and the fix, in one or two sentences. */
  message: string;
}

/** `"beneficiary_address" (column 4)`, or `column 12` for a column beyond the header. */
export function columnLabel(header: readonly string[] | undefined, column: number): string {
  const h = header?.[column];
  return h ? `"${h}" (column ${column + 1})` : `column ${column + 1}`;
}

const QUOTE_FIX = 'a quote inside a value must be doubled ("") and a value in quotes must close on its own line';

/**
 * A record whose quoted value runs over a line break: every payout field must fit on one line, and this
 * is exactly how one misplaced quote merges two people into one record.
 */
export function multilineIssue(header: readonly string[] | undefined, v: MultilineValue): FileIssue {
  const col = columnLabel(header, v.column);
  return {
    code: 'multiline_record',
    severity: 'error',
    line: v.openLine,
    column: header?.[v.column] ?? `column ${v.column + 1}`,
    message:
      `line ${v.openLine}: the value in ${col} opens a quote (") that closes only on line ${v.closeLine}, so lines ` +
      `${v.openLine}–${v.closeLine} would be read as one record (one person) and the next line${v.closeLine - v.openLine > 1 ? 's' : ''} swallowed: ` +
      `no value may hold a line break; close the quote on line ${v.openLine} or remove it (${QUOTE_FIX})`,
  };
}

export function failureIssue(header: readonly string[] | undefined, f: CsvFailure): FileIssue {
  if (f.code === 'unclosed_quote') {
    return {
      code: 'unclosed_quote',
      severity: 'error',
      line: f.line,
      column: header?.[f.column] ?? `column ${f.column + 1}`,
      message:
        `line ${f.line}: the value in ${columnLabel(header, f.column)} opens a quote (") that is never closed, so the rest ` +
        `of the file would be one value: close the quote on line ${f.line} or remove it (${QUOTE_FIX})`,
    };
  }
  const q = f.quote;
  return {
    code: 'record_too_long',
    severity: 'error',
    line: q?.line ?? f.line,
    ...(q ? { column: header?.[q.column] ?? `column ${q.column + 1}` } : {}),
    message: q
      ? `line ${q.line}: the value in ${columnLabel(header, q.column)} opens a quote (") that is still open ${f.maxChars.toLocaleString('en-US')} characters later: ` +
        `close the quote on line ${q.line} or remove it (${QUOTE_FIX})`
      : `line ${f.line}: a record longer than ${f.maxChars.toLocaleString('en-US')} characters: this is not a payout file, or its line breaks are damaged`,
  };
}

export function unterminatedIssue(line: number): FileIssue {
  return {
    code: 'unterminated_last_line',
    severity: 'error',
    line,
    message:
      `line ${line}, the last line, has no line break at its end: the file looks unfinished (cut short, or still being ` +
      `written), and its last row may be incomplete (an amount of 425 that should read 42500 looks the same). Wait ` +
      `until the file is complete and check its last row; if it is complete (some exports, e.g. Google Sheets, end ` +
      `without a line break), add a line break at the end and read it again`,
  };
}

export type Delimiter = 'semicolon' | 'tab' | 'pipe';

const DELIMITER_CHARS: Readonly<Record<Delimiter, string>> = { semicolon: ';', tab: '\t', pipe: '|' };

/**
 * Which other separator a header line uses instead of commas, if it clearly does (more of it than
 * commas). The header cells are joined back with commas, which is what the line held outside quotes.
 */
export function detectDelimiter(headerCells: readonly string[]): Delimiter | undefined {
  const text = headerCells.join(',');
  const commas = headerCells.length - 1;
  let best: Delimiter | undefined;
  let bestCount = commas;
  for (const d of Object.keys(DELIMITER_CHARS) as Delimiter[]) {
    const count = text.split(DELIMITER_CHARS[d]).length - 1;
    if (count > bestCount && count >= 2) {
      best = d;
      bestCount = count;
    }
  }
  return best;
}

export function delimiterIssue(d: Delimiter): FileIssue {
  const fix: Record<Delimiter, string> = {
    semicolon:
      'save it as "CSV UTF-8 (Comma delimited)"; where Excel writes semicolons (a region whose list separator is ";"), ' +
      'change the list separator to "," in the region settings, or export from the payroll system with commas',
    tab: 'it is tab-separated text, not CSV: save it as "CSV UTF-8 (Comma delimited)"',
    pipe: 'save it as "CSV UTF-8 (Comma delimited)" or export it from the payroll system with commas',
  };
  return {
    code: 'delimiter',
    severity: 'error',
    line: 1,
    message: `the file is separated by ${d === 'semicolon' ? 'semicolons (;)' : d === 'tab' ? 'tabs' : 'pipes (|)'}, not commas: ${fix[d]}`,
  };
}

export function userIdIssue(): FileIssue {
  return {
    code: 'user_id_missing',
    severity: 'error',
    message: 'no user_id anywhere: the file has no user_id column and no --user-id was given; add a user_id column or pass --user-id <id>',
  };
}

/** The message of the InputError that refuses a file, listing its problems (the first few). */
export function refusalMessage(what: string, issues: readonly FileIssue[], shown = 10): string {
  const errors = issues.filter((i) => i.severity === 'error');
  if (errors.length === 1) return `${what} is refused: ${errors[0]!.message}`;
  const lines = errors.slice(0, shown).map((i) => `  - ${i.message}`);
  if (errors.length > shown) lines.push(`  - and ${errors.length - shown} more (\`payouts validate\` lists them all)`);
  return `${what} is refused (${errors.length} problems):\n${lines.join('\n')}`;
}
