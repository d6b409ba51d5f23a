/**
 * Streaming CSV ingest: bytes -> text (textSource.ts) -> records with their lines (csvRecords.ts) ->
 * header mapping -> row validation -> in-file duplicate detection -> order ids. Memory stays bounded
 * apart from small maps (payout identity, explicit order_id and payee reference -> first row).
 *
 * File-level problems refuse the whole file with an InputError (exit 2). Whatever can be found before
 * the first row is (missing or unreadable file, not UTF-8 text, a header that is not one, another
 * delimiter, no user_id anywhere). The rest only shows up in the stream (a quoted value that runs onto
 * the next line, a quote never closed, a last line without a line break, control totals that do not
 * match, invalid UTF-8 further down): the reader then stops yielding rows, reads on to list every such
 * problem, and throws at the end. A consumer must treat an InputError from the iteration as "the whole
 * file is refused", even after rows were yielded.
 */
import { InputError } from '../errors.js';
import type { Paise } from '../money.js';
import { mapHeader, type CanonicalField, type HeaderMapping } from './columns.js';
import { TotalsCounter, controlTotalIssues } from './controlTotals.js';
import { CsvRecordParser, type CsvRecord } from './csvRecords.js';
import {
  delimiterIssue,
  detectDelimiter,
  failureIssue,
  multilineIssue,
  refusalMessage,
  unterminatedIssue,
  userIdIssue,
  type FileIssue,
} from './fileIssues.js';
import { IdentityTable, idKeyHi, idKeyLo } from './identityTable.js';
import { contentKeyOf, deriveOrderId, derivePaymentOrderId } from './orderId.js';
import { refKey } from './payee.js';
import { accountCellsWarning, cellText } from './sheetCells.js';
import { describeSource, readText } from './textSource.js';
import { isWorkbookPath, readSheetRows } from './xlsxSource.js';
import { hasPayoutIdentity, validateRow, type RawRow, type RowIssue, type ValidatedRow } from './validate.js';

export type { FileIssue } from './fileIssues.js';

export interface IngestRow extends ValidatedRow {
  /** The CSV's order_id, or the derived one; null only when the row is invalid in a way that prevents either. */
  orderId: string | null;
  orderIdSource: 'csv' | 'derived' | null;
  /** "account|IFSC|paise" as normalized (amount empty when it did not parse). */
  contentKey: string;
  /** Rows before this one in the file with the same payment (0 for the first): the derived id's occurrence. */
  occurrence: number;
  /** The record's cells exactly as read (untrimmed), in file order: for a corrections file. */
  source: string[];
}

export interface IngestOptions {
  /**
   * Opaque key hashed into every derived order id (the batch's identity). Two reads with the same key
   * derive the same ids for the same payouts.
   */
  batch: string;
  /**
   * Derive order ids from the payment (`batch` is then the scope: src/batch/orderId.ts
   * derivePaymentOrderId). Default false: the older derivation from `batch` and the account as written.
   */
  byPayment?: boolean | undefined;
  /** user_id for rows without one (the --user-id flag). */
  defaultUserId?: string | undefined;
  /** Called once with the header mapping (and its warnings) before the first row. */
  onHeader?: ((mapping: HeaderMapping) => void) | undefined;
  /**
   * Called with every file-level problem (errors that refuse the file, and warnings such as ignored
   * columns) as it is found, before the InputError that refuses the file is thrown.
   */
  onFileIssue?: ((issue: FileIssue) => void) | undefined;
  /**
   * Accept a last line with no line break after it. Default false: such a line is held back and the file
   * refused, because a file cut short or still being written looks exactly like that (`…,425` of
   * `42500`). Set it only when the person confirms the file is complete.
   */
  acceptUnterminated?: boolean | undefined;
  /** Control total: the number of data rows (valid or not) the file must hold. See controlTotals.ts. */
  expectRows?: number | undefined;
  /** Control total: the sum of the amounts of all data rows (valid or not), in paise. */
  expectTotalPaise?: Paise | undefined;
  /**
   * Keep validating and yielding rows after a problem that refuses the file, and report a file with no
   * user_id once (rows are then not marked for it) instead of refusing it before the first row: one pass
   * lists every problem (`validate`). The InputError is still thrown at the end. Default false.
   */
  reportAll?: boolean | undefined;
  /** For a workbook (.xlsx): the sheet to read, by its tab name. Default: the first tab. Ignored for a CSV. */
  sheet?: string | undefined;
}

/** A record longer than this (characters) is almost certainly an unclosed quote swallowing the file. */
export const MAX_RECORD_CHARS = 1_000_000;

function isBlank(record: readonly string[]): boolean {
  for (const f of record) if (f.length > 0 && f.trim() !== '') return false;
  return true;
}

/**
 * Reads a payout CSV row by row. Every data row is yielded, valid or not, with all its errors and
 * warnings, in file order, unless the file is refused (see the module comment).
 */
export async function* readBatchRows(
  input: string | NodeJS.ReadableStream,
  opts: IngestOptions,
): AsyncGenerator<IngestRow> {
  if (isWorkbookPath(input)) {
    yield* readWorkbookRows(input, opts);
    return;
  }
  const what = describeSource(input);
  const reader = new RowReader(what, opts);
  const parser = new CsvRecordParser(MAX_RECORD_CHARS);
  // Whether the last line ended is the parser's to tell (a record's `terminated`).
  const text = readText(input);
  try {
    for await (const chunk of text) {
      for (const rec of parser.push(chunk)) {
        const row = reader.record(rec);
        if (row) yield row;
      }
      if (parser.failure) break;
    }
    for (const rec of parser.end()) {
      const row = reader.record(rec);
      if (row) yield row;
    }
    if (parser.failure) reader.issue(failureIssue(reader.header(), parser.failure), true);
    reader.finish();
  } catch (e) {
    // Every InputError is also reported through onFileIssue (the reader's own ones already are).
    if (e instanceof InputError) reader.reportThrown(e);
    throw e;
  } finally {
    // The consumer stopped early, or an error: release the file.
    await text.return(undefined);
  }
}

/** "A", …, "Z", "AA", …: a column's letters as Excel shows them. */
function columnLetters(index: number): string {
  let s = '';
  for (let n = index + 1; n > 0; n = Math.floor((n - 1) / 26)) s = String.fromCharCode(65 + ((n - 1) % 26)) + s;
  return s;
}

/**
 * readBatchRows for a workbook (.xlsx): each sheet row becomes the record a CSV line would (its cells as
 * text, its line the sheet's row number), validated by the same RowReader. What only the workbook can
 * tell (a number that lost digits, a date, a formula with no result: sheetCells.ts) is an error on the
 * cell's field, replacing what the validation says of the cell's text.
 */
async function* readWorkbookRows(file: string, opts: IngestOptions): AsyncGenerator<IngestRow> {
  const reader = new RowReader(`the Excel file ${file}`, opts, 'sheet');
  const rows = readSheetRows(file, { sheet: opts.sheet });
  /** Account numbers accepted from number cells: one warning for the file. */
  let numberAccounts = 0;
  let firstNumberAccount = 0;
  try {
    for await (const sheetRow of rows) {
      const mapping = reader.mapping;
      if (mapping === undefined) {
        reader.record(sheetRecord(sheetRow.cells.map((c) => cellText(c, undefined, '').text), sheetRow.line));
        continue;
      }
      const fields = reader.fieldsByColumn();
      const width = Math.max(mapping.header.length, sheetRow.cells.length);
      const cells: string[] = new Array<string>(width);
      let issues: RowIssue[] | undefined;
      for (let i = 0; i < width; i++) {
        const v = sheetRow.cells[i];
        if (v === undefined) {
          cells[i] = '';
          continue;
        }
        const field = fields[i];
        const header = mapping.header[i];
        const where = `cell ${columnLetters(i)}${sheetRow.line}${header ? ` (column ${JSON.stringify(header)})` : ''}`;
        const t = cellText(v, field, where);
        cells[i] = t.text;
        if (t.issue && field) (issues ??= []).push({ field, code: t.issue.code, message: t.issue.message });
        if (t.numberAsDigits && field === 'beneficiary_acc_no') {
          if (numberAccounts++ === 0) firstNumberAccount = sheetRow.line;
        }
      }
      const row = reader.record(sheetRecord(cells, sheetRow.line), issues);
      if (row) yield row;
    }
    if (numberAccounts > 0 && reader.mapping) {
      const i = reader.mapping.columns.beneficiary_acc_no!;
      reader.issue({
        code: 'account_number_cells',
        severity: 'warning',
        line: firstNumberAccount,
        column: reader.mapping.header[i],
        message: accountCellsWarning(`column ${columnLetters(i)} ${JSON.stringify(reader.mapping.header[i])}`, firstNumberAccount, numberAccounts),
      });
    }
    reader.finish();
  } catch (e) {
    if (e instanceof InputError) reader.reportThrown(e);
    throw e;
  } finally {
    await rows.return(undefined);
  }
}

function sheetRecord(cells: string[], line: number): CsvRecord {
  return { cells, line, endLine: line, terminated: true, multiline: undefined };
}

/** Each cell issue takes the place of the validation's errors and warnings on its field. */
function replaceFieldIssues(row: ValidatedRow, cellIssues: readonly RowIssue[]): void {
  for (const issue of cellIssues) {
    const at = row.errors.findIndex((e) => e.field === issue.field);
    const errors = row.errors.filter((e) => e.field !== issue.field);
    errors.splice(at === -1 ? errors.length : at, 0, issue);
    row.errors = errors;
    row.warnings = row.warnings.filter((w) => w.field !== issue.field);
  }
}

/** The per-record logic of readBatchRows, kept out of the generator so it reads top to bottom. */
class RowReader {
  mapping: HeaderMapping | undefined;
  /** The field of each column (undefined for an ignored one), once the header is read. */
  private fields: (CanonicalField | undefined)[] | undefined;
  private readonly issues: FileIssue[] = [];
  /** A problem with the file's structure: records can no longer be trusted to be people. */
  private broken = false;
  private userIdReportedForFile = false;
  private dataRecords = 0;
  private readonly totals = new TotalsCounter();
  /** payout identity -> first row number and repeats */
  private readonly identities = new IdentityTable();
  /** explicit order_id -> first row number */
  private readonly explicitIds = new Map<string, number>();
  /** normalized payee reference -> first row number */
  private readonly references = new Map<string, number>();
  private readonly raw: RawRow = {};

  constructor(
    private readonly what: string,
    private readonly opts: IngestOptions,
    /** Where records come from: CSV lines, or the rows of a workbook's sheet (messages differ). */
    private readonly kind: 'csv' | 'sheet' = 'csv',
  ) {}

  header(): string[] | undefined {
    return this.mapping?.header;
  }

  fieldsByColumn(): (CanonicalField | undefined)[] {
    if (this.fields) return this.fields;
    const fields: (CanonicalField | undefined)[] = [];
    const cols = this.mapping?.columns ?? {};
    for (const f in cols) fields[cols[f as CanonicalField]!] = f as CanonicalField;
    return (this.fields = fields);
  }

  /** Records a file issue; `structural` ones stop rows from being yielded (unless reportAll). */
  issue(i: FileIssue, structural = false): void {
    this.issues.push(i);
    if (structural) this.broken = true;
    this.opts.onFileIssue?.(i);
  }

  /** InputErrors this reader made from its reported issues. */
  private readonly own = new WeakSet<InputError>();

  /** The InputError refusing the file for the issues reported so far. */
  private refusal(): InputError {
    const e = new InputError(refusalMessage(this.what, this.issues));
    this.own.add(e);
    return e;
  }

  /** Records an issue and refuses the file now (nothing after it can be read). */
  private refuseNow(i: FileIssue): never {
    this.issue(i, true);
    throw this.refusal();
  }

  /** An InputError from elsewhere (the file cannot be read as text, …) is reported as an issue too. */
  reportThrown(e: InputError): void {
    if (this.own.has(e)) return;
    this.issue({ code: 'unreadable', severity: 'error', message: e.message }, true);
  }

  /**
   * `cellIssues`: problems of cells only a workbook shows (sheetCells.ts); each replaces what the row
   * validation finds in its field.
   */
  record(rec: CsvRecord, cellIssues?: readonly RowIssue[]): IngestRow | undefined {
    // A quoted line break is checked before blankness: even a record that looks empty spans lines.
    if (this.mapping && rec.multiline) {
      this.dataRecords++;
      for (const v of rec.multiline) this.issue(multilineIssue(this.mapping.header, v), true);
      return undefined;
    }
    if (isBlank(rec.cells)) return undefined;
    if (!this.mapping) {
      this.readHeader(rec);
      return undefined;
    }
    this.dataRecords++;
    if (!rec.terminated && !this.opts.acceptUnterminated) {
      this.issue(unterminatedIssue(rec.line), true);
      return undefined;
    }
    if (this.broken && !this.opts.reportAll) return undefined;
    return this.row(rec, this.mapping, cellIssues);
  }

  private readHeader(rec: CsvRecord): void {
    if (rec.multiline) {
      const v = rec.multiline[0]!;
      this.refuseNow({
        code: 'header',
        severity: 'error',
        line: v.openLine,
        message:
          `the header's column ${v.column + 1} opens a quote (") on line ${v.openLine} that closes only on line ${v.closeLine}: ` +
          'a column name cannot hold a line break; close the quote on the header line or remove it',
      });
    }
    const delimiter = detectDelimiter(rec.cells);
    let mapping: HeaderMapping;
    try {
      mapping = mapHeader(rec.cells);
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      if (delimiter) this.refuseNow(delimiterIssue(delimiter));
      this.refuseNow({ code: 'header', severity: 'error', line: rec.line, message: e.message });
    }
    for (const w of mapping.warnings) {
      this.issue({ code: /^ignored column/.test(w) ? 'ignored_columns' : 'header', severity: 'warning', line: rec.line, message: w });
    }
    const defaultUserId = this.opts.defaultUserId?.trim();
    if (mapping.columns.user_id === undefined && !defaultUserId) {
      if (!this.opts.reportAll) this.refuseNow(userIdIssue());
      this.issue(userIdIssue());
      this.userIdReportedForFile = true;
    }
    this.mapping = mapping;
    this.opts.onHeader?.(mapping);
  }

  private row(rec: CsvRecord, mapping: HeaderMapping, cellIssues: readonly RowIssue[] | undefined): IngestRow {
    const record = rec.cells;
    const rowNo = rec.line;
    // One object reused for every row (validateRow keeps nothing of it): no allocation per row.
    const raw = this.raw;
    const cols = mapping.columns;
    for (const f in cols) raw[f as keyof RawRow] = record[cols[f as keyof RawRow]!];
    const row = validateRow(raw, rowNo, {
      defaultUserId: this.opts.defaultUserId,
      userIdReportedForFile: this.userIdReportedForFile,
    });
    if (cellIssues) replaceFieldIssues(row, cellIssues);
    this.totals.add(row.amountPaise, rowNo);

    const width = mapping.header.length;
    if (record.length < width || (record.length > width && !isBlank(record.slice(width)))) {
      const issue: RowIssue = {
        field: 'row',
        code: 'field_count',
        message:
          this.kind === 'sheet'
            ? `row has a value right of the header's last column (${width} columns): put it under a header or delete it`
            : `row has ${record.length} fields, header has ${width}: ` +
              (record.length > width
                ? 'a value containing a comma must be in double quotes'
                : 'fill in every column (leave a value empty between commas if it has none)'),
      };
      row.errors.unshift(issue);
    }

    if (row.reference !== null) {
      const key = refKey(row.reference)!;
      const first = this.references.get(key);
      if (first === undefined) this.references.set(key, rowNo);
      else {
        row.warnings.push({
          field: 'reference',
          code: 'reference_duplicate',
          message: `reference ${JSON.stringify(row.reference)} is also on row ${first}: check it is not the same payee paid twice (a corrected copy of this file cannot tell these rows apart by reference)`,
        });
      }
    }

    let orderId: string | null = null;
    let orderIdSource: IngestRow['orderIdSource'] = null;
    if (row.orderId !== null) {
      const first = this.explicitIds.get(row.orderId);
      if (first !== undefined) {
        row.errors.push({
          field: 'order_id',
          code: 'order_id_duplicate',
          message: `order_id ${row.orderId} is also on row ${first}: order_ids must be unique; give this row its own id or remove it`,
        });
      } else {
        this.explicitIds.set(row.orderId, rowNo);
        orderId = row.orderId;
        orderIdSource = 'csv';
      }
    }

    let contentKey: string;
    let occurrence = 0;
    if (hasPayoutIdentity(row)) {
      const identity = { accountNumber: row.accountNumber, ifsc: row.ifsc, amountPaise: row.amountPaise! };
      contentKey = contentKeyOf(identity);
      const derive = this.opts.byPayment ? derivePaymentOrderId : deriveOrderId;
      // The first occurrence's derived id doubles as the identity's fingerprint: one hash per row.
      const firstId = derive(this.opts.batch, identity, 0);
      occurrence = this.identities.add(idKeyHi(firstId), idKeyLo(firstId), rowNo);
      if (occurrence > 0) {
        row.warnings.push({
          field: 'row',
          code: 'possible_duplicate',
          message: `same account, IFSC and amount as row ${this.identities.firstRow}: check it is not a duplicate payment (remove one of the rows if it is)`,
        });
      }
      // A CSV that has an order_id column but leaves it empty on a row gets a derived id for that row.
      const i = cols.order_id;
      const explicitGiven = i !== undefined && (record[i] ?? '').trim() !== '';
      if (!explicitGiven) {
        orderId = occurrence === 0 ? firstId : derive(this.opts.batch, identity, occurrence);
        orderIdSource = 'derived';
      }
    } else {
      contentKey = `${row.accountNumber}|${row.ifsc}|${row.amountPaise?.toString() ?? ''}`;
    }

    // Spelled out, not `{ ...row, … }`: spreading a 17-field object per row was the reader's top cost.
    return {
      rowNo: row.rowNo,
      orderId,
      orderIdSource,
      userId: row.userId,
      name: row.name,
      email: row.email,
      mobile: row.mobile,
      address: row.address,
      method: row.method,
      accountNumber: row.accountNumber,
      bankName: row.bankName,
      ifsc: row.ifsc,
      amountPaise: row.amountPaise,
      remarks: row.remarks,
      reference: row.reference,
      errors: row.errors,
      warnings: row.warnings,
      contentKey,
      occurrence,
      source: record,
    };
  }

  /** End of input: the checks on the whole file, and the InputError if anything refuses it. */
  finish(): void {
    const refused = () => this.issues.some((i) => i.severity === 'error');
    if (!refused()) {
      if (!this.mapping) {
        this.refuseNow({
          code: 'no_header',
          severity: 'error',
          message: 'the file has no header line (it is empty or only blank lines): add the header and the rows',
        });
      }
      if (this.dataRecords === 0) {
        this.refuseNow({ code: 'no_rows', severity: 'error', message: 'the file has a header but no data rows: nothing to pay' });
      }
    }
    if (!this.broken && this.mapping) {
      for (const i of controlTotalIssues(this.totals.totals(), this.opts)) this.issue(i);
    }
    if (refused()) throw this.refusal();
  }
}
