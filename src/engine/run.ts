import { withRetry } from '../alliance/retry.js';
import { formatRupeesIndian, type Paise } from '../money.js';
import { getBatch, markFinished, markStarted } from '../db/batches.js';
import { claimReady, claimStale, leaseOwners, moveAll, sumAmounts, type Claimed } from '../db/rows.js';
import path from 'node:path';
import { reportBaseName, summarize, writeReports, type ReportPaths } from '../report/report.js';
import { Runner, type EngineDeps, type EngineOptions } from './context.js';
import { CrashError } from './crash.js';
import { ingestFile, type IngestResult } from './ingest.js';
import { pollUntilFinal } from './poll.js';
import { ApiUnavailableError, ownerIsDead, processRow } from './submit.js';

export const EXIT = {
  ok: 0,
  unpaidRows: 1,
  usage: 2,
  refused: 3,
  pendingAtTimeout: 4,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

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

export class BatchNotFoundError extends Error {
  override name = 'BatchNotFoundError';
}

/** Options that cannot work together: exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * One batch, end to end: read the file (if given), check the balance, send every ready row once through the
 * rate-limited queue, resolve anything left unknown by an earlier run, poll until final, write the report.
 * Running it again on the same batch finishes the work and pays nobody twice.
 */
export async function runBatch(opts: RunOptions, deps: EngineDeps): Promise<RunResult> {
  const { db, logger } = deps;
  const runner = new Runner(deps, opts);
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

  // Rows skipped by an earlier refusal are reconsidered now.
  await moveAll(db, opts.batch, 'skipped', 'ready', null);
  const pf = await preflight(runner, opts);
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
  try {
    await submitAll(runner, opts.batch, opts.stopSignal, emit);
  } catch (err) {
    if (err instanceof ApiUnavailableError) stoppedEarly = `the API stayed unavailable: ${err.message}`;
    else throw err;
  }

  let stillPending = 0;
  if (!stoppedEarly && !opts.stopSignal?.aborted) {
    const deadline = Date.now() + (opts.pollTimeoutMs ?? 600_000);
    stillPending = await pollUntilFinal(runner, opts.batch, deadline, opts.stopSignal);
  }
  const c = (await summarize(db, opts.batch)).counts;
  const unfinished = c.pending + (stoppedEarly || opts.stopSignal?.aborted ? c.skipped : 0);
  // Finished first, so the report written next records when.
  if (unfinished === 0) await markFinished(db, opts.batch);
  const report = await writeReports(db, opts.batch, reportDir);
  const unpaid = c.invalid + c.rejected + c.failed + c.needs_review;
  let exitCode: ExitCode;
  let message: string;
  if (unfinished > 0) {
    exitCode = EXIT.pendingAtTimeout;
    const why = stoppedEarly ?? (opts.stopSignal?.aborted ? 'stopped on request' : 'poll timeout reached');
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
  const due = await sumAmounts(runner.db, opts.batch, ['ready', 'submitting']);
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
  const start = (row: Claimed, mode: 'fresh' | 'recover') => {
    const p: Promise<void> = processRow(runner, row, mode)
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

  const dead = (await leaseOwners(db, batch)).filter(ownerIsDead);
  for (;;) {
    const rows = await claimStale(db, batch, owner, options.leaseMs, target, dead);
    if (rows.length === 0) break;
    emit({ type: 'recovering', rows: rows.length });
    for (const r of rows) start(r, 'recover');
    await Promise.all([...active]);
    if (fatal !== undefined) throw fatal;
  }

  for (;;) {
    if (fatal !== undefined || stop?.aborted) break;
    const room = target - active.size;
    if (room > 0) {
      const rows = await claimReady(db, batch, owner, options.leaseMs, room);
      for (const r of rows) start(r, 'fresh');
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
