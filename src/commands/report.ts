import path from 'node:path';
import { BatchNotFoundError } from '../errors.js';
import { batchForReport } from '../db/reports.js';
import { writeReport, writeReports, type ReportFormat } from '../report/report.js';
import { correctionsPath, writeCorrections } from '../report/corrections.js';
import { printJson, withDb, type CommandIO } from './context.js';

export interface ReportCommandOptions {
  batch: string;
  /** Where the files go, relative to io.cwd. Default reports. */
  reportDir?: string | undefined;
  /** One format, or all of them (csv, xlsx, json, html). Default all. */
  format?: ReportFormat | 'all' | undefined;
  /** Write the corrections file (invalid and failed rows in the input's columns) instead of the reports. */
  fixable?: boolean | undefined;
  /** IANA zone for the times. Default the configuration's (Asia/Kolkata). */
  timeZone?: string | undefined;
}

/** `payouts report <batch> [--format csv|xlsx|json|html] [--fixable]`: writes the batch's report files from the database. */
export async function reportCommand(io: CommandIO, o: ReportCommandOptions): Promise<number> {
  const dir = path.resolve(io.cwd, o.reportDir ?? 'reports');
  const timeZone = o.timeZone ?? io.config.timeZone;
  return withDb(io, async (db) => {
    if (!(await batchForReport(db.knex, o.batch))) throw new BatchNotFoundError(`no batch named "${o.batch}": \`payouts status\` lists them`);
    if (o.fixable) {
      const r = await writeCorrections(db.knex, o.batch, correctionsPath(dir, o.batch));
      const next = `payouts run ${r.file} --batch ${o.batch} --revise`;
      if (io.json) {
        printJson(io, { batch: o.batch, corrections: r.file, rows: r.rows, columns: r.columns, source_columns: r.sourceColumns, next: r.rows ? next : null });
      } else if (r.rows === 0) {
        io.out(`No invalid or refused rows in batch ${o.batch}: nothing to correct (${r.file} has the header only)`);
      } else {
        io.out(`Corrections: ${r.file} (${r.rows} rows to fix, reason in the last column)`);
        if (!r.sourceColumns) io.out('  (this batch was read before the input\'s own columns were kept: the file uses the API\'s column names)');
        io.out(`Fix the rows, then run: ${next}`);
      }
      return 0;
    }
    if (o.format && o.format !== 'all') {
      const r = await writeReport(db.knex, o.batch, dir, o.format, { timeZone, apiHost: apiHostOf(io.config.api.baseUrl) });
      if (io.json) printJson(io, { batch: o.batch, files: { [o.format]: r.file }, summary: r.summary });
      else io.out(`Report: ${r.file}`);
      return 0;
    }
    const r = await writeReports(db.knex, o.batch, dir, { timeZone, apiHost: apiHostOf(io.config.api.baseUrl) });
    if (io.json) printJson(io, { batch: o.batch, files: { csv: r.csv, json: r.json, html: r.html, xlsx: r.xlsx }, summary: r.summary });
    else io.out(`Report: ${r.csv}, ${r.json} and ${r.html} (for Excel: ${r.xlsx})`);
    return 0;
  });
}

function apiHostOf(baseUrl: string | undefined): string | undefined {
  if (!baseUrl) return undefined;
  try {
    return new URL(baseUrl).host;
  } catch {
    return undefined;
  }
}
