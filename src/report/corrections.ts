import path from 'node:path';
import type { Knex } from 'knex';
import { formatRupees } from '../money.js';
import { fieldForHeader } from '../batch/columns.js';
import { batchForReport, iterateReportRows, type ReportSourceRow } from '../db/reports.js';
import { hasExplicitOrderId } from '../db/rows.js';
import type { RowState } from '../states.js';
import { BOM } from './csv.js';
import { writeFileAtomic } from './files.js';
import { reasonOf } from './rows.js';
import { reportBaseName } from './report.js';

/**
 * The corrections file: the rows to fix (invalid; failed: refused by the API; rejected by the bank: a
 * corrected account or IFSC is a new payout, an unchanged line is not paid again), in the input's own
 * columns and cells, plus a `reason` column. Fixed and run again with `payouts run <file> --batch <batch>
 * --revise`, rows already paid stay paid and the fixed rows are paid.
 *
 * It is an input file, not a report: it holds what the input held (full account numbers included), so it
 * is written with mode 0600 like every report. Cells are written as the input had them, so an untouched
 * cell reads back the same; the only change is a leading apostrophe on a cell a spreadsheet would run as a
 * formula (the reason says so).
 */

/** Rows that the corrections file offers for fixing. */
export const FIXABLE_STATES: readonly RowState[] = ['invalid', 'failed', 'rejected'];

/** The API's field names: the columns of a corrections file for a batch read before the input's header was kept. */
const CANONICAL_COLUMNS = [
  'beneficiary_name',
  'beneficiary_email',
  'beneficiary_mobile_no',
  'beneficiary_address',
  'payment_method',
  'beneficiary_acc_no',
  'bank_name',
  'ifsc',
  'amount',
  'remarks',
  'user_id',
] as const;

function canonicalCells(row: ReportSourceRow, withOrderId: boolean): string[] {
  const cells = [
    row.name,
    row.email,
    row.mobile,
    row.address,
    row.method,
    row.account_no,
    row.bank_name,
    row.ifsc,
    row.amount_paise === null ? null : formatRupees(BigInt(row.amount_paise)),
    row.remarks,
    row.user_id,
  ].map((v) => v ?? '');
  if (withOrderId) cells.push(row.order_id_source === 'csv' ? (row.order_id ?? '') : '');
  return cells;
}

/** A cell a spreadsheet would run as a formula; plain signed numbers and phone numbers (+91 98765 43210) are harmless. */
function runsAsFormula(v: string): boolean {
  return /^[=+\-@\t\r]/.test(v) && !/^[+-]?[\d\s().,-]*$/.test(v);
}

function rawCell(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

export interface CorrectionsResult {
  file: string;
  /** Rows written (invalid, failed and rejected). */
  rows: number;
  /** The columns written: the input's own, or the API field names for an older batch, then `reason`. */
  columns: string[];
  /** True when the input's own header and cells were used. */
  sourceColumns: boolean;
}

/** Where `payouts report <batch> --fixable` writes: <dir>/<batch>.corrections.csv */
export function correctionsPath(dir: string, batch: string): string {
  return path.join(dir, `${reportBaseName(batch)}.corrections.csv`);
}

/**
 * Writes the corrections file for a batch. With the input's header and each row's cells stored (ingest
 * keeps them), the file has the input's own columns in its own order; for an older batch without them,
 * the API's field names filled from the stored row (a derived order_id is left out so the fixed row
 * derives it again; an explicit one is kept).
 */
export async function writeCorrections(db: Knex, batch: string, file: string): Promise<CorrectionsResult> {
  const b = await batchForReport(db, batch);
  const ctx = { batch, decision: b?.decision ?? null, forCorrections: true };
  const header = b?.source_header && b.source_header.length ? b.source_header.map((h) => h.replace(/^\uFEFF/, '')) : null;
  // Is there any explicit order_id to keep? Only then does the fallback need the column.
  const withOrderId = header === null && (await hasExplicitOrderId(db, batch, FIXABLE_STATES));
  const base = header ?? [...CANONICAL_COLUMNS, ...(withOrderId ? ['order_id'] : [])];
  const reasonCol = base.some((h) => h.trim().toLowerCase() === 'reason') ? 'payouts_reason' : 'reason';
  const columns = [...base, reasonCol];
  let count = 0;
  let usedSource = header !== null;
  async function* chunks(): AsyncGenerator<string> {
    yield BOM + columns.map(rawCell).join(',') + '\r\n';
    for await (const row of iterateReportRows(db, batch, FIXABLE_STATES)) {
      let cells: string[];
      if (header && Array.isArray(row.source)) {
        cells = header.map((_h, i) => String(row.source![i] ?? ''));
      } else if (header) {
        // The header is known but this row's cells are not (read before ingest kept them): fill what maps.
        usedSource = false;
        const canon = canonicalCells(row, true);
        cells = header.map((h) => {
          const f = fieldForHeader(h);
          const k = f === 'order_id' ? CANONICAL_COLUMNS.length : f ? CANONICAL_COLUMNS.indexOf(f as (typeof CANONICAL_COLUMNS)[number]) : -1;
          return k >= 0 ? canon[k]! : '';
        });
      } else {
        cells = canonicalCells(row, withOrderId);
      }
      const defused: string[] = [];
      const out = cells.map((v, i) => {
        if (!runsAsFormula(v)) return rawCell(v);
        defused.push(base[i]!);
        return rawCell(`'${v}`);
      });
      let reason = reasonOf(row, ctx);
      // A row that was sent keeps its order_id at the API: the corrected line needs another one.
      if ((row.state === 'rejected' || row.state === 'failed') && row.order_id_source === 'csv') {
        reason += ` Its order_id ${row.order_id} is taken at the API: give the corrected line a new order_id.`;
      }
      if (defused.length) {
        reason += ` A ' was put before ${defused.join(', ')} so that a spreadsheet does not run it as a formula: remove it when you fix the cell.`;
      }
      out.push(rawCell(reason));
      count++;
      yield out.join(',') + '\r\n';
    }
  }
  await writeFileAtomic(file, chunks());
  return { file, rows: count, columns, sourceColumns: usedSource };
}
