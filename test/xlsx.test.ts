/**
 * Excel in and out (issue 20 point 9): an .xlsx read directly gets the verdicts of its CSV twin (validate
 * and a run's ingest: the same rows valid, the same reasons per field), what only a workbook can show
 * (digits Excel dropped, dates, formulas without a result) is an error naming the cell; --sheet; a damaged
 * workbook is refused with exit 2 and nothing stored; the .xlsx report read back with exceljs keeps every
 * UTR digit as text, amounts as numbers in rupees, a frozen and filtered header and a Summary sheet.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ExcelJS from 'exceljs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateFile, type ValidateSummary } from '../src/batch/validateFile.js';
import { readBatchRows } from '../src/batch/ingest.js';
import { cellText } from '../src/batch/sheetCells.js';
import { ingestFile } from '../src/engine/ingest.js';
import { InputError } from '../src/errors.js';
import type { Sandbox } from '../src/sandbox/server.js';
import { runCli, type CliResult } from './helpers/cli.js';
import { freshDb } from './helpers/db.js';
import { clientFor, KEYS, quietLogger, sandbox, tmpDir } from './helpers/env.js';
import { runBatch } from '../src/engine/run.js';
import { watchInbox } from '../src/engine/watch.js';
import { parseSaxStreaming } from '../src/batch/exceljsReader.js';
import { toSheetValue } from '../src/batch/xlsxSource.js';

const HEADER = ['beneficiary_name', 'beneficiary_email', 'beneficiary_mobile_no', 'beneficiary_address', 'payment_method', 'beneficiary_acc_no', 'bank_name', 'ifsc', 'amount', 'remarks'];
type Cell = ExcelJS.CellValue | { value: ExcelJS.CellValue; numFmt: string };

/** A person's cells, text unless told: `over` replaces cells by header name. */
function person(i: number, over: Partial<Record<string, Cell>> = {}): Cell[] {
  const base: Record<string, Cell> = {
    beneficiary_name: `Person ${i}`,
    beneficiary_email: `p${i}@example.in`,
    beneficiary_mobile_no: `98450000${String(i).padStart(2, '0')}`,
    beneficiary_address: `Addr ${i}, Pune`,
    payment_method: 'IMPS',
    beneficiary_acc_no: `1000000000${String(i).padStart(2, '0')}`,
    bank_name: 'SBI',
    ifsc: 'SBIN0016745',
    amount: String(1000 + i),
    remarks: `Salary ${i}`,
  };
  return HEADER.map((h) => (h in over ? over[h]! : base[h]!));
}

/**
 * The sheet of the twin test, row by row (the sheet's row = index + 2), each with the text its CSV twin
 * has for the cells that are not text: what Excel's "CSV UTF-8" export of the sheet writes.
 */
const TWIN: { cells: Cell[] | null; csv: Partial<Record<string, string>> }[] = [
  // 2: all text, an account with leading zeros kept by a Text cell.
  { cells: person(2, { beneficiary_acc_no: '000123456789' }), csv: {} },
  // 3: mobile, account and amount as numbers, all digits there (a 12-digit account Excel shows as 1.23457E+11).
  { cells: person(3, { beneficiary_mobile_no: 9845000003, beneficiary_acc_no: 123456789012, amount: 2500.5 }), csv: { beneficiary_mobile_no: '9845000003', beneficiary_acc_no: '123456789012', amount: '2500.5' } },
  // 4: an account typed as a number that lost its leading zero (012345678901): accepted as shown, the file warned.
  { cells: person(4, { beneficiary_acc_no: 12345678901 }), csv: { beneficiary_acc_no: '12345678901' } },
  // 5: a 19-digit account typed as a number: Excel kept 15 digits.
  { cells: person(5, { beneficiary_acc_no: 1234567890123456789 }), csv: { beneficiary_acc_no: '1.23457E+18' } },
  // 6: an account that came in as 7.87879E+09 (a damaged CSV opened in Excel): scientific format.
  { cells: person(6, { beneficiary_acc_no: { value: 7878790000, numFmt: '0.00E+00' } }), csv: { beneficiary_acc_no: '7.88E+09' } },
  // 7: an amount with 3 decimals.
  { cells: person(7, { amount: 1234.567 }), csv: { amount: '1234.567' } },
  // 8: a date in the amount column.
  { cells: person(8, { amount: new Date(Date.UTC(2024, 0, 5)) }), csv: { amount: '05-01-2024' } },
  // 9: formulas with their saved results (a number, a text).
  { cells: person(9, { amount: { formula: '1000+500', result: 1500 } as ExcelJS.CellFormulaValue, beneficiary_name: { formula: '"Person "&"9"', result: 'Person 9' } as ExcelJS.CellFormulaValue }), csv: { amount: '1500', beneficiary_name: 'Person 9' } },
  // 10: a mobile number of 11 digits, as a number.
  { cells: person(10, { beneficiary_mobile_no: 98450000101 }), csv: { beneficiary_mobile_no: '98450000101' } },
  // 11: rich text in the name.
  { cells: person(11, { beneficiary_name: { richText: [{ text: 'Person ', font: { bold: true } }, { text: '11' }] } }), csv: { beneficiary_name: 'Person 11' } },
  // 12: a blank row, skipped by both.
  { cells: null, csv: {} },
  // 13: an IFSC typo and an email without a domain, as text: the row validation itself.
  { cells: person(13, { ifsc: 'SBIN016745', beneficiary_email: 'p13@' }), csv: {} },
  // 14: a mobile as a number of 9 digits, and an amount of zero as a number.
  { cells: person(14, { beneficiary_mobile_no: 984500001, amount: 0 }), csv: { beneficiary_mobile_no: '984500001', amount: '0' } },
];

function setCell(cell: ExcelJS.Cell, v: Cell): void {
  if (v !== null && typeof v === 'object' && 'numFmt' in v && 'value' in v) {
    cell.value = v.value;
    cell.numFmt = v.numFmt;
    return;
  }
  cell.value = v as ExcelJS.CellValue;
  if (v instanceof Date) cell.numFmt = 'dd-mm-yyyy';
}

async function writeWorkbook(file: string, sheets: { name: string; rows: (Cell[] | null)[] }[]): Promise<string> {
  const wb = new ExcelJS.Workbook();
  for (const s of sheets) {
    const ws = wb.addWorksheet(s.name);
    s.rows.forEach((cells, i) => {
      if (!cells) return;
      const row = ws.getRow(i + 1);
      cells.forEach((v, j) => setCell(row.getCell(j + 1), v));
      row.commit();
    });
  }
  await wb.xlsx.writeFile(file);
  return file;
}

function csvValue(v: string): string {
  return /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/** The CSV twin: text cells as they are, other cells as the twin's table says. */
function twinCsv(): string {
  const lines = [HEADER.join(',')];
  for (const t of TWIN) {
    if (!t.cells) {
      lines.push('');
      continue;
    }
    lines.push(t.cells.map((c, j) => csvValue(t.csv[HEADER[j]!] ?? (c as string))).join(','));
  }
  return lines.join('\n') + '\n';
}

/** Per row: valid or not, and its errors and warnings as field:code. */
function verdicts(s: ValidateSummary): Record<number, { errors: string[]; warnings: string[] }> {
  const out: Record<number, { errors: string[]; warnings: string[] }> = {};
  for (const p of s.problems) {
    const r = (out[p.row] ??= { errors: [], warnings: [] });
    (p.severity === 'error' ? r.errors : r.warnings).push(`${p.field}:${p.code}`);
  }
  return out;
}

/** LibreOffice, to see the report as a spreadsheet shows it (CI installs it; skipped where missing). */
const SOFFICE = ['/usr/bin/soffice', '/usr/bin/libreoffice'].find((p) => existsSync(p));

/** A sheet of a workbook as LibreOffice Calc shows it: each cell's type and displayed text. */
function openInCalc(file: string, sheet: string): { type: string; text: string }[][] {
  const out = tmpDir('payouts-lo-xlsx-');
  execFileSync(SOFFICE!, [`-env:UserInstallation=file://${tmpDir('payouts-lo-profile-')}`, '--headless', '--convert-to', 'fods', '--outdir', out, file], { stdio: 'pipe', timeout: 120_000 });
  const xml = readFileSync(path.join(out, `${path.basename(file, '.xlsx')}.fods`), 'utf8');
  const table = new RegExp(`<table:table table:name="${sheet}"[\\s\\S]*?</table:table>`).exec(xml)![0];
  const decode = (t: string) => t.replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  return [...table.matchAll(/<table:table-row[^>]*>([\s\S]*?)<\/table:table-row>/g)].map((m) => {
    const row: { type: string; text: string }[] = [];
    for (const c of m[1]!.matchAll(/<table:table-cell([^>]*?)(?:\/>|>([\s\S]*?)<\/table:table-cell>)/g)) {
      const rep = Number(/table:number-columns-repeated="(\d+)"/.exec(c[1]!)?.[1] ?? 1);
      const type = /office:value-type="([^"]+)"/.exec(c[1]!)?.[1] ?? 'empty';
      const text = decode([...(c[2] ?? '').matchAll(/<text:p[^>]*>([\s\S]*?)<\/text:p>/g)].map((p) => p[1]!.replace(/<[^>]+>/g, '')).join('\n'));
      for (let i = 0; i < Math.min(rep, 30); i++) row.push({ type, text });
    }
    return row;
  });
}

let dir: string;
let xlsx: string;
let csv: string;
let sb: Sandbox;
const env = () => ({ ALLIANCE_BASE_URL: sb.url, ALLIANCE_ACCESS_KEY: KEYS.accessKey, ALLIANCE_SECRET_KEY: KEYS.secretKey });
const show = (r: CliResult) => `exit ${r.code}\n${r.stdout}\n${r.stderr}`;

beforeAll(async () => {
  dir = tmpDir('payouts-xlsx-');
  xlsx = await writeWorkbook(path.join(dir, 'twin.xlsx'), [{ name: 'Payroll', rows: [HEADER, ...TWIN.map((t) => t.cells)] }]);
  csv = path.join(dir, 'twin.csv');
  writeFileSync(csv, twinCsv());
  sb = await sandbox();
});
afterAll(async () => {
  await sb?.close();
});

describe('an .xlsx and its CSV twin', () => {
  it('validate: the same rows valid and invalid, the same reasons per row and field', async () => {
    const [x, c] = [await validateFile(xlsx, { defaultUserId: 'M1' }), await validateFile(csv, { defaultUserId: 'M1' })];
    expect(c.refused).toBe(false);
    expect(x.refused).toBe(false);
    expect({ rows: x.rows, valid: x.valid, invalid: x.invalid, total: x.total_paise }).toEqual({ rows: c.rows, valid: c.valid, invalid: c.invalid, total: c.total_paise });
    expect(verdicts(x)).toEqual(verdicts(c));
    // What the twin shows, so that the equality above is about something.
    expect(x.rows).toBe(12);
    expect(verdicts(x)).toEqual({
      5: { errors: ['beneficiary_acc_no:scientific_notation'], warnings: [] },
      6: { errors: ['beneficiary_acc_no:scientific_notation'], warnings: [] },
      7: { errors: ['amount:amount_precision'], warnings: [] },
      8: { errors: ['amount:amount_format'], warnings: [] },
      10: { errors: ['beneficiary_mobile_no:mobile_format'], warnings: [] },
      13: { errors: ['beneficiary_email:email_format', 'ifsc:ifsc_format'], warnings: [] },
      14: { errors: ['beneficiary_mobile_no:mobile_format', 'amount:amount_not_positive'], warnings: [] },
    });
    // Only the workbook can say which cells are numbers: the messages name the cell and the Excel fix.
    const msg = (row: number) => x.problems.find((p) => p.row === row)!.message;
    expect(msg(5)).toMatch(/^beneficiary_acc_no in cell F5 \(column "beneficiary_acc_no"\) is a number of 19 digits in Excel, which keeps only 15 .*format the column as Text in Excel and re-enter the numbers$/);
    expect(msg(5)).not.toMatch(/\d{6}/); // the account's digits are never shown
    expect(msg(6)).toMatch(/cell F6 .* scientific notation .*format the column as Text in Excel and re-enter the numbers$/);
    expect(msg(7)).toMatch(/^amount in cell I7 .* is 1234\.567 in Excel .*at most 2 decimals/);
    expect(msg(8)).toMatch(/^amount in cell I8 .* is a date in Excel \(2024-01-05\)/);
    // The lost leading zero of row 4 cannot be known: one warning for the file, not a guess.
    expect(x.file_issues).toEqual([expect.objectContaining({ code: 'account_number_cells', severity: 'warning', line: 3 })]);
    expect(x.file_issues[0]!.message).toMatch(/2 rows, from row 3\).*leading zero/);
    expect(c.file_issues).toEqual([]);
  });

  it('the values read are the twin\'s: text kept, numbers as their digits, formulas as their results', async () => {
    const read = async (f: string) => {
      const out = [];
      for await (const r of readBatchRows(f, { batch: 'twin', defaultUserId: 'M1', reportAll: true })) {
        out.push({ row: r.rowNo, account: r.accountNumber, mobile: r.mobile, amount: r.amountPaise, name: r.name, orderId: r.orderId });
      }
      return out;
    };
    const [x, c] = [await read(xlsx), await read(csv)];
    // Rows whose account the workbook refuses differ only in the (never valid) placeholder text.
    const comparable = (rows: typeof x) => rows.map((r) => ([5, 6].includes(r.row) ? { ...r, account: '' } : r));
    expect(comparable(x)).toEqual(comparable(c));
    expect(x.find((r) => r.row === 2)!.account).toBe('000123456789');
    expect(x.find((r) => r.row === 3)).toMatchObject({ account: '123456789012', mobile: '9845000003', amount: 250050n });
    expect(x.find((r) => r.row === 9)).toMatchObject({ name: 'Person 9', amount: 150000n });
    expect(x.find((r) => r.row === 11)!.name).toBe('Person 11');
    // No order id is derived from a refused account.
    expect(x.find((r) => r.row === 5)!.orderId).toBeNull();
    expect(x.find((r) => r.row === 6)!.orderId).toBeNull();
  });

  it('payouts validate on the command line: the same counts and rows, exit 1 for invalid rows', async () => {
    const [x, c] = [
      await runCli(['validate', xlsx, '--user-id', 'M1', '--json'], { cwd: dir }),
      await runCli(['validate', csv, '--user-id', 'M1', '--json'], { cwd: dir }),
    ];
    expect(x.code, show(x)).toBe(1);
    expect(c.code, show(c)).toBe(1);
    const [jx, jc] = [JSON.parse(x.stdout), JSON.parse(c.stdout)];
    for (const k of ['rows', 'valid', 'invalid', 'valid_total']) expect(jx[k]).toEqual(jc[k]);
    const rowsOf = (j: { problems: { row: number; errors: string[] }[] }) => j.problems.map((p) => [p.row, p.errors.length]);
    expect(rowsOf(jx)).toEqual(rowsOf(jc));
  });

  it("a run's ingest stores the same rows, states and reasons from both", async () => {
    const stored = async (file: string) => {
      const db = await freshDb('pglite');
      try {
        await ingestFile(db.knex, { batch: 'twin', csvPath: file, defaultUserId: 'M1' });
        const rows = await db.knex('payout_rows').select('row_no', 'state', 'errors', 'amount_paise').orderBy('row_no');
        return rows.map((r: { row_no: number; state: string; errors: string | { field: string; code: string }[]; amount_paise: string | null }) => ({
          row: r.row_no,
          state: r.state,
          amount: r.amount_paise === null ? null : String(r.amount_paise),
          errors: (typeof r.errors === 'string' ? JSON.parse(r.errors) : r.errors).map((e: { field: string; code: string }) => `${e.field}:${e.code}`),
        }));
      } finally {
        await db.close();
      }
    };
    const [x, c] = [await stored(xlsx), await stored(csv)];
    expect(x).toEqual(c);
    expect(x.filter((r) => r.state === 'invalid').map((r) => r.row)).toEqual([5, 6, 7, 8, 10, 13, 14]);
  });
});

describe('what only a workbook can show', () => {
  it('a date in a text column, a formula with no saved result, an error value: errors on their cells', async () => {
    const file = await writeWorkbook(path.join(dir, 'cells.xlsx'), [
      {
        name: 'S',
        rows: [
          HEADER,
          person(2, { remarks: new Date(Date.UTC(2025, 2, 1)) }),
          person(3, { amount: { formula: 'SUM(I2:I2)' } as ExcelJS.CellFormulaValue }),
          person(4, { beneficiary_name: { error: '#N/A' } as ExcelJS.CellErrorValue }),
          person(5, { beneficiary_acc_no: { value: 12345678901, numFmt: '000000000000' } }),
        ],
      },
    ]);
    const s = await validateFile(file, { defaultUserId: 'M1' });
    expect(verdicts(s)).toEqual({
      2: { errors: ['remarks:date_cell'], warnings: [] },
      3: { errors: ['amount:formula'], warnings: [] },
      4: { errors: ['beneficiary_name:cell_error'], warnings: [] },
    });
    expect(s.problems.find((p) => p.row === 3)!.message).toMatch(/cell I3 .*formula with no saved result/);
    // A zero-padded format shows the leading zero, and it is kept (no warning: nothing was lost).
    const rows = [];
    for await (const r of readBatchRows(file, { batch: 'c', defaultUserId: 'M1', reportAll: true })) rows.push(r);
    expect(rows.find((r) => r.rowNo === 5)!.accountNumber).toBe('012345678901');
    expect(s.file_issues).toEqual([]);
  });

  it('cellText: the rules on their own', () => {
    const n = (value: number, numFmt?: string) => ({ kind: 'number' as const, value, numFmt });
    expect(cellText(n(9845000001), 'beneficiary_mobile_no', 'cell C2')).toEqual({ text: '9845000001', numberAsDigits: true });
    expect(cellText(n(999_999_999_999_999), 'beneficiary_acc_no', 'cell F2').issue).toBeUndefined();
    expect(cellText(n(1_000_000_000_000_000), 'beneficiary_acc_no', 'cell F2').issue?.code).toBe('scientific_notation');
    expect(cellText(n(1_000_000_000_000_000), 'beneficiary_name', 'cell A2')).toEqual({ text: '1000000000000000' });
    expect(cellText(n(0.1 + 0.2), 'amount', 'cell I2').issue?.code).toBe('amount_precision');
    expect(cellText(n(2500.5), 'amount', 'cell I2')).toEqual({ text: '2500.5' });
    expect(cellText({ kind: 'text', text: '007' }, 'beneficiary_acc_no', 'cell F2')).toEqual({ text: '007' });
  });
});

describe('names in other scripts', () => {
  // exceljs decodes each chunk of a part on its own: a character split between two chunks came out as
  // U+FFFD (4 of these 3,000 names on the code before), and the payout would go out under that name.
  it('every Devanagari, Tamil and accented name of a 3,000-row sheet reads back exactly as written', async () => {
    const names = Array.from({ length: 3000 }, (_, i) => [`राजेश कुमार शर्मा ${i}`, `முருகன் சுப்பிரமணியம் ${i}`, `José Müller ${i}`][i % 3]!);
    const file = await writeWorkbook(path.join(dir, 'scripts.xlsx'), [{ name: 'S', rows: [HEADER, ...names.map((n, i) => person(i, { beneficiary_name: n, remarks: `वेतन ₹ ${i}` }))] }]);
    const got: { name: string; remarks: string | null }[] = [];
    for await (const r of readBatchRows(file, { batch: 'scripts', defaultUserId: 'M1', reportAll: true })) got.push({ name: r.name, remarks: r.remarks });
    expect(got).toHaveLength(3000);
    const wrong = got.map((g, i) => ({ i, ...g })).filter((g) => g.name !== names[g.i] || g.remarks !== `वेतन ₹ ${g.i}`);
    expect(wrong).toEqual([]);
  });

  it('a value the reader could not make out (an unresolved shared text) refuses the file, never "[object Object]"', () => {
    expect(toSheetValue({ richText: [{ text: 'Asha ' }, { text: 'Rao' }] }, undefined, false, 'A2')).toEqual({ kind: 'text', text: 'Asha Rao' });
    expect(toSheetValue({ text: 'Bala', hyperlink: 'mailto:b@x.in' }, undefined, false, 'A3')).toEqual({ kind: 'text', text: 'Bala' });
    const unresolved = { sharedString: 7 } as unknown as ExcelJS.CellValue;
    expect(() => toSheetValue(unresolved, undefined, false, 'F5')).toThrow(InputError);
    expect(() => toSheetValue(unresolved, undefined, false, 'F5')).toThrow(/cell F5 refers to the workbook's shared text number 7.*nothing of this file was used; run the command again/);
    expect(() => toSheetValue({ checkbox: true } as unknown as ExcelJS.CellValue, undefined, false, 'B9')).toThrow(/cell B9 holds a value of a kind this program does not read/);
  });

  it("the parser decodes a part as one stream: a character split across chunks is whole, bytes that are not UTF-8 are refused", async () => {
    const xml = Buffer.from('<si><t>शर्मा ₹</t></si>', 'utf8');
    const texts = async (chunks: Buffer[]) => {
      const out: unknown[] = [];
      for await (const events of parseSaxStreaming((async function* () { yield* chunks; })())) {
        for (const e of events) if (e.eventType === 'text') out.push(e.value);
      }
      return out.join('');
    };
    // Every split point, one byte at a time included.
    for (let cut = 1; cut < xml.length; cut++) expect(await texts([xml.subarray(0, cut), xml.subarray(cut)])).toBe('शर्मा ₹');
    expect(await texts([...xml].map((b) => Buffer.from([b])))).toBe('शर्मा ₹');
    await expect(texts([Buffer.from('<t>ab'), Buffer.from([0xff]), Buffer.from('</t>')])).rejects.toThrow(/encoded data was not valid/);
    await expect(texts([xml.subarray(0, 9)])).rejects.toThrow(/encoded data was not valid/); // ends inside a character
  });
});

describe('--sheet', () => {
  let multi: string;
  beforeAll(async () => {
    multi = await writeWorkbook(path.join(dir, 'multi.xlsx'), [
      { name: 'Notes', rows: [['This sheet is not the payroll']] },
      { name: 'November', rows: [HEADER, person(2), person(3)] },
    ]);
  });

  it('the first sheet by default; --sheet picks another (case as Excel ignores it)', async () => {
    const first = await runCli(['validate', multi, '--user-id', 'M1'], { cwd: dir });
    expect(first.code, show(first)).toBe(2);
    expect(first.stderr).toMatch(/header|column/i);
    const nov = await runCli(['validate', multi, '--user-id', 'M1', '--sheet', 'november'], { cwd: dir });
    expect(nov.code, show(nov)).toBe(0);
    expect(nov.stdout).toMatch(/2 rows: 2 valid totalling ₹2,005\.00/);
  });

  it('an unknown sheet: exit 2 listing the sheets', async () => {
    const r = await runCli(['validate', multi, '--user-id', 'M1', '--sheet', 'December'], { cwd: dir });
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toMatch(/no sheet named "December": its sheets are "Notes", "November"/);
  });
});

describe('a damaged workbook', () => {
  it.each([
    ['text named .xlsx', () => HEADER.join(',') + '\n'],
    ['a zip cut short', () => readFileSync(xlsx).subarray(0, 2000)],
    ['an old .xls (or a password-protected workbook)', () => Buffer.concat([Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]), Buffer.alloc(504)])],
  ])('%s: exit 2 with the fix, nothing stored', async (_, bytes) => {
    const d = tmpDir('payouts-xlsx-bad-');
    const file = path.join(d, 'bad.xlsx');
    writeFileSync(file, bytes());
    const data = path.join(d, 'data');
    const reports = path.join(d, 'reports');
    const before = sb.requestCount();
    const r = await runCli(['run', file, '--user-id', 'M1', '--yes', '--data-dir', data, '--report-dir', reports], { cwd: d, env: env() });
    expect(r.code, show(r)).toBe(2);
    expect(sb.requestCount()).toBe(before);
    expect(r.stderr).toMatch(/the Excel file .*bad\.xlsx .*(not an Excel workbook|damaged or cut short|97-2003)/);
    expect(r.stderr).toMatch(/save it again|name it \.csv/);
    expect(existsSync(reports) ? readdirSync(reports) : []).toEqual([]);
    const st = await runCli(['status', '--data-dir', data, '--json'], { cwd: d });
    expect(st.stdout).not.toMatch(/"bad"/);
    // The library says the same, as an InputError, and stores nothing.
    await expect(validateFile(file)).resolves.toMatchObject({ refused: true });
    const db = await freshDb('pglite');
    try {
      await expect(ingestFile(db.knex, { batch: 'bad', csvPath: file, defaultUserId: 'M1' })).rejects.toBeInstanceOf(InputError);
      expect(await db.knex('batches').count({ n: '*' }).first()).toMatchObject({ n: expect.anything() });
      expect(Number((await db.knex('batches').count({ n: '*' }).first())!.n)).toBe(0);
    } finally {
      await db.close();
    }
  });
});

describe('a run of an .xlsx and its .xlsx report', () => {
  it('pays the valid rows; the report keeps every UTR digit as text, amounts in rupees, a frozen filtered header, the summary', async () => {
    const d = tmpDir('payouts-xlsx-run-');
    const rows = [HEADER, person(2), person(3, { beneficiary_acc_no: 123456789012, amount: 2500.5, beneficiary_mobile_no: 9845000003 }), person(4, { amount: 125000 }), person(5, { beneficiary_acc_no: 1234567890123456789 })];
    const file = await writeWorkbook(path.join(d, 'nov.xlsx'), [{ name: 'Payroll', rows }]);
    const data = path.join(d, 'data');
    const reports = path.join(d, 'reports');
    const r = await runCli(['run', file, '--user-id', 'M1', '--yes', '--rate', '100', '--poll-interval', '100ms', '--data-dir', data, '--report-dir', reports], { cwd: d, env: env() });
    expect(r.code, show(r)).toBe(1); // one invalid row
    expect(r.stdout).toMatch(/for Excel: .*nov\.xlsx/);
    expect(readdirSync(reports).sort()).toEqual(['nov.csv', 'nov.html', 'nov.json', 'nov.xlsx']);
    const json = JSON.parse(readFileSync(path.join(reports, 'nov.json'), 'utf8')) as { rows: { row: number; utr: string | null; status: string; account: string; amount: string | null }[] };
    const paid = json.rows.filter((x) => x.status === 'approved');
    expect(paid.length).toBe(3);

    const wb = new ExcelJS.Workbook();
    await wb.xlsx.readFile(path.join(reports, 'nov.xlsx'));
    expect(wb.worksheets.map((w) => w.name)).toEqual(['Payouts', 'Summary']);
    const ws = wb.getWorksheet('Payouts')!;
    const header = (ws.getRow(1).values as unknown[]).slice(1);
    expect(header).toEqual(['row', 'order_id', 'reference', 'beneficiary_name', 'account', 'ifsc', 'bank_name', 'payment_method', 'amount', 'charge', 'debited', 'status', 'status_label', 'utr', 'reason', 'status_message', 'remarks', 'warnings', 'sent_at', 'final_at']);
    const col = (name: string) => header.indexOf(name) + 1;
    expect(ws.views[0]).toMatchObject({ state: 'frozen', ySplit: 1 });
    expect(ws.autoFilter).toBeTruthy();
    expect(JSON.stringify(ws.autoFilter)).toMatch(/A1.*T1|"row":1/);
    for (const j of json.rows) {
      const row = ws.getRow(j.row);
      expect(row.getCell(col('row')).value).toBe(j.row);
      const utr = row.getCell(col('utr'));
      if (j.utr) {
        expect(typeof utr.value).toBe('string');
        expect(utr.value).toBe(j.utr); // every digit, as text
        expect(utr.numFmt).toBe('@');
      }
      const acc = row.getCell(col('account'));
      expect(acc.value).toBe(j.account);
      // Masked as the CSV report masks it: the last 4 characters (a refused account's placeholder: "e+18").
      expect(String(acc.value)).toMatch(/^X+[^X]{4}$/);
      expect(String(acc.value)).not.toMatch(/\d{5}/);
      expect(acc.numFmt).toBe('@');
      expect(row.getCell(col('order_id')).numFmt).toBe('@');
      const amount = row.getCell(col('amount'));
      if (j.amount !== null) {
        expect(amount.value).toBe(Number(j.amount));
        expect(amount.numFmt).toContain('₹');
      }
    }
    expect(paid.every((p) => p.utr && /^\d+$|^[A-Z0-9]+$/.test(p.utr))).toBe(true);
    expect(ws.getRow(4).getCell(col('amount')).value).toBe(125000);
    // No full account number anywhere in the workbook's parts.
    const xml = execFileSync('unzip', ['-p', path.join(reports, 'nov.xlsx')]).toString('utf8');
    for (const a of ['100000000002', '123456789012', '100000000004']) expect(xml).not.toContain(a);

    const summary = wb.getWorksheet('Summary')!;
    const lines = new Map<string, unknown[]>();
    summary.eachRow((row) => {
      const v = (row.values as unknown[]).slice(1);
      lines.set(String(v[0]), v.slice(1));
    });
    expect(lines.get('Batch')).toEqual(['nov']);
    expect(String(lines.get('File')?.[0])).toMatch(/nov\.xlsx$/);
    expect(String(lines.get('Finished')?.[0])).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+05:30$/);
    expect(lines.get('Paid')).toEqual([3, 1002 + 2500.5 + 125000]);
    expect(lines.get('All rows')?.[0]).toBe(4);
    expect(summary.getRow([...lines.keys()].indexOf('Paid') + 1).getCell(3).numFmt).toContain('₹');

    // The far side: LibreOffice Calc shows the UTRs as text with every digit, the amounts in rupees with
    // Indian grouping.
    if (SOFFICE) {
      const calc = openInCalc(path.join(reports, 'nov.xlsx'), 'Payouts');
      for (const j of json.rows) {
        const cells = calc[j.row - 1]!;
        if (j.utr) expect(cells[col('utr') - 1]).toEqual({ type: 'string', text: j.utr });
        if (j.amount !== null) expect(cells[col('amount') - 1]!.type).toBe('float');
      }
      expect(calc[3]![col('amount') - 1]!.text).toBe('₹1,25,000.00');
      expect(calc[2]![col('amount') - 1]!.text).toBe('₹2,500.50');
    }

    // report --format xlsx writes the workbook alone, the same rows.
    const again = path.join(d, 'again');
    const rep = await runCli(['report', 'nov', '--format', 'xlsx', '--data-dir', data, '--report-dir', again], { cwd: d });
    expect(rep.code, show(rep)).toBe(0);
    expect(readdirSync(again)).toEqual(['nov.xlsx']);
    const wb2 = new ExcelJS.Workbook();
    await wb2.xlsx.readFile(path.join(again, 'nov.xlsx'));
    expect(wb2.getWorksheet('Payouts')!.getRow(2).getCell(col('utr')).value).toBe(ws.getRow(2).getCell(col('utr')).value);
  });
});

describe('the inbox', () => {
  it('pays an .xlsx dropped into it and moves it to done/ with its reports, the workbook among them', async () => {
    const inbox = tmpDir('payouts-xlsx-inbox-');
    await writeWorkbook(path.join(inbox, 'dec-bonus.xlsx'), [{ name: 'Bonus', rows: [HEADER, person(62), person(63, { amount: 2500 })] }]);
    const db = await freshDb('pglite');
    const client = clientFor(sb);
    try {
      const res = await watchInbox({
        inbox,
        once: true,
        stableMs: 200,
        pollMs: 50,
        runFile: async (o) => {
          const r = await runBatch(
            { yes: true, rate: 500, pollIntervalMs: 20, pollMaxIntervalMs: 50, pollTimeoutMs: 10_000, ambiguousGraceMs: 200, batch: o.batch, csvPath: o.csv, reportDir: o.reportDir, defaultUserId: 'M1', beforeSend: o.beforeSend },
            { db: db.knex, client, logger: quietLogger },
          );
          return { exitCode: r.exitCode, message: r.message };
        },
      });
      expect(res.processed.map((p) => [p.file, p.batch, p.movedTo])).toEqual([['dec-bonus.xlsx', 'dec-bonus', 'done']]);
      expect(readdirSync(path.join(inbox, 'done')).sort()).toEqual(['dec-bonus.reports', 'dec-bonus.xlsx']);
      expect(readdirSync(path.join(inbox, 'done', 'dec-bonus.reports')).sort()).toEqual(['dec-bonus.csv', 'dec-bonus.html', 'dec-bonus.json', 'dec-bonus.xlsx']);
      const rows = await db.knex('payout_rows').select('state', 'amount_paise').orderBy('row_no');
      expect(rows.map((r: { state: string; amount_paise: string }) => [r.state, String(r.amount_paise)])).toEqual([
        ['approved', '106200'],
        ['approved', '250000'],
      ]);
    } finally {
      await client.close();
      await db.close();
    }
  });
});

describe('a corrected workbook (--revise)', () => {
  // People of their own: the sandbox is shared, and a payment it has seen already is never made again.
  it('pays the row whose account was fixed as text, and no one twice', async () => {
    const d = tmpDir('payouts-xlsx-revise-');
    const first = await writeWorkbook(path.join(d, 'jan.xlsx'), [{ name: 'Jan', rows: [HEADER, person(72), person(73, { beneficiary_acc_no: 1234567890123456789 }), person(74)] }]);
    const fixed = await writeWorkbook(path.join(d, 'jan-v2.xlsx'), [{ name: 'Jan', rows: [HEADER, person(72), person(73, { beneficiary_acc_no: '1234567890123456789' }), person(74)] }]);
    const db = await freshDb('pglite');
    const client = clientFor(sb);
    const opts = { yes: true, rate: 500, pollIntervalMs: 20, pollMaxIntervalMs: 50, pollTimeoutMs: 10_000, ambiguousGraceMs: 200, batch: 'jan', reportDir: path.join(d, 'reports'), defaultUserId: 'M1' };
    try {
      const before = sb.ledger().length;
      const r1 = await runBatch({ ...opts, csvPath: first }, { db: db.knex, client, logger: quietLogger });
      expect(r1.exitCode).toBe(1);
      expect(sb.ledger().length - before).toBe(2);
      const r2 = await runBatch({ ...opts, csvPath: fixed, revise: true }, { db: db.knex, client, logger: quietLogger });
      expect(r2.exitCode, r2.message).toBe(0);
      expect(sb.ledger().length - before).toBe(3);
      const rows = await db.knex('payout_rows').select('row_no', 'state', 'account_no').where({ state: 'approved' }).orderBy('row_no');
      expect(rows.map((r: { row_no: number; account_no: string }) => [r.row_no, r.account_no])).toEqual([
        [2, '100000000072'],
        [3, '1234567890123456789'],
        [4, '100000000074'],
      ]);
    } finally {
      await client.close();
      await db.close();
    }
  });
});
