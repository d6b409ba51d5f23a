/**
 * An Excel workbook (.xlsx) in, rows of typed cells out, streamed with exceljs's WorkbookReader: a big
 * sheet never sits in memory (only the workbook's shared strings do, as the format requires). The cells
 * stay typed (text, number, date…) so that sheetCells.ts can tell a number that lost digits from text
 * that kept them; ingest.ts turns them into the same records the CSV path produces and validates them
 * with the same code.
 *
 * What is refused, before a row is read, as an InputError (exit 2, nothing stored): a file that is not a
 * zip archive or not a workbook (an old .xls, a password-protected workbook, a CSV named .xlsx, a damaged
 * or cut copy), a sheet name the workbook does not have (the message lists its sheets), and a workbook
 * whose parts are stored in an order that cannot be streamed reliably (see `checkOrder`).
 */
import { open, stat } from 'node:fs/promises';
import type ExcelJS from 'exceljs';
import { WorkbookReader } from './exceljsReader.js';
import { InputError } from '../errors.js';
import { zipEntryNames } from './zipDirectory.js';

/** One cell as the workbook stores it. */
export type SheetValue =
  | { kind: 'empty' }
  | { kind: 'text'; text: string }
  /** `numFmt`: the cell's number format ("General", "0.00E+00", "00000000000"…), if it has one. */
  | { kind: 'number'; value: number; numFmt: string | undefined }
  | { kind: 'date'; date: Date }
  /** An error value (#N/A, #DIV/0!…), typed or the result of a formula. */
  | { kind: 'error'; text: string }
  /** A formula the file holds no saved result for (written by a program that does not calculate). */
  | { kind: 'formula_no_result'; formula: string };

export interface SheetRow {
  /** The sheet's row number (what Excel shows at the left). */
  line: number;
  /** Column A first; a column with no cell is `{ kind: 'empty' }`. */
  cells: SheetValue[];
}

export interface SheetOptions {
  /** The sheet to read, by its tab name (compared ignoring case, as Excel does). Default: the first tab. */
  sheet?: string | undefined;
}

/** Whether an input is read as a workbook: a path ending in .xlsx (any case). */
export function isWorkbookPath(input: string | NodeJS.ReadableStream): input is string {
  return typeof input === 'string' && /\.xlsx$/i.test(input);
}

const SAVE_AGAIN = 'open it in Excel (or LibreOffice) and save it again as "Excel Workbook (.xlsx)", or save it as "CSV UTF-8"';

async function checkFile(file: string, what: string): Promise<void> {
  let st;
  try {
    st = await stat(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new InputError(`Excel file not found: ${file}: check the path`, { cause: e });
    if (code === 'EACCES' || code === 'EPERM') throw new InputError(`cannot read ${what}: permission denied`, { cause: e });
    throw new InputError(`cannot open ${what}: ${(e as Error).message}`, { cause: e });
  }
  if (st.isDirectory()) throw new InputError(`${file} is a directory, not an Excel file`);
  if (st.size === 0) throw new InputError(`${what} is empty (0 bytes): it is not a workbook; ${SAVE_AGAIN}`);
  const head = Buffer.alloc(8);
  const fh = await open(file, 'r');
  try {
    await fh.read(head, 0, 8, 0);
  } finally {
    await fh.close();
  }
  if (head.readUInt32LE(0) === 0x04034b50) return; // PK\3\4: a zip archive
  if (head.readUInt32BE(0) === 0xd0cf11e0) {
    throw new InputError(
      `${what} is an old Excel 97-2003 workbook (.xls) or a password-protected workbook, not an .xlsx: ` +
        `remove the password if it has one, and ${SAVE_AGAIN}`,
    );
  }
  throw new InputError(`${what} is not an Excel workbook (.xlsx is a zip archive; this file is not one): if it is a CSV, name it .csv; otherwise ${SAVE_AGAIN}`);
}

/** `fmt` shows a date or time (the test exceljs applies to plain numbers, for formula results too). */
export function isDateFormat(fmt: string | undefined): boolean {
  if (!fmt) return false;
  return /[ymdhsb]/i.test(fmt.replace(/\[[^\]]*]/g, '').replace(/"[^"]*"/g, ''));
}

/** Excel's serial day number (1900 or 1904 date system) as a Date in UTC, as exceljs converts it. */
function serialToDate(serial: number, date1904: boolean): Date {
  return new Date(Math.round((serial - (date1904 ? 24107 : 25569)) * 86_400_000));
}

/** exceljs's cell value -> SheetValue. Rich text and hyperlinks become their plain text. */
export function toSheetValue(v: ExcelJS.CellValue, numFmt: string | undefined, date1904: boolean, where: string): SheetValue {
  if (v === null || v === undefined) return { kind: 'empty' };
  if (typeof v === 'string') return v === '' ? { kind: 'empty' } : { kind: 'text', text: v };
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return { kind: 'error', text: '#VALUE!' };
    return isDateFormat(numFmt) ? { kind: 'date', date: serialToDate(v, date1904) } : { kind: 'number', value: v, numFmt };
  }
  if (typeof v === 'boolean') return { kind: 'text', text: v ? 'TRUE' : 'FALSE' };
  if (v instanceof Date) return { kind: 'date', date: v };
  if ('richText' in v) return { kind: 'text', text: v.richText.map((r) => r.text ?? '').join('') };
  if ('error' in v) return { kind: 'error', text: String(v.error) };
  if ('formula' in v || 'sharedFormula' in v) {
    const f = v as { formula?: string; sharedFormula?: string; result?: unknown };
    // A formula's error result reaches us as NaN (exceljs parses every non-text result as a number).
    if (f.result === undefined || f.result === null) return { kind: 'formula_no_result', formula: f.formula ?? f.sharedFormula ?? '' };
    if (typeof f.result === 'object' && f.result !== null && 'error' in f.result) return { kind: 'error', text: String((f.result as { error: unknown }).error) };
    return toSheetValue(f.result as ExcelJS.CellValue, numFmt, date1904, where);
  }
  if ('text' in v) return toSheetValue((v as { text: ExcelJS.CellValue }).text, numFmt, date1904, where);
  // Never "[object Object]" as a name or an account: a value the reader could not make out refuses the file.
  // exceljs hands back {sharedString: N} when it parsed a sheet without the workbook's shared texts
  // (exceljs issues #683 and #2915: seen now and then with its streaming reader).
  const shared = (v as { sharedString?: unknown }).sharedString;
  throw new InputError(
    shared !== undefined
      ? `cell ${where} refers to the workbook's shared text number ${String(shared)}, which the reader did not have: nothing of this file was used; run the command again, and if it says this again, ${SAVE_AGAIN}`
      : `cell ${where} holds a value of a kind this program does not read (${JSON.stringify(v).slice(0, 80)}): nothing of this file was used; ${SAVE_AGAIN}`,
  );
}

/** The parts exceljs must have read before a sheet's rows for cells to be typed right. */
const NEEDED_BEFORE_SHEET: ReadonlyArray<[string, string, string]> = [
  ['xl/workbook.xml', 'workbook', 'the sheet names'],
  ['xl/styles.xml', 'styles', 'which numbers are dates'],
];

/** Options the reader is opened with: styles cached (number formats: dates, zeros, scientific). */
const READER_OPTIONS = { worksheets: 'emit', sharedStrings: 'cache', hyperlinks: 'ignore', styles: 'cache', entries: 'emit' } as const;

interface ReaderInternals {
  /** The workbook's sheets in tab order (set once xl/workbook.xml is read). */
  model?: { sheets?: { name: string }[] };
  /** workbookPr: the 1904 date system. */
  properties?: { model?: { date1904?: boolean } };
  /** The file stream exceljs opened (closed here when reading stops early). */
  stream?: NodeJS.ReadableStream & { destroy?: () => void };
}

/**
 * The rows of one sheet of a workbook, in order, blank rows included as the file stores them (ingest
 * skips them as it skips blank CSV lines). Throws InputError for a file that is not a readable workbook
 * or has no such sheet; stopping early closes the file.
 */
export async function* readSheetRows(file: string, opts: SheetOptions = {}): AsyncGenerator<SheetRow, void, undefined> {
  const what = `the Excel file ${file}`;
  await checkFile(file, what);
  const names = await zipEntryNames(file);
  if (names === undefined) throw new InputError(`${what} is damaged or cut short (its zip directory cannot be read): ${SAVE_AGAIN}`);
  if (!names.includes('xl/workbook.xml')) {
    throw new InputError(`${what} is a zip archive but not an Excel workbook (it has no xl/workbook.xml): ${SAVE_AGAIN}`);
  }
  const reader = new WorkbookReader(file, READER_OPTIONS);
  const internals = reader as unknown as ReaderInternals;
  const seen = new Set<string>();
  (reader as unknown as NodeJS.EventEmitter).on('entry', (e: { type: string }) => seen.add(e.type));

  let target: string | undefined;
  let found = false;
  const sheetNames = (): string[] => (internals.model?.sheets ?? []).map((s) => s.name);
  const listed = () => sheetNames().map((n) => JSON.stringify(n)).join(', ');
  const sheets = reader[Symbol.asyncIterator]();
  try {
    for (;;) {
      const next = await guarded(() => sheets.next(), what);
      if (next.done) break;
      const ws = next.value as ExcelJS.stream.xlsx.WorksheetReader & { name: string };
      for (const [part, type, why] of NEEDED_BEFORE_SHEET) {
        if (names.includes(part) && !seen.has(type)) {
          throw new InputError(`${what} stores its sheets before ${part} (${why}), so it cannot be read as a stream: ${SAVE_AGAIN}`);
        }
      }
      if (target === undefined) {
        const all = sheetNames();
        if (opts.sheet !== undefined) {
          const want = opts.sheet.trim().toLowerCase();
          target = all.find((n) => n.toLowerCase() === want);
          if (target === undefined) throw new InputError(`${what} has no sheet named ${JSON.stringify(opts.sheet)}: its sheets are ${listed()}; pass one of them to --sheet`);
        } else {
          target = all[0] ?? ws.name;
        }
      }
      if (ws.name !== target) continue; // exceljs drains the entry
      found = true;
      const date1904 = internals.properties?.model?.date1904 === true;
      const rows = ws[Symbol.asyncIterator]() as AsyncIterator<ExcelJS.Row>;
      for (;;) {
        const r = await guarded(() => rows.next(), what);
        if (r.done) break;
        let cells: SheetValue[];
        try {
          cells = rowCells(r.value, date1904);
        } catch (e) {
          if (e instanceof InputError) throw new InputError(`${what}: ${e.message}`, { cause: e });
          throw e;
        }
        yield { line: r.value.number, cells };
      }
      break;
    }
  } finally {
    await sheets.return?.(undefined);
    const s = internals.stream;
    if (s && typeof s.destroy === 'function') s.destroy();
  }
  if (!found) {
    throw new InputError(
      target === undefined
        ? `${what} has no worksheet to read: ${SAVE_AGAIN}`
        : `${what} lists the sheet ${JSON.stringify(target)} but holds no data for it (its sheets are ${listed()}): ${SAVE_AGAIN}`,
    );
  }
}

function rowCells(row: ExcelJS.Row, date1904: boolean): SheetValue[] {
  const cells: SheetValue[] = [];
  row.eachCell({ includeEmpty: false }, (cell, col) => {
    while (cells.length < col - 1) cells.push({ kind: 'empty' });
    cells[col - 1] = toSheetValue(cell.value, cell.numFmt, date1904, cell.address);
  });
  return cells;
}

/** A failure inside exceljs or the unzipper is the file's problem (damaged, not a workbook): an InputError. */
async function guarded<T>(step: () => Promise<T>, what: string): Promise<T> {
  try {
    return await step();
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${what} cannot be read as a workbook (${(e as Error).message ?? String(e)}): ${SAVE_AGAIN}`, { cause: e });
  }
}
