import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { readBatchRows, type IngestRow } from '../batch/ingest.js';
import { InputError } from '../errors.js';
import { SENT_STATES, type RowState } from '../states.js';
import { getBatch, insertBatch, reviseBatch } from '../db/batches.js';
import { dropUnsentFromOlderRevisions, existingOrderIds, insertRows, type NewRow } from '../db/rows.js';

export interface IngestResult {
  batch: string;
  revision: number;
  /** 'new' batch, 'unchanged' file (nothing read), or a 'revised' (corrected) copy merged in. */
  kind: 'new' | 'unchanged' | 'revised';
  rows: number;
  invalid: number;
  warnings: number;
}

export interface IngestOptions {
  batch: string;
  csvPath: string;
  defaultUserId?: string | undefined;
  /** Rows per insert transaction. Default 1000. */
  chunkSize?: number;
  logger?: Logger;
  /**
   * Called before a different file is merged into an existing batch, with how many of its payouts may
   * already exist at the API; throw to refuse (nothing is changed then).
   */
  onRevision?: (sentRows: number) => Promise<void>;
}

export async function fileSha256(file: string): Promise<string> {
  const h = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new InputError(`CSV file not found: ${file}: check the path`, { cause: err });
    throw new InputError(`cannot read the CSV file ${file}: ${(err as Error).message}`, { cause: err });
  }
  return h.digest('hex');
}

/** "payroll-2026-11.csv" -> "payroll-2026-11" */
export function defaultBatchName(csvPath: string): string {
  return path.basename(csvPath).replace(/\.[^.]*$/, '') || 'batch';
}

/**
 * Reads a CSV into the batch's rows, every row valid or not, in chunks of short transactions.
 *
 * The same file again changes nothing. A different file under the same batch name is a corrected copy:
 * rows whose order_id is already known keep their state (an already-paid row is never paid again), new
 * rows are added, and rows of the old file that were never sent are dropped. A crash mid-read leaves the
 * batch marked incomplete, and the next run reads the file again from the start.
 */
export async function ingestFile(db: Knex, opts: IngestOptions): Promise<IngestResult> {
  const sha = await fileSha256(opts.csvPath);
  const source = path.resolve(opts.csvPath);
  const existing = await getBatch(db, opts.batch);
  let revision: number;
  let kind: IngestResult['kind'];
  if (!existing) {
    await insertBatch(db, { name: opts.batch, sourceFile: source, sha256: sha, defaultUserId: opts.defaultUserId ?? null });
    revision = 1;
    kind = 'new';
  } else if (existing.file_sha256 === sha && existing.ingest_complete) {
    return { batch: opts.batch, revision: existing.revision, kind: 'unchanged', ...(await countRows(db, opts.batch)) };
  } else if (existing.file_sha256 === sha) {
    // Interrupted ingest of this very file: drop what it half wrote (never sent) and read again.
    revision = existing.revision;
    kind = existing.revision === 1 ? 'new' : 'revised';
    await db('payout_rows').where({ batch: opts.batch, revision }).whereIn('state', ['invalid', 'ready']).del();
  } else {
    if (opts.onRevision) {
      const sent = await db('payout_rows').where({ batch: opts.batch }).whereIn('state', SENT_STATES as RowState[]).count('* as n').first();
      await opts.onRevision(Number((sent as { n: string | number }).n));
    }
    revision = await reviseBatch(db, opts.batch, source, sha);
    kind = 'revised';
    opts.logger?.info({ batch: opts.batch, revision }, 'a different file for an existing batch: merging it as a corrected copy');
  }

  const chunkSize = opts.chunkSize ?? 1000;
  let chunk: IngestRow[] = [];
  let rows = 0;
  let invalid = 0;
  let warnings = 0;
  const flush = async () => {
    if (chunk.length === 0) return;
    const batchRows = chunk;
    chunk = [];
    await db.transaction(async (trx) => {
      const explicit = batchRows.filter((r) => r.orderIdSource === 'csv' && r.orderId).map((r) => r.orderId!);
      const taken = await existingOrderIds(trx, explicit);
      const values = batchRows.map((r) => toNewRow(r, opts.batch, revision, taken));
      for (const v of values) {
        if (v.state === 'invalid') invalid++;
        if (v.warnings.length) warnings++;
      }
      await insertRows(trx, values);
    });
  };
  // One chunk is written while the next is read and validated: parsing and the database overlap.
  let writing: Promise<void> | undefined;
  const drain = async () => {
    const w = writing;
    writing = undefined;
    await w;
  };
  try {
    for await (const r of readBatchRows(opts.csvPath, {
      batch: opts.batch,
      ...(opts.defaultUserId ? { defaultUserId: opts.defaultUserId } : {}),
    })) {
      chunk.push(r);
      rows++;
      if (chunk.length >= chunkSize) {
        await drain();
        writing = flush();
        writing.catch(() => {}); // surfaced by the next drain
      }
    }
    await drain();
  } finally {
    // A file error mid-way: let the chunk in flight finish before the caller moves on (or closes the db).
    await writing?.catch(() => {});
  }
  await flush();
  if (rows === 0) throw new InputError(`${opts.csvPath} has a header but no rows: nothing to pay`);
  await db.transaction(async (trx) => {
    if (kind === 'revised') await dropUnsentFromOlderRevisions(trx, opts.batch, revision);
    await trx('batches').where({ name: opts.batch }).update({ ingest_complete: true, updated_at: trx.fn.now() });
  });
  return { batch: opts.batch, revision, kind, rows, invalid, warnings };
}

function toNewRow(r: IngestRow, batch: string, revision: number, taken: Map<string, string>): NewRow {
  const errors = [...r.errors];
  if (r.orderIdSource === 'csv' && r.orderId) {
    const other = taken.get(r.orderId);
    if (other !== undefined && other !== batch) {
      errors.push({
        field: 'order_id',
        code: 'order_id_used',
        message: `order_id ${r.orderId} was already used in batch ${other}: order_ids must be unique across batches`,
      });
    }
  }
  const valid = errors.length === 0 && r.orderId !== null;
  return {
    batch,
    revision,
    row_no: r.rowNo,
    // An invalid row is never sent; it holds no order_id so it can never block a valid row's.
    order_id: valid ? r.orderId : null,
    order_id_source: valid ? r.orderIdSource : null,
    state: valid ? 'ready' : 'invalid',
    name: r.name || null,
    email: r.email || null,
    mobile: r.mobile || null,
    address: r.address || null,
    method: r.method,
    account_no: r.accountNumber || null,
    bank_name: r.bankName || null,
    ifsc: r.ifsc || null,
    amount_paise: r.amountPaise !== null && r.amountPaise > 0n ? r.amountPaise : null,
    remarks: r.remarks,
    user_id: r.userId,
    errors,
    warnings: r.warnings,
  };
}

async function countRows(db: Knex, batch: string): Promise<{ rows: number; invalid: number; warnings: number }> {
  const r = (await db('payout_rows')
    .where({ batch })
    .select(
      db.raw('count(*)::int AS rows'),
      db.raw(`count(*) FILTER (WHERE state = 'invalid')::int AS invalid`),
      db.raw(`count(*) FILTER (WHERE jsonb_array_length(warnings) > 0)::int AS warnings`),
    )
    .first()) as { rows: number; invalid: number; warnings: number };
  return { rows: Number(r.rows), invalid: Number(r.invalid), warnings: Number(r.warnings) };
}
