import path from 'node:path';
import { getBatch } from '../db/batches.js';
import { approvalSubject, approveBatch, cancelBatch } from '../engine/decisions.js';
import { BatchNotFoundError, EXIT, RefusedError } from '../errors.js';
import { formatRupeesIndian } from '../money.js';
import { summarize } from '../report/report.js';
import { apiTarget, isYes } from '../cli/confirm.js';
import { Progress, snapshotPath } from '../cli/progress.js';
import { paiseOf, statusLines, summaryJson, unfinishedLines } from '../cli/summary.js';
import { actorOf, clientOf, dataDirOf, loggerOf, note, printJson, withDb, type CommandIO } from './context.js';
import { DEFAULT_TIME_ZONE, localTime } from '../report/time.js';

/**
 * `payouts approve <batch>`: the yes a person gives without a terminal run, e.g. one who reviewed the
 * batch (`payouts run --dry-run`, `payouts status`) before a scheduled run pays it. Also lifts a decline
 * given at a prompt. It names what it approves (revision, file, sha256, totals) and holds for that revision
 * only: a corrected copy read later needs its own. Once a batch has been corrected, the revision checked
 * must be named (--revision), or confirmed at a terminal after seeing it.
 */
export async function approveCommand(io: CommandIO, o: { batch: string; note?: string | undefined; revision?: number | undefined; as?: string | undefined }): Promise<number> {
  return withDb(io, async (db) => {
    const rec = await getBatch(db.knex, o.batch);
    if (!rec) throw new BatchNotFoundError(`no batch named "${o.batch}" in this database: \`payouts status\` lists them`);
    const subject = await approvalSubject({ db: db.knex }, o.batch);
    let revision = o.revision;
    if (revision === undefined && subject.revisions > 1 && io.ask && !io.json) {
      note(io, `Batch ${o.batch} was corrected; its current revision is ${subject.revision}:`);
      note(io, `  file ${subject.sourceFile} (sha256 ${subject.sha256.slice(0, 12)}…)${subject.readAt ? `, read ${localTime(subject.readAt, DEFAULT_TIME_ZONE)}` : ''}`);
      note(io, `  ${subject.rows} payouts of ${formatRupeesIndian(subject.totalPaise)} not sent yet`);
      if (!isYes(await io.ask(`Approve revision ${subject.revision} of ${o.batch}? Type y to approve, anything else does not: `))) {
        throw new RefusedError(`not approved: batch ${o.batch} revision ${subject.revision} stays unapproved`);
      }
      revision = subject.revision;
    }
    const actor = await actorOf(io, db, o.as);
    const by = actor.name;
    await approveBatch({ db: db.knex }, o.batch, { note: `approved with \`payouts approve\` by ${by}${o.note ? `: ${o.note}` : ''}`, by, from: 'cli', revision, actor });
    if (io.json) {
      printJson(io, {
        batch: o.batch,
        revision: subject.revision,
        file_sha256: subject.sha256,
        decision: 'approved',
        was: rec.decision,
        to_send: subject.rows,
        amountPaise: subject.totalPaise,
      });
    } else {
      io.out(
        `Batch ${o.batch} revision ${subject.revision} (${path.basename(subject.sourceFile)}, sha256 ${subject.sha256.slice(0, 12)}…) approved${rec.decision === 'declined' ? ' (it had been declined at a prompt)' : ''}: ` +
          `${subject.rows} payouts of ${formatRupeesIndian(subject.totalPaise)} not sent yet.`,
      );
      io.out(`The next \`payouts resume ${o.batch} --yes\` (or a scheduled run) pays them. A corrected copy read later needs a new approval.`);
    }
    return EXIT.ok;
  });
}

export interface CancelCommandOptions {
  batch: string;
  yes?: boolean | undefined;
  reportDir?: string | undefined;
  rate?: number | undefined;
  pollTimeoutMs?: number | undefined;
  /** Who cancels (--as), for the audit. */
  as?: string | undefined;
}

/**
 * `payouts cancel <batch>`: stops a batch for good. Rows never sent become `cancelled`; rows that may be at
 * the API are asked about (never abandoned) and pending payouts are followed to their end. Asks first at a
 * terminal; without one it needs --yes. Exit 0 once nothing of the batch is in flight, 4 while something is.
 */
export async function cancelCommand(io: CommandIO, o: CancelCommandOptions): Promise<number> {
  const logger = loggerOf(io);
  const client = clientOf(io, logger);
  try {
    return await withDb(io, async (db) => {
      const rec = await getBatch(db.knex, o.batch);
      if (!rec) throw new BatchNotFoundError(`no batch named "${o.batch}" in this database: \`payouts status\` lists them`);
      if (rec.cancelled_at && !io.json) io.out(`Batch ${o.batch} was already cancelled on ${localTime(rec.cancelled_at, DEFAULT_TIME_ZONE)}; resolving anything still in flight.`);
      if (!rec.cancelled_at && !o.yes) {
        const before = await summarize(db.knex, o.batch);
        if (!io.ask) {
          throw new RefusedError(`no terminal to confirm cancelling batch "${o.batch}" (${before.counts.not_sent} rows not sent would never be sent): pass --yes; nothing changed`);
        }
        note(io, `Cancel batch "${o.batch}" for good (${apiTarget(io.config.api.baseUrl ?? '').label})?`);
        for (const l of statusLines(before)) note(io, l);
        note(io, `  ${before.counts.not_sent} rows not sent (${formatRupeesIndian(paiseOf(before, 'not_sent'))}) would never be sent; rows already sent are followed to their end.`);
        let yes = false;
        try {
          yes = isYes(await io.ask(`Cancel batch ${o.batch}? Type y to cancel, anything else keeps it: `));
        } catch {
          yes = false;
        }
        if (!yes) throw new RefusedError(`not cancelled: batch "${o.batch}" is unchanged`);
      }
      const progress = io.screen
        ? new Progress({
            screen: io.screen,
            batch: o.batch,
            command: 'cancel',
            refresh: () => summarize(db.knex, o.batch),
            snapshotFile: db.kind === 'pglite' ? snapshotPath(dataDirOf(io), o.batch) : undefined,
            plainEveryMs: io.progressEveryMs,
          })
        : undefined;
      progress?.start();
      let res: Awaited<ReturnType<typeof cancelBatch>>;
      try {
        res = await cancelBatch(
          {
            batch: o.batch,
            reportDir: path.resolve(io.cwd, o.reportDir ?? 'reports'),
            stopSignal: io.stopSignal,
            requestTimeoutMs: io.config.api.timeoutMs,
            ...(o.rate !== undefined ? { rate: o.rate } : {}),
            ...(o.pollTimeoutMs !== undefined ? { pollTimeoutMs: o.pollTimeoutMs } : {}),
            onEvent: (e) => progress?.event(e),
            actor: await actorOf(io, db, o.as),
          },
          { db: db.knex, client, logger },
        );
      } catch (err) {
        await progress?.stop({ exitCode: -1, message: (err as Error).message });
        throw err;
      }
      const summary = res.report?.summary ?? (await summarize(db.knex, o.batch));
      const open = summary.counts.sending + summary.counts.pending + summary.counts.not_sent;
      // Cancelled rows are the point of this command, not "rows not paid": done means nothing in flight.
      const code = res.exitCode === EXIT.unpaidRows || res.exitCode === EXIT.ok ? (open > 0 ? EXIT.unfinished : EXIT.ok) : res.exitCode;
      const message =
        code === EXIT.ok
          ? `batch ${o.batch} cancelled: ${res.cancelledNow} rows will never be sent; nothing is in flight`
          : code === EXIT.unfinished
            ? `batch ${o.batch} cancelled: ${res.cancelledNow} rows will never be sent; ${open} sent rows are not final yet: \`payouts cancel ${o.batch}\` again (or \`payouts resume ${o.batch}\`) follows them`
            : res.message;
      await progress?.stop({ exitCode: code, message, statuses: summary });
      if (io.json) {
        printJson(io, { batch: o.batch, exit_code: code, message, ...(code >= 2 ? { error: { code, message } } : {}), cancelled_now: res.cancelledNow, summary: summaryJson(summary), report: res.report ? { csv: res.report.csv, json: res.report.json } : undefined });
      } else {
        io.out(`Batch ${o.batch}:`);
        for (const l of statusLines(summary)) io.out(l);
        for (const l of unfinishedLines(summary, o.batch)) io.out(l);
        if (code >= 2) note(io, `payouts: ${message}`, 'error');
        else io.out(message);
        if (res.report) io.out(`Report: ${res.report.csv} and ${res.report.json}`);
      }
      return code;
    });
  } finally {
    await client.close();
  }
}
