import { BatchNotFoundError, EXIT, RefusedError, UsageError, type ExitCode } from '../errors.js';
import { withRetry } from '../alliance/retry.js';
import { AllianceError, AuthenticationError } from '../alliance/errors.js';
import { formatRupeesIndian, type Paise } from '../money.js';
import { getBatch, markFinished, markStarted } from '../db/batches.js';
import { claimReady, claimStale, countByState, leaseOwners, moveAll, sumAmounts, type Claimed } from '../db/rows.js';
import path from 'node:path';
import { reportBaseName, summarize, writeReports, type ReportPaths } from '../report/report.js';
import { Runner, type EngineDeps, type EngineOptions } from './context.js';
import { CrashError } from './crash.js';
import { ingestFile, type IngestResult } from './ingest.js';
import { pollUntilFinal } from './poll.js';
import { ApiUnavailableError, processRow } from './submit.js';
import { ownerIsDead } from './owner.js';


export interface RunOptions extends Partial<EngineOptions> {
  batch: string;
  /** Read this CSV into the batch first (run). Absent: carry on with what is stored (resume). */
  csvPath?: string | undefined;
  defaultUserId?: string | undefined;
  /** Stop polling after this long; rows still pending make exit 4. Default 600000 (10 min). */
  pollTimeoutMs?: number;
  /** An estimate of the API's charge per payout, added in the balance preflight. Default 0. */
  feePerPayoutPaise?: Paise;
  /** Stop after validation and the balance preflight. */
  dryRun?: boolean;
  /**
   * Merge a different file into a batch that has already sent payouts (a corrected copy). Without it,
   * such a run is refused: a new payroll under an old batch name would otherwise be taken for a copy.
   */
  revise?: boolean;
  /** Put rows the API refused (failed) back to send again, status first. */
  retryFailed?: boolean;
  /** Put rows an operator has checked (needs_review) back to send again, status first. */
  retryReview?: boolean;
  /** Where <batch>.csv and <batch>.json go. Default ./reports. */
  reportDir?: string;
  /** A graceful stop (Ctrl-C): no new sends, in-flight ones finish, the report is written. */
  stopSignal?: AbortSignal | undefined;
  /**
   * Asked after the preflight and before the first send, when a person is watching. False refuses the
   * run (exit 3) with nothing sent.
   */
  confirm?: (pf: Preflight) => Promise<boolean>;
  /** Progress callback for a person watching; the engine never prints. */
  onEvent?: (e: RunEvent) => void;
}

export type RunEvent =
  | { type: 'ingested'; ingest: IngestResult }
  | { type: 'preflight'; toSend: number; needPaise: Paise; balancePaise: Paise }
  | { type: 'recovering'; rows: number }
  | { type: 'submitted'; done: number }
  | { type: 'polling'; pending: number };

export interface Preflight {
  toSend: number;
  amountPaise: Paise;
  feesPaise: Paise;
  needPaise: Paise;
  balancePaise: Paise | null;
  shortfallPaise: Paise;
}

export interface RunResult {
  batch: string;
  exitCode: ExitCode;
  /** One line a person can act on. */
  message: string;
  ingest?: IngestResult;
  preflight?: Preflight;
  stillPending: number;
  report?: ReportPaths;
}


/**
 * One batch, end to end: read the file (if given), check the balance, send every ready row once through the
 * rate-limited queue, resolve anything left unknown by an earlier run, poll until final, write the report.
 * Running it again on the same batch finishes the work and pays nobody twice.
 */
export async function runBatch(opts: RunOptions, deps: EngineDeps): Promise<RunResult> {
  const { db, logger } = deps;
  let runner: Runner;
  try {
    runner = new Runner(deps, opts);
  } catch (err) {
    throw err instanceof RangeError ? new UsageError(err.message) : err;
  }
  const reportDir = opts.reportDir ?? 'reports';
  const emit = opts.onEvent ?? (() => {});
  let ingest: IngestResult | undefined;

  if (opts.csvPath && path.resolve(opts.csvPath) === path.resolve(reportDir, `${reportBaseName(opts.batch)}.csv`)) {
    throw new UsageError(
      `the report ${path.join(reportDir, reportBaseName(opts.batch))}.csv would overwrite the input file: pass another --report-dir or --batch`,
    );
  }
  if (opts.csvPath) {
    ingest = await ingestFile(db, {
      batch: opts.batch,
      csvPath: opts.csvPath,
      defaultUserId: opts.defaultUserId,
      logger,
      onRevision: async (sent) => {
        if (opts.dryRun) {
          throw new UsageError(
            `batch "${opts.batch}" was read from another file; a dry run changes nothing stored: check the new file with \`payouts validate\``,
          );
        }
        if (sent > 0 && !opts.revise) {
          throw new RefusedError(
            `batch "${opts.batch}" was read from a different file and has already sent ${sent} payouts. ` +
              `For a new payroll use a new --batch name; to merge a corrected copy of this one (rows already paid are not paid again), pass --revise`,
          );
        }
      },
    });
    emit({ type: 'ingested', ingest });
  }
  const stored = await getBatch(db, opts.batch);
  if (!stored) {
    throw new BatchNotFoundError(`no batch named "${opts.batch}": start it with \`payouts run <csv> --batch ${opts.batch}\``);
  }
  if (!stored.ingest_complete) {
    // A file that failed part-way (or a crash while reading it): nothing of it may be sent.
    throw new UsageError(
      `batch "${opts.batch}" was not completely read from ${stored.source_file}: run \`payouts run <csv> --batch ${opts.batch}\` again with a readable file`,
    );
  }

  // Rows skipped by an earlier refusal are reconsidered now; failed or reviewed ones when asked. A row
  // that was claimed before is always asked about (status) before it is sent again.
  await moveAll(db, opts.batch, 'skipped', 'ready', null);
  if (opts.retryFailed && !opts.dryRun) await moveAll(db, opts.batch, 'failed', 'ready', null);
  if (opts.retryReview && !opts.dryRun) await moveAll(db, opts.batch, 'needs_review', 'ready', null);
  let pf: Preflight;
  try {
    pf = await preflight(runner, opts);
  } catch (err) {
    if (!(err instanceof AllianceError) || err instanceof AuthenticationError) throw err;
    const report = await writeReports(db, opts.batch, reportDir);
    return {
      batch: opts.batch,
      ...(ingest ? { ingest } : {}),
      exitCode: EXIT.unfinished,
      message: `nothing sent: the balance check failed (${err.message}); run \`payouts resume ${opts.batch}\` when the API answers`,
      stillPending: 0,
      report,
    };
  }
  emit({ type: 'preflight', toSend: pf.toSend, needPaise: pf.needPaise, balancePaise: pf.balancePaise ?? 0n });
  const base = { batch: opts.batch, ...(ingest ? { ingest } : {}), preflight: pf };

  if (pf.shortfallPaise > 0n) {
    const note = `not sent: the wallet balance ${formatRupeesIndian(pf.balancePaise ?? 0n)} is short of ${formatRupeesIndian(pf.needPaise)} by ${formatRupeesIndian(pf.shortfallPaise)}`;
    if (!opts.dryRun) await moveAll(db, opts.batch, 'ready', 'skipped', note);
    const report = await writeReports(db, opts.batch, reportDir);
    return { ...base, exitCode: EXIT.refused, message: `refused before sending anything: ${note}`, stillPending: 0, report };
  }
  if (opts.dryRun) {
    const report = await writeReports(db, opts.batch, reportDir);
    const invalid = report.summary.counts.invalid;
    return {
      ...base,
      exitCode: invalid > 0 ? EXIT.unpaidRows : EXIT.ok,
      message: `dry run: ${pf.toSend} payouts of ${formatRupeesIndian(pf.amountPaise)} would be sent; ${invalid} invalid rows; balance ${formatRupeesIndian(pf.balancePaise ?? 0n)}`,
      stillPending: 0,
      report,
    };
  }

  if (pf.toSend > 0 && opts.confirm && !(await opts.confirm(pf))) {
    const report = await writeReports(db, opts.batch, reportDir);
    return { ...base, exitCode: EXIT.refused, message: 'not confirmed: nothing sent', stillPending: 0, report };
  }

  await markStarted(db, opts.batch);
  let stoppedEarly: string | undefined;
  let authFailure: AuthenticationError | undefined;
  try {
    await submitAll(runner, opts.batch, opts.stopSignal, emit);
  } catch (err) {
    if (err instanceof ApiUnavailableError) stoppedEarly = `the API stayed unavailable: ${err.message}`;
    else if (err instanceof AuthenticationError) {
      authFailure = err;
      stoppedEarly = `the API stopped accepting our credentials: ${err.message}`;
    } else throw err;
  }

  let stillPending = 0;
  if (!stoppedEarly && !opts.stopSignal?.aborted) {
    const deadline = Date.now() + (opts.pollTimeoutMs ?? 600_000);
    stillPending = await pollUntilFinal(runner, opts.batch, deadline, opts.stopSignal);
  }
  const c = (await summarize(db, opts.batch)).counts;
  // Skipped rows (another runner's refusal, say) are work still to do, never "paid".
  const unfinished = c.pending + c.sending + c.not_sent;
  // Finished first, so the report written next records when.
  if (unfinished === 0) await markFinished(db, opts.batch);
  const report = await writeReports(db, opts.batch, reportDir);
  const unpaid = c.invalid + c.rejected + c.failed + c.needs_review + c.cancelled;
  let exitCode: ExitCode;
  let message: string;
  if (authFailure) {
    exitCode = EXIT.usage;
    message = `${stoppedEarly}; ${unfinished} rows not final yet: fix the credentials, then \`payouts resume ${opts.batch}\``;
  } else if (unfinished > 0) {
    exitCode = EXIT.unfinished;
    const states = await countByState(db, opts.batch);
    const why =
      stoppedEarly ??
      (opts.stopSignal?.aborted
        ? 'stopped on request'
        : states.submitting
          ? `${states.submitting} payouts have an outcome not yet known (status unavailable or another runner holds them)`
          : 'poll timeout reached');
    message = `${why}: ${unfinished} rows not final yet; run \`payouts resume ${opts.batch}\` to carry on`;
  } else if (unpaid > 0) {
    exitCode = EXIT.unpaidRows;
    message = `finished: ${c.approved} paid, ${unpaid} not paid (${c.invalid} invalid, ${c.rejected} rejected, ${c.failed} failed, ${c.needs_review} need review)`;
  } else {
    exitCode = EXIT.ok;
    message = `finished: all ${c.approved} rows paid`;
  }
  return { ...base, exitCode, message, stillPending, report };
}

/** Balance check before anything is sent: rows still to send plus the fee estimate against the wallet. */
async function preflight(runner: Runner, opts: RunOptions): Promise<Preflight> {
  // Rows already submitting were most likely debited already; counting them could refuse the very run
  // that would resolve them.
  const due = await sumAmounts(runner.db, opts.batch, ['ready']);
  const fees = (opts.feePerPayoutPaise ?? 0n) * BigInt(due.count);
  const need = due.paise + fees;
  if (due.count === 0) {
    return { toSend: 0, amountPaise: 0n, feesPaise: 0n, needPaise: 0n, balancePaise: null, shortfallPaise: 0n };
  }
  const bal = await withRetry(() => runner.api(() => runner.client.balance({ signal: runner.signal })), runner.options.retry);
  const shortfall = need > bal.balancePaise ? need - bal.balancePaise : 0n;
  return {
    toSend: due.count,
    amountPaise: due.paise,
    feesPaise: fees,
    needPaise: need,
    balancePaise: bal.balancePaise,
    shortfallPaise: shortfall,
  };
}

/**
 * Recovers rows other runners left unresolved, then claims ready rows a few at a time and sends them,
 * keeping about twice the concurrency in hand so the queue never idles. Several runners on one batch
 * (PostgreSQL) share the work through the claims; each row goes to exactly one of them.
 */
async function submitAll(
  runner: Runner,
  batch: string,
  stop: AbortSignal | undefined,
  emit: (e: RunEvent) => void,
): Promise<void> {
  const { db, options, owner } = runner;
  const target = Math.max(2, options.concurrency * 2);
  const active = new Set<Promise<void>>();
  let fatal: unknown;
  let done = 0;
  const start = (row: Claimed, mode: 'fresh' | 'recover', claimStartedAt: number) => {
    const p: Promise<void> = processRow(runner, row, mode, claimStartedAt)
      .catch((err: unknown) => {
        if (fatal === undefined) fatal = err;
        // A crash kills everything at once; an auth or availability failure lets the others finish.
        if (err instanceof CrashError) runner.kill(err);
      })
      .finally(() => {
        active.delete(p);
        done++;
        if (done % 50 === 0) emit({ type: 'submitted', done });
      });
    active.add(p);
  };

  // Rows others left unresolved: each is tried once per run (one it cannot resolve now is not retaken
  // in a loop), status first.
  const dead = (await leaseOwners(db, batch)).filter(ownerIsDead);
  const tried: string[] = [];
  for (;;) {
    if (fatal !== undefined || stop?.aborted) break;
    const t = Date.now();
    const rows = await claimStale(db, batch, owner, options.leaseMs, target, dead, tried);
    if (rows.length === 0) break;
    emit({ type: 'recovering', rows: rows.length });
    for (const r of rows) {
      tried.push(r.id);
      start(r, 'recover', t);
    }
    await Promise.all([...active]);
  }

  for (;;) {
    if (fatal !== undefined || stop?.aborted) break;
    // Refill in chunks once half the rows in hand are done: one claim statement per several payouts.
    const room = active.size <= target / 2 ? target - active.size : 0;
    if (room > 0) {
      const t = Date.now();
      const rows = await claimReady(db, batch, owner, options.leaseMs, room);
      // A row claimed before (failed and retried, or put back) may exist at the API: status first.
      for (const r of rows) start(r, r.prev_first_claimed_at ? 'recover' : 'fresh', t);
      if (rows.length === 0) {
        if (active.size === 0) break;
        await Promise.race(active);
      }
    } else {
      await Promise.race(active);
    }
  }
  await Promise.all([...active]);
  if (fatal !== undefined) throw fatal;
}
