import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Knex } from 'knex';
import { UsageError } from '../errors.js';
import { batchForReport, iterateReportRows, rowsInStates, type BatchForReport } from '../db/reports.js';
import { ALL_ROW_STATES, type RowState } from '../states.js';
import { AtomicFile, writeFileAtomic } from './files.js';
import { csvHeader, csvRow } from './csv.js';
import { renderHtml } from './html.js';
import { reportRow, type ReasonContext, type ReportRow } from './rows.js';
import { summarize, type BatchSummary, SUMMARY_SCHEMA_VERSION } from './summary.js';
import { XlsxReport } from './xlsx.js';
import { DEFAULT_TIME_ZONE, isTimeZone, isoLocalTime } from './time.js';

export { summarize, type BatchSummary } from './summary.js';
export { REPORT_COLUMNS } from './csv.js';

export type ReportFormat = 'csv' | 'json' | 'html' | 'xlsx';
export const REPORT_FORMATS: readonly ReportFormat[] = ['csv', 'json', 'html', 'xlsx'];

export interface ReportOptions {
  /** IANA time zone for every time in the reports. Default Asia/Kolkata. */
  timeZone?: string | undefined;
  /** The generation time (tests). Default now. */
  now?: Date | undefined;
  /** At most this many rows not paid (and paid) are listed in the HTML report (the CSV has them all). Default 1000. */
  htmlRowLimit?: number | undefined;
  /** The API's host, named in the reports. */
  apiHost?: string | undefined;
}

export interface ReportPaths {
  csv: string;
  json: string;
  html: string;
  /** The workbook beside the CSV (src/report/xlsx.ts). */
  xlsx: string;
  summary: BatchSummary;
}

/**
 * A safe file name for a batch: letters, digits, dot, dash, underscore. A name that had to be changed gets
 * a short hash of the original, so "a/b" and "a_b" never share a report.
 */
export function reportBaseName(batch: string): string {
  const safe = batch.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '_') || 'batch';
  return safe === batch ? safe : `${safe}-${createHash('sha256').update(batch).digest('hex').slice(0, 8)}`;
}

/** The path of a batch's report in one format. */
export function reportPath(dir: string, batch: string, format: ReportFormat): string {
  return path.join(dir, `${reportBaseName(batch)}.${format}`);
}

function zoneOf(opts: ReportOptions): string {
  const tz = opts.timeZone ?? DEFAULT_TIME_ZONE;
  if (!isTimeZone(tz)) throw new UsageError(`unknown time zone "${tz}": use an IANA name such as Asia/Kolkata or UTC`);
  return tz;
}

interface Loaded {
  batch: BatchForReport | undefined;
  ctx: ReasonContext;
  tz: string;
}

async function load(db: Knex, batch: string, opts: ReportOptions): Promise<Loaded> {
  const tz = zoneOf(opts);
  const b = await batchForReport(db, batch);
  return { batch: b, ctx: { batch, decision: b?.decision ?? null }, tz };
}

async function* csvChunks(db: Knex, batch: string, l: Loaded): AsyncGenerator<string> {
  yield csvHeader(l.batch?.reference_column ?? null);
  for await (const row of iterateReportRows(db, batch)) yield csvRow(reportRow(row, l.ctx), l.tz);
}

/** A row for the JSON report: times as ISO 8601 with the report zone's offset. */
export function jsonRow(r: ReportRow, tz: string): Record<string, unknown> {
  return { ...r, sent_at: isoLocalTime(r.sent_at, tz), final_at: isoLocalTime(r.final_at, tz) };
}

function jsonHead(summary: BatchSummary): string {
  return `{\n"schema_version": ${SUMMARY_SCHEMA_VERSION},\n"summary": ${JSON.stringify(summary, null, 2)},\n"rows": [`;
}
const JSON_TAIL = '\n]\n}\n';

async function* jsonChunks(db: Knex, batch: string, l: Loaded, summary: BatchSummary): AsyncGenerator<string> {
  yield jsonHead(summary);
  let first = true;
  for await (const row of iterateReportRows(db, batch)) {
    yield `${first ? '\n' : ',\n'}${JSON.stringify(jsonRow(reportRow(row, l.ctx), l.tz))}`;
    first = false;
  }
  yield JSON_TAIL;
}

const NOT_PAID_STATES: RowState[] = ALL_ROW_STATES.filter((s) => s !== 'approved');

async function htmlText(db: Knex, batch: string, l: Loaded, summary: BatchSummary, opts: ReportOptions, csvName: string): Promise<string> {
  const limit = opts.htmlRowLimit ?? 1000;
  const rows = await rowsInStates(db, batch, NOT_PAID_STATES, limit);
  const paid = await rowsInStates(db, batch, ['approved'], limit);
  return renderHtml({
    summary,
    notPaid: rows.map((r) => reportRow(r, l.ctx)),
    notPaidTotal: summary.rows - summary.counts.approved,
    paid: paid.map((r) => reportRow(r, l.ctx)),
    csvName,
  });
}

/**
 * Writes one report format for a batch into `dir` (created if missing), atomically, mode 0600. Returns
 * the file written and the summary it was made with.
 */
export async function writeReport(
  db: Knex,
  batch: string,
  dir: string,
  format: ReportFormat,
  opts: ReportOptions = {},
): Promise<{ file: string; summary: BatchSummary }> {
  const l = await load(db, batch, opts);
  const summary = await summarize(db, batch, { timeZone: l.tz, now: opts.now, apiHost: opts.apiHost });
  const file = reportPath(dir, batch, format);
  if (format === 'csv') await writeFileAtomic(file, csvChunks(db, batch, l));
  else if (format === 'xlsx') await writeXlsx(db, batch, file, l, summary);
  else if (format === 'json') await writeFileAtomic(file, jsonChunks(db, batch, l, summary));
  else await writeFileAtomic(file, [await htmlText(db, batch, l, summary, opts, path.basename(reportPath(dir, batch, 'csv')))]);
  return { file, summary };
}

async function writeXlsx(db: Knex, batch: string, file: string, l: Loaded, summary: BatchSummary): Promise<void> {
  const x = await XlsxReport.open(file, l.batch?.reference_column ?? null, l.tz);
  try {
    for await (const row of iterateReportRows(db, batch)) x.add(reportRow(row, l.ctx));
    await x.commit(summary);
  } catch (err) {
    await x.abort();
    throw err;
  }
}

/**
 * The one entry the engine calls: writes <dir>/<batch>.csv (every row, for spreadsheets), .xlsx (the same
 * rows as an Excel workbook with text cells for identifiers, and the summary), .json (the summary and
 * every row, for scripts) and .html (for people), each atomically and readable by the owner only. The rows are streamed from the database, so a batch of a million rows fits in memory.
 */
export async function writeReports(db: Knex, batch: string, dir: string, opts: ReportOptions = {}): Promise<ReportPaths> {
  const l = await load(db, batch, opts);
  const summary = await summarize(db, batch, { timeZone: l.tz, now: opts.now, apiHost: opts.apiHost });
  const csv = reportPath(dir, batch, 'csv');
  const json = reportPath(dir, batch, 'json');
  const html = reportPath(dir, batch, 'html');
  const xlsx = reportPath(dir, batch, 'xlsx');
  const files: AtomicFile[] = [];
  let x: XlsxReport | undefined;
  try {
    const [c, j, h] = [await AtomicFile.open(csv), await AtomicFile.open(json), await AtomicFile.open(html)];
    files.push(c, j, h);
    x = await XlsxReport.open(xlsx, l.batch?.reference_column ?? null, l.tz);
    // One pass over the rows feeds the CSV and the JSON: each row is read and described once.
    await c.write(csvHeader(l.batch?.reference_column ?? null));
    await j.write(jsonHead(summary));
    let first = true;
    for await (const row of iterateReportRows(db, batch)) {
      const r = reportRow(row, l.ctx);
      await c.write(csvRow(r, l.tz));
      x.add(r);
      await j.write(`${first ? '\n' : ',\n'}${JSON.stringify(jsonRow(r, l.tz))}`);
      first = false;
    }
    await j.write(JSON_TAIL);
    await h.write(await htmlText(db, batch, l, summary, opts, path.basename(csv)));
    await x.commit(summary);
    x = undefined;
    // Committed together at the end: a failure anywhere leaves the previous reports as they were.
    for (const f of files) await f.commit();
  } catch (err) {
    for (const f of files) await f.abort();
    await x?.abort();
    throw err;
  }
  return { csv, json, html, xlsx, summary };
}
