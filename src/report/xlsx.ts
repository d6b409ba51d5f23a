/**
 * The report as an Excel workbook (<batch>.xlsx), beside the CSV: the same columns, written with
 * exceljs's streaming WorkbookWriter (rows go to the file as they are read; a million rows fit in
 * memory). What a CSV cannot promise, the workbook does: identifiers (order_id, reference, account,
 * UTR, IFSC) are Text cells, so Excel never turns a 12-digit UTR into 7.7981E+11 or drops a leading zero;
 * amounts are numbers (they sum and sort) shown in rupees with Indian grouping; the header row is frozen
 * and has filters; a second sheet, "Summary", holds the batch's counts and rupees per status.
 *
 * The account is the report row's account, masked as in every report (last 4 digits).
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import ExcelJS from 'exceljs';
import { REPORT_STATUSES, STATUS_LABELS } from '../states.js';
import { REPORT_COLUMNS } from './csv.js';
import type { ReportRow } from './rows.js';
import type { BatchSummary } from './summary.js';
import { localTime } from './time.js';

/** Excel's Text format: the cell keeps exactly the characters written. */
export const TEXT_FORMAT = '@';

/**
 * Rupees with Indian grouping (₹1,23,45,678.00) whatever the reader's locale: Excel's "#,##0" groups by
 * thousands in most locales, so the lakh and crore commas are spelled out by magnitude.
 */
export const RUPEE_FORMAT = '[>=10000000]"₹"##\\,##\\,##\\,##0.00;[>=100000]"₹"##\\,##\\,##0.00;"₹"#,##0.00';

/** Columns kept as text: identifiers whose every character matters. */
const TEXT_COLUMNS: ReadonlySet<string> = new Set(['order_id', 'reference', 'beneficiary_name', 'account', 'ifsc', 'bank_name', 'utr', 'remarks']);
/** Columns of rupee amounts (numbers in the workbook). */
const MONEY_COLUMNS: ReadonlySet<string> = new Set(['amount', 'charge', 'debited']);

const WIDTHS: Partial<Record<(typeof REPORT_COLUMNS)[number], number>> = {
  row: 6,
  order_id: 32,
  beneficiary_name: 24,
  account: 18,
  ifsc: 13,
  bank_name: 20,
  amount: 15,
  charge: 10,
  debited: 15,
  status_label: 22,
  utr: 16,
  reason: 60,
  status_message: 30,
  remarks: 24,
  sent_at: 26,
  final_at: 26,
};

type Row = (typeof REPORT_COLUMNS)[number];

function cellsOf(r: ReportRow, timeZone: string): Record<Row, string | number | null> {
  const money = (v: string | null) => (v === null ? null : Number(v));
  return {
    row: r.row,
    order_id: r.order_id,
    reference: r.reference,
    beneficiary_name: r.beneficiary_name,
    account: r.account || null,
    ifsc: r.ifsc,
    bank_name: r.bank_name,
    payment_method: r.payment_method,
    amount: money(r.amount),
    charge: money(r.charge),
    debited: money(r.debited),
    status: r.status,
    status_label: r.status_label,
    utr: r.utr,
    reason: r.reason || null,
    status_message: r.status_message,
    remarks: r.remarks,
    warnings: r.warnings.length ? r.warnings.join('; ') : null,
    sent_at: localTime(r.sent_at, timeZone) || null,
    final_at: localTime(r.final_at, timeZone) || null,
  };
}

/** A cell's value and format: text columns as strings in Text cells, money as numbers in rupees. */
function put(cell: ExcelJS.Cell, column: string, value: string | number | null): void {
  // An identifier's cell is Text even when empty: what someone types into it later stays as typed.
  if (TEXT_COLUMNS.has(column)) cell.numFmt = TEXT_FORMAT;
  if (value === null || value === '') return;
  if (MONEY_COLUMNS.has(column) && typeof value === 'number') {
    cell.value = value;
    cell.numFmt = RUPEE_FORMAT;
  } else if (TEXT_COLUMNS.has(column) || typeof value === 'string') {
    cell.value = String(value);
    cell.numFmt = TEXT_FORMAT;
  } else {
    cell.value = value;
  }
}

/**
 * A workbook report being written: rows streamed into a temporary file beside the target (mode 0600),
 * renamed into place on commit, so a reader never sees half a workbook and a failure leaves the previous
 * one as it was.
 */
export class XlsxReport {
  private readonly sheet: ExcelJS.Worksheet;
  private constructor(
    readonly file: string,
    private readonly tmp: string,
    private readonly out: WriteStream,
    private readonly book: ExcelJS.stream.xlsx.WorkbookWriter,
    private readonly timeZone: string,
  ) {
    this.sheet = book.addWorksheet('Payouts', {
      views: [{ state: 'frozen', ySplit: 1, xSplit: 0, topLeftCell: 'A2', activeCell: 'A2' }],
    });
    // Written with the sheet's end (the streaming writer's own option; not in exceljs's types).
    this.sheet.autoFilter = { from: { row: 1, column: 1 }, to: { row: 1, column: REPORT_COLUMNS.length } };
    this.sheet.columns = REPORT_COLUMNS.map((c) => ({ key: c, width: WIDTHS[c] ?? 14 }));
  }

  /** Opens the workbook and writes its header (the reference column under the input's own name). */
  static async open(file: string, referenceColumn: string | null, timeZone: string): Promise<XlsxReport> {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2, 8)}.tmp`;
    const out = createWriteStream(tmp, { mode: 0o600 });
    const book = new ExcelJS.stream.xlsx.WorkbookWriter({ stream: out, useStyles: true, useSharedStrings: false });
    const report = new XlsxReport(file, tmp, out, book, timeZone);
    const ref = referenceColumn && !(REPORT_COLUMNS as readonly string[]).includes(referenceColumn.trim()) ? referenceColumn.trim() : 'reference';
    const header = report.sheet.addRow(REPORT_COLUMNS.map((c) => (c === 'reference' ? ref : c)));
    header.font = { bold: true };
    header.eachCell((cell) => (cell.numFmt = TEXT_FORMAT));
    header.commit();
    return report;
  }

  add(r: ReportRow): void {
    const values = cellsOf(r, this.timeZone);
    const row = this.sheet.addRow([]);
    REPORT_COLUMNS.forEach((c, i) => put(row.getCell(i + 1), c, values[c]));
    row.commit();
  }

  /** Writes the Summary sheet, finishes the workbook and renames it into place. */
  async commit(summary: BatchSummary): Promise<void> {
    this.sheet.commit();
    writeSummarySheet(this.book.addWorksheet('Summary'), summary);
    const closed = new Promise<void>((resolve, reject) => {
      this.out.once('close', resolve);
      this.out.once('error', reject);
    });
    await this.book.commit();
    await closed;
    const fh = await open(this.tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(this.tmp, this.file);
  }

  /** Throws the half-written workbook away. */
  async abort(): Promise<void> {
    this.out.destroy();
    await unlink(this.tmp).catch(() => {});
  }
}

/** The batch summary, as label/value lines and a table per status: counts and rupees. */
function writeSummarySheet(ws: ExcelJS.Worksheet, s: BatchSummary): void {
  ws.columns = [{ width: 34 }, { width: 40 }, { width: 18 }, { width: 16 }];
  const tz = s.time_zone;
  const time = (t: string | null) => (t ? localTime(t, tz) : '');
  const textLine = (label: string, value: string | number | null) => {
    const row = ws.addRow([label]);
    row.getCell(1).font = { bold: true };
    if (value !== null && value !== '') {
      const c = row.getCell(2);
      c.value = typeof value === 'number' ? value : String(value);
      if (typeof value === 'string') c.numFmt = TEXT_FORMAT;
    }
    row.commit();
  };
  const moneyLine = (label: string, count: number | null, rupees: string, charges?: string) => {
    const row = ws.addRow([label]);
    if (count !== null) row.getCell(2).value = count;
    row.getCell(3).value = Number(rupees);
    row.getCell(3).numFmt = RUPEE_FORMAT;
    if (charges !== undefined) {
      row.getCell(4).value = Number(charges);
      row.getCell(4).numFmt = RUPEE_FORMAT;
    }
    row.commit();
  };
  textLine('Batch', s.batch);
  textLine('File', s.source_file);
  textLine('Revision', s.revision);
  textLine('API', s.api_host);
  textLine('Merchant user_id', s.user_ids.join(', '));
  textLine('Times in', tz);
  textLine('Created', time(s.created_at));
  textLine('Started', time(s.started_at));
  textLine('Finished', time(s.finished_at));
  textLine('First sent', time(s.first_sent_at));
  textLine('Last sent', time(s.last_sent_at));
  textLine('Last outcome', time(s.last_outcome_at));
  textLine('Report made', time(s.generated_at));
  ws.addRow([]).commit();
  const head = ws.addRow(['Status', 'Rows', 'Amount', 'Charges']);
  head.font = { bold: true };
  head.commit();
  for (const st of REPORT_STATUSES) moneyLine(STATUS_LABELS[st], s.counts[st], s.totals[st].amount, s.totals[st].charges);
  ws.addRow([]).commit();
  moneyLine('Paid', s.paid.count, s.paid.amount);
  moneyLine('Sent, awaiting the bank or outcome not known', s.awaiting.count, s.awaiting.amount);
  moneyLine('Not paid', s.not_paid.count, s.not_paid.amount);
  moneyLine('Possibly debited (never pay these by hand)', s.possibly_debited.count, s.possibly_debited.amount);
  moneyLine('All rows', s.rows, s.amount);
  moneyLine('Debited from the wallet (amounts and charges)', null, s.debited);
  moneyLine('Charges', null, s.charges);
  ws.commit();
}
