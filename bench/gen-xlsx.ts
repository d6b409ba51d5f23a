/**
 * The benchmark's payroll as an Excel workbook: generate-csv's rows written with exceljs's streaming
 * WorkbookWriter, as payroll kept in Excel looks: text cells, the mobile numbers and the amounts as
 * number cells (the broken rows' values, such as a negative amount or an account already in scientific
 * notation, stay the text they are), so a read exercises both kinds of cell and gets the CSV's verdicts.
 *
 *   node dist/bench/gen-xlsx.js out.xlsx 50000 [invalidEvery] [seed]
 */
import { rmSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parse } from 'csv-parse';
import { createReadStream } from 'node:fs';
import ExcelJS from 'exceljs';
import { generateCsv, type GenerateOptions } from './gen-csv.js';

const MOBILE = /^[6-9]\d{9}$/;
const AMOUNT = /^\d{1,9}(?:\.\d{1,2})?$/;

export async function generateXlsx(file: string, rows: number, opts: GenerateOptions = {}): Promise<void> {
  const csv = `${file}.csv`;
  await generateCsv(csv, rows, opts);
  try {
    const book = new ExcelJS.stream.xlsx.WorkbookWriter({ filename: file, useSharedStrings: true, useStyles: true });
    const sheet = book.addWorksheet('Payroll');
    let header: string[] | undefined;
    for await (const rec of createReadStream(csv).pipe(parse({ relax_quotes: true })) as AsyncIterable<string[]>) {
      if (!header) {
        header = rec;
        sheet.addRow(rec).commit();
        continue;
      }
      const values = rec.map((v, i) => {
        const h = header![i];
        if (h === 'beneficiary_mobile_no' && MOBILE.test(v)) return Number(v);
        if (h === 'amount' && AMOUNT.test(v)) return Number(v);
        return v;
      });
      sheet.addRow(values).commit();
    }
    sheet.commit();
    await book.commit();
  } finally {
    rmSync(csv, { force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [out, rowsArg, everyArg, seedArg] = process.argv.slice(2);
  const rows = Number(rowsArg ?? '1000');
  if (!out || !Number.isInteger(rows) || rows < 0) {
    console.error('usage: node dist/bench/gen-xlsx.js <out.xlsx> <rows> [invalidEvery] [seed]');
    process.exitCode = 2;
  } else {
    await generateXlsx(out, rows, { invalidEvery: everyArg ? Number(everyArg) : undefined, seed: seedArg ? Number(seedArg) : undefined });
  }
}
