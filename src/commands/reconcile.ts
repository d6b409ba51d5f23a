import { getBatch } from '../db/batches.js';
import { rowsOfBatch } from '../db/rows.js';
import { reconcileBatch } from '../engine/reconcile.js';
import { BatchNotFoundError } from '../errors.js';
import { summarize } from '../report/report.js';
import { Progress, snapshotPath } from '../cli/progress.js';
import { clientOf, dataDirOf, loggerOf, printJson, withDb, type CommandIO } from './context.js';

export interface ReconcileCommandOptions {
  batch: string;
  reviewAfterMs: number;
  dryRun: boolean;
  rate?: number | undefined;
}

/**
 * `payouts reconcile <batch>`: every row against the API's status; safe repairs made, unresolved rows past
 * the review age moved to needs_review and listed for an operator. Exit 1 when anything needs a person.
 */
export async function reconcileCommand(io: CommandIO, o: ReconcileCommandOptions): Promise<number> {
  const logger = loggerOf(io);
  const client = clientOf(io, logger);
  try {
    return await withDb(io, async (db) => {
      if (!(await getBatch(db.knex, o.batch))) throw new BatchNotFoundError(`no batch named "${o.batch}": \`payouts status\` lists them`);
      const progress = io.screen
        ? new Progress({
            screen: io.screen,
            batch: o.batch,
            command: 'reconcile',
            refresh: () => summarize(db.knex, o.batch),
            snapshotFile: db.kind === 'pglite' && !o.dryRun ? snapshotPath(dataDirOf(io), o.batch) : undefined,
            plainEveryMs: io.progressEveryMs,
          })
        : undefined;
      if (progress) {
        const before = await summarize(db.knex, o.batch);
        progress.state.statuses = before;
        progress.start();
        progress.setPhase('reconcile', before.rows - before.counts.invalid - before.counts.cancelled);
      }
      let res: Awaited<ReturnType<typeof reconcileBatch>>;
      try {
        res = await reconcileBatch(
          {
            batch: o.batch,
            reviewAfterMs: o.reviewAfterMs,
            dryRun: o.dryRun,
            requestTimeoutMs: io.config.api.timeoutMs,
            stopSignal: io.stopSignal,
            ...(o.rate ? { rate: o.rate } : {}),
          },
          { db: db.knex, client, logger, onEvent: (e) => progress?.event(e) },
        );
      } catch (err) {
        await progress?.stop({ exitCode: -1, message: (err as Error).message });
        throw err;
      }
      await progress?.stop({ exitCode: 0, message: `${res.checked} rows checked`, statuses: await summarize(db.knex, o.batch) });
      const review = await rowsOfBatch(db.knex, o.batch, ['needs_review']);
      if (io.json) {
        printJson(io, { ...res, needs_review: review.map((r) => ({ row: r.row_no, order_id: r.order_id, reason: r.last_error })) });
      } else {
        io.out(`Batch ${o.batch}: ${res.checked} rows checked against the API, ${res.agreed} agree`);
        for (const f of res.findings) {
          io.out(`  row ${f.row} ${f.orderId}: ours ${f.ours}, API ${f.api} -> ${f.action}${f.note ? ` (${f.note})` : ''}`);
        }
        if (review.length) {
          io.out(`${review.length} rows need an operator (needs_review):`);
          for (const r of review) io.out(`  row ${r.row_no} ${r.order_id}: ${r.last_error ?? ''}`);
        }
      }
      const flagged = res.findings.some((f) => f.action === 'flagged' || f.action === 'none');
      return review.length > 0 || flagged ? 1 : 0;
    });
  } finally {
    await client.close();
  }
}
