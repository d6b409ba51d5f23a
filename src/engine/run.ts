import { AllianceError, AuthenticationError } from '../alliance/errors.js';
import { BatchNotFoundError, EXIT, NoAnswerError, UsageError, type ExitCode } from '../errors.js';
import { formatRupeesIndian, type Paise } from '../money.js';
import { getBatch, isApproved, markFinished, markStarted, recordDecision, type BatchRecord } from '../db/batches.js';
import { heldByOthers } from '../db/claims.js';
import { countByState, fileRowTotals } from '../db/rows.js';
import { approvalState, audit, type Actor } from './access.js';
import { applyMove } from '../db/moves.js';
import { MOVES } from './machine.js';
import { writeReports, type ReportPaths } from '../report/report.js';
import { DEFAULT_TIME_ZONE, localTime } from '../report/time.js';
import { REPORT_STATUSES, reportStatus, type ReportStatus } from '../states.js';
import { Runner, type EngineDeps, type EngineOptions } from './context.js';
import { decideExit } from './exit.js';
import type { Preflight, RunEvent } from './events.js';
import { ingestFile, type IngestResult } from './ingest.js';
import { checkLocalTargets } from './local.js';
import { pollLoop } from './poll.js';
import { preflight } from './preflight.js';
import { sendAll } from './send.js';
import { StopSending } from './submit.js';
import { payoutHintHandler } from './hints.js';
import { payinHintHandler } from './payins.js';
import { startWebhookReceiver, type ReceiverStats, type WebhookReceiver } from '../webhooks/receiver.js';

export type { Preflight, RunEvent } from './events.js';

export interface RunOptions extends Partial<EngineOptions> {
  batch: string;
  /** Read this CSV into the batch first (run). Absent: carry on with what is stored (resume). */
  csvPath?: string | undefined;
  defaultUserId?: string | undefined;
  /** Stop polling this long after the last send; rows still pending make exit 4. Default 600000 (10 min). */
  pollTimeoutMs?: number;
  /** An estimate of the API's charge per payout, added in the balance preflight. Default 0. */
  feePerPayoutPaise?: Paise;
  /** Validation, the merge plan and the balance check; nothing is stored and nothing is sent. */
  dryRun?: boolean;
  /** Merge a different file into a batch that has sent payouts (a corrected copy, matched by payee). */
  revise?: boolean;
  /** Lines of a corrected copy (its row numbers) whose changed amount or account is paid in addition. */
  acceptChanges?: number[];
  /** Control totals: refuse a file whose row count or total differs (every data row, valid or not). */
  expectRows?: number | undefined;
  expectTotalPaise?: Paise | undefined;
  /** Accept a last line with no line break (normally held back: a file still being written looks like that). */
  acceptUnterminated?: boolean | undefined;
  /** For a workbook (.xlsx): the sheet to read (--sheet). Default: the first tab. */
  sheet?: string | undefined;
  /** Run a file another batch already ran (same sha256). Default false: refused. */
  allowDuplicateFile?: boolean | undefined;
  /** Days back to look for the same account paid the same amount by another batch (warnings). Default 30. */
  repeatWindowDays?: number | undefined;
  /** Put rows the API refused (failed) back to send again, status first; resets their send count. */
  retryFailed?: boolean;
  /** Put rows an operator has checked (needs_review) back to send again, status first; resets their send count. */
  retryReview?: boolean;
  /** Where the report files go. Default ./reports. */
  reportDir?: string;
  /** Time zone of the times in the reports. Default Asia/Kolkata. */
  reportTimeZone?: string | undefined;
  /** A graceful stop (Ctrl-C, SIGTERM): no new sends, in-flight ones finish, the report is written. */
  stopSignal?: AbortSignal | undefined;
  /** An explicit yes given up front (--yes): no question. A batch declined at a prompt still needs one typed. */
  yes?: boolean;
  /**
   * A person at a terminal: asked after the preflight and before the first send. False (or a throw, e.g.
   * Ctrl-C at the prompt) declines: recorded, and no later run sends until someone confirms.
   */
  confirm?: ((pf: Preflight, batch: BatchRecord, ingest: IngestResult | undefined) => Promise<boolean>) | undefined;
  /**
   * A last check right before the first send, given the batch as stored: a reason not to send (the inbox's
   * "the file changed since it was claimed") holds the batch back, nothing sent, exit 2; undefined goes on.
   */
  beforeSend?: ((batch: BatchRecord) => Promise<string | undefined>) | undefined;
  /** Who runs it (the audit; the uploader of a new batch). Default: an unnamed CLI user. */
  actor?: Actor | undefined;
  /** Progress for a person watching; the engine never prints. */
  onEvent?: (e: RunEvent) => void;
  /** Clock for a new batch's identity (its month); tests only. */
  now?: () => Date;
  /**
   * Receive Alliance's webhooks while the batch runs: each payout hint schedules one status check (never
   * trusted itself), so results arrive without blind polling; polling stays as the fallback.
   */
  webhooks?: WebhookListenOptions | undefined;
}

export interface WebhookListenOptions {
  port: number;
  host?: string | undefined;
  /** The secret path segment (at least 16 URL-safe characters). */
  token: string;
  allowIps?: string[] | undefined;
  /** The receiver's bounds (webhooks/receiver.ts); defaults 30 s idle, 256 connections, 1,000 hints waiting per kind. */
  idleTimeoutMs?: number | undefined;
  maxConnections?: number | undefined;
  maxQueuedHints?: number | undefined;
  /** Called once listening, with the URL to give Alliance. */
  onListening?: (url: string) => void;
  /** Called once the receiver has closed, with what it received, looked up and shed. */
  onClosed?: (stats: ReceiverStats) => void;
}

export interface RunResult {
  batch: string;
  exitCode: ExitCode;
  /** One line a person can act on. */
  message: string;
  ingest?: IngestResult;
  preflight?: Preflight;
  counts?: Record<ReportStatus, number>;
  report?: ReportPaths;
  dryRun: boolean;
  /** Refused because the approval policy is not met yet: paid once checkers approve (the inbox keeps the file). */
  awaitingApproval?: boolean;
}

/**
 * One batch, end to end, as named phases: check what can fail locally, read the file (if given), check the
 * balance, get an explicit yes, send every ready row once while polling what was sent, resolve anything an
 * earlier run left unknown, write the report, decide the exit. Running it again on the same batch finishes
 * the work and pays nobody twice.
 */
export async function runBatch(opts: RunOptions, deps: EngineDeps): Promise<RunResult> {
  const { db } = deps;
  let collisions = 0;
  const emit = (e: RunEvent) => {
    if (e.type === 'row' && e.collision) collisions++;
    opts.onEvent?.(e);
  };
  let runner: Runner;
  try {
    runner = new Runner({ ...deps, onEvent: emit }, opts);
  } catch (err) {
    throw err instanceof RangeError ? new UsageError(err.message) : err;
  }
  const reportDir = opts.reportDir ?? 'reports';
  const dryRun = opts.dryRun ?? false;
  // Everything that can fail on this machine fails now, before any payout.
  await checkLocalTargets({ reportDir, batch: opts.batch, csvPath: opts.csvPath, write: !dryRun });

  let ingest: IngestResult | undefined;
  if (opts.csvPath) {
    emit({ type: 'phase', phase: 'ingest' });
    ingest = await ingestFile(db, {
      batch: opts.batch,
      csvPath: opts.csvPath,
      defaultUserId: opts.defaultUserId,
      revise: opts.revise ?? false,
      acceptChanges: opts.acceptChanges ?? [],
      dryRun,
      uploadedBy: actorOf(opts).name,
      expectRows: opts.expectRows,
      expectTotalPaise: opts.expectTotalPaise,
      acceptUnterminated: opts.acceptUnterminated,
      ...(opts.sheet !== undefined ? { sheet: opts.sheet } : {}),
      allowDuplicateFile: opts.allowDuplicateFile ?? false,
      ...(opts.repeatWindowDays !== undefined ? { repeatWindowDays: opts.repeatWindowDays } : {}),
      logger: deps.logger,
      ...(opts.now ? { now: opts.now } : {}),
      onProgress: (rows) => emit({ type: 'ingest_progress', rows }),
    });
    emit({ type: 'ingested', ingest });
    if (!dryRun && ingest.kind !== 'unchanged') {
      await audit(db, actorOf(opts), ingest.kind === 'new' ? 'upload' : 'revise', {
        batch: opts.batch,
        revision: ingest.revision,
        detail: { file: opts.csvPath, rows: ingest.rows, invalid: ingest.invalid, valid_total_paise: ingest.validTotalPaise.toString() },
      });
    }
  }
  const base = { batch: opts.batch, ...(ingest ? { ingest } : {}), dryRun };

  if (dryRun) {
    emit({ type: 'phase', phase: 'preflight' });
    const stored = ingest ? undefined : await getBatch(db, opts.batch);
    if (!ingest && !stored) throw notFound(opts.batch);
    const pf = await preflight(runner, opts, ingest?.ready);
    emit({ type: 'preflight', preflight: pf });
    return { ...base, preflight: pf, ...dryRunVerdict(pf, ingest) };
  }

  const batch = await getBatch(db, opts.batch);
  if (!batch) throw notFound(opts.batch);
  if (!batch.ingest_complete) {
    throw new UsageError(`batch "${opts.batch}" was not completely read from ${batch.source_file}: run \`payouts run <csv> --batch ${opts.batch}\` again with a readable file`);
  }
  const cancelled = batch.cancelled_at !== null;
  runner.mayInitiate = !cancelled;

  // Rows skipped by an earlier refusal are reconsidered now; failed or reviewed ones when asked. A cancelled
  // batch sends nothing new, but a skipped row of it that may have been sent is asked about.
  if (!cancelled) {
    await applyMove(db, MOVES.reconsider_skipped, { batch: opts.batch }, { state: 'ready', last_error: null });
    const back = (from: string) => ({ state: 'ready' as const, send_count: 0, finalized_at: null, last_error: `put back by an operator (was ${from})` });
    if (opts.retryFailed) await applyMove(db, MOVES.retry_failed, { batch: opts.batch }, back('failed'));
    if (opts.retryReview) await applyMove(db, MOVES.retry_review, { batch: opts.batch }, back('needs_review'));
  } else {
    await applyMove(db, MOVES.recheck_sent_of_cancelled, { batch: opts.batch }, { state: 'ready', last_error: 'the batch was cancelled: asked about, never sent again' });
  }

  emit({ type: 'phase', phase: 'preflight' });
  let pf: Preflight;
  try {
    pf = cancelled ? await preflight(runner, { ...opts, feePerPayoutPaise: 0n }, { count: 0, paise: 0n }) : await preflight(runner, opts);
  } catch (err) {
    if (!(err instanceof AllianceError)) throw err;
    const why = err instanceof AuthenticationError ? 'the API refused our credentials' : 'the API did not answer the balance check';
    return finishRun(runner, opts, base, undefined, {
      exitCode: EXIT.apiUnavailable,
      message: `nothing sent: ${why} (${err.message}); run \`payouts resume ${opts.batch}\` when it answers`,
    });
  }
  emit({ type: 'preflight', preflight: pf });

  if (pf.shortfallPaise > 0n) {
    const note = `not sent: the wallet balance ${formatRupeesIndian(pf.balancePaise ?? 0n)} is short of ${formatRupeesIndian(pf.needPaise)} by ${formatRupeesIndian(pf.shortfallPaise)}`;
    // Only rows no request of which can have executed: one that may have been sent stays ready, to be asked
    // about by the next run (or a cancel), never stranded as "skipped".
    await applyMove(db, MOVES.skip_short_balance, { batch: opts.batch }, { state: 'skipped', last_error: note });
    return finishRun(runner, opts, base, pf, { exitCode: EXIT.refused, message: `refused before sending anything: ${note}. Top up the wallet, then \`payouts resume ${opts.batch}\`` });
  }

  emit({ type: 'phase', phase: 'confirm' });
  const refusal = await authorize(runner, batch, pf, opts, ingest);
  if (refusal) return finishRun(runner, opts, base, pf, { exitCode: EXIT.refused, message: refusal });
  if (opts.beforeSend && pf.toSend > 0 && runner.mayInitiate) {
    const held = await opts.beforeSend((await getBatch(db, opts.batch))!);
    if (held) return finishRun(runner, opts, base, pf, { exitCode: EXIT.usage, message: `nothing sent: ${held}` });
  }

  await markStarted(db, opts.batch);
  await audit(db, actorOf(opts), ingest ? 'run' : 'resume', { batch: opts.batch, revision: batch.revision, detail: { to_send: pf.toSend, amount_paise: pf.amountPaise.toString() } });
  const receiver = opts.webhooks ? await listen(runner, opts.webhooks, opts.stopSignal) : undefined;
  try {
    return await sendAndPoll(runner, opts, base, pf, () => collisions);
  } finally {
    if (receiver) {
      await receiver.close();
      opts.webhooks?.onClosed?.(receiver.stats());
    }
  }
}

/**
 * The run's webhook receiver. A payout hint's check of a pending payout of the batch is that payout's poll
 * brought forward (the main lane); a payin hint is nobody's work in this run, so its lookup takes the hint
 * lane (a share of the rate while payouts want it). Polling becomes the fallback (engine/schedule.ts).
 * A stop (Ctrl-C, SIGTERM) closes the receiver at once: the hints waiting are dropped, not looked up.
 */
async function listen(runner: Runner, w: WebhookListenOptions, stop: AbortSignal | undefined): Promise<WebhookReceiver> {
  const onPayout = payoutHintHandler(runner);
  const onPayin = payinHintHandler({ client: runner.client, db: runner.db, logger: runner.logger, gate: runner.hintGate });
  const rx = await startWebhookReceiver({
    token: w.token,
    port: w.port,
    ...(w.host ? { host: w.host } : {}),
    allowIps: w.allowIps,
    ...(w.idleTimeoutMs !== undefined ? { idleTimeoutMs: w.idleTimeoutMs } : {}),
    ...(w.maxConnections !== undefined ? { maxConnections: w.maxConnections } : {}),
    ...(w.maxQueuedHints !== undefined ? { maxQueuedHints: w.maxQueuedHints } : {}),
    logger: runner.logger,
    onPayoutHint: (h, stopping) => onPayout(h, stopping),
    onPayinHint: (h) => onPayin(h),
  });
  runner.schedule.useWebhooks();
  if (stop) {
    if (stop.aborted) void rx.close();
    else stop.addEventListener('abort', () => void rx.close(), { once: true });
  }
  w.onListening?.(rx.url);
  return rx;
}

/** The send phase with the poll phase interleaved, then the end of the run. */
async function sendAndPoll(
  runner: Runner,
  opts: RunOptions,
  base: { batch: string; ingest?: IngestResult; dryRun: boolean },
  pf: Preflight,
  collisions: () => number,
): Promise<RunResult> {
  const emit = (e: RunEvent) => runner.emit(e);
  emit({ type: 'phase', phase: 'send' });
  let stopped: { kind: 'auth' | 'unavailable' | 'signal'; message: string } | undefined;
  let sending = true;
  // When the API stops taking requests, polling stops too (its status checks would fail the same way).
  const halt = new AbortController();
  const stopAll = opts.stopSignal ? AbortSignal.any([opts.stopSignal, halt.signal]) : halt.signal;
  const sendDone = sendAll(runner, opts.batch, opts.stopSignal)
    .catch((err: unknown) => {
      if (err instanceof StopSending) {
        stopped = { kind: err.reason, message: err.message };
        emit({ type: 'stopping', reason: err.message });
        halt.abort();
        return;
      }
      throw err;
    })
    .finally(() => {
      sending = false;
    });
  // Status checks interleave with the sends: results show during the run, not after it.
  const polled = pollLoop(runner, opts.batch, {
    sending: () => sending,
    pollTimeoutMs: opts.pollTimeoutMs ?? 600_000,
    stop: stopAll,
  });
  const [sendResult, pollResult] = await Promise.allSettled([sendDone, polled]);
  if (sendResult.status === 'rejected') throw sendResult.reason;
  if (pollResult.status === 'rejected') throw pollResult.reason;
  if (!stopped && opts.stopSignal?.aborted) stopped = { kind: 'signal', message: 'stopped on request' };
  return finishRun(runner, opts, base, pf, undefined, stopped, collisions());
}

/** The API's host for the reports (never a password or a path). */
function hostOf(baseUrl: string): string | undefined {
  try {
    return new URL(baseUrl).host;
  } catch {
    return undefined;
  }
}

function actorOf(opts: RunOptions): Actor {
  return opts.actor ?? { name: 'cli', from: 'cli' };
}

function notFound(batch: string): BatchNotFoundError {
  return new BatchNotFoundError(`no batch named "${batch}": start it with \`payouts run <csv> --batch ${batch}\`, or \`payouts status\` lists the batches`);
}

/** A dry run's verdict: what a real run would do, with nothing stored and nothing sent. */
function dryRunVerdict(pf: Preflight, ingest: IngestResult | undefined): { exitCode: ExitCode; message: string } {
  const invalid = ingest?.invalid ?? 0;
  const parts = [`dry run, nothing stored or sent: ${pf.toSend} payouts of ${formatRupeesIndian(pf.amountPaise)} would be sent`];
  if (invalid) parts.push(`${invalid} invalid rows`);
  if (pf.balancePaise !== null) parts.push(`balance ${formatRupeesIndian(pf.balancePaise)}`);
  if (pf.shortfallPaise > 0n) {
    return { exitCode: EXIT.refused, message: `${parts.join('; ')}: a real run would be refused, the balance is short by ${formatRupeesIndian(pf.shortfallPaise)}` };
  }
  return { exitCode: invalid > 0 ? EXIT.unpaidRows : EXIT.ok, message: parts.join('; ') };
}

/**
 * An explicit yes before anything new is sent: typed at a terminal, or --yes, or `payouts approve` of this
 * revision. A yes typed at a prompt or given with --yes is the yes of that run only: after a Ctrl-C, an
 * unattended resume needs --yes (or the approve command) again. A batch declined at a prompt is never sent
 * by a later run without a new yes typed at a terminal (or `payouts approve`). Returns the refusal, or
 * undefined to go on.
 */
async function authorize(runner: Runner, batch: BatchRecord, pf: Preflight, opts: RunOptions, ingest: IngestResult | undefined): Promise<string | undefined> {
  if (pf.toSend === 0 || !runner.mayInitiate) return undefined;
  // Maker-checker: with the approval policy on, the approvals of this revision are the only yes. Neither
  // --yes nor a typed y nor `approve` without a checker replaces them, whichever door runs the batch.
  const gate = await approvalState(runner.db, batch, (await fileRowTotals(runner.db, batch.name)).validTotalPaise);
  if (gate.required) {
    if (gate.met) {
      // What the checkers approved, and only that: a revision stored while this run sends is not claimed.
      runner.approvedRevision = { revision: batch.revision, sha256: batch.file_sha256 };
      return undefined;
    }
    runner.awaitingApproval = true;
    const rev = batch.revision > 1 ? ` --revision ${batch.revision}` : '';
    return `not approved: ${gate.missing}. Nothing sent; a checker approves it with \`payouts approve ${batch.name}${rev} --as <name>\` or in the console, then \`payouts resume ${batch.name}\` (or the scheduled run) pays it`;
  }
  const what = `${pf.toSend} payouts of ${formatRupeesIndian(pf.amountPaise)}`;
  const declined = batch.decision === 'declined';
  if (opts.confirm && (declined || !opts.yes)) {
    let yes = false;
    try {
      yes = await opts.confirm(pf, batch, ingest);
    } catch (err) {
      // Stopped while asking: nothing is sent, and nobody said no (no decline is recorded).
      if (err instanceof NoAnswerError) return `not confirmed (${err.message}): nothing sent`;
      yes = false;
    }
    if (!yes) {
      await recordDecision(runner.db, batch.name, 'declined', 'declined at the confirmation prompt', 'prompt');
      return `not confirmed: nothing sent, and no later run sends batch "${batch.name}" until someone confirms it (at a terminal, or \`payouts approve ${batch.name}\`)`;
    }
    await keepOrRecordYes(runner, batch, 'confirmed at the terminal', 'prompt');
    return undefined;
  }
  if (declined) {
    return `batch "${batch.name}" was declined at the confirmation prompt${batch.decided_at ? ` on ${localTime(batch.decided_at, DEFAULT_TIME_ZONE)}` : ''}: nothing is sent until someone confirms it; run it at a terminal and answer y, or \`payouts approve ${batch.name}\``;
  }
  if (opts.yes) {
    await keepOrRecordYes(runner, batch, 'confirmed with --yes', 'flag');
    return undefined;
  }
  // The lasting yes of `payouts approve` holds for the revision (and file) it named, never for a later one.
  if (batch.decision === 'approved' && batch.decided_by === 'approve' && (await isApproved(runner.db, batch.name, batch.revision, batch.file_sha256))) return undefined;
  const earlier =
    batch.decision === 'approved' && batch.decided_at && batch.decided_by !== 'approve'
      ? ` (the yes ${batch.decided_by === 'prompt' ? 'typed at a terminal' : 'given with --yes'} on ${localTime(batch.decided_at, DEFAULT_TIME_ZONE)} was for that run only)`
      : '';
  const approve = batch.revision > 1 ? `\`payouts approve ${batch.name} --revision ${batch.revision}\`` : `\`payouts approve ${batch.name}\``;
  const proposal =
    ingest?.kind === 'revised' && !ingest.dryRun
      ? `; revision ${batch.revision} is stored as a proposal: none of it is paid until someone confirms that revision`
      : '';
  return `no terminal to confirm ${what}${earlier}: pass --yes to pay unattended (or run at a terminal, or ${approve}); nothing sent${proposal}`;
}

/** A yes of this run is recorded, unless the batch has the lasting yes of `payouts approve`: that one stays. */
async function keepOrRecordYes(runner: Runner, batch: BatchRecord, note: string, by: 'prompt' | 'flag'): Promise<void> {
  if (batch.decision === 'approved' && batch.decided_by === 'approve') return;
  await recordDecision(runner.db, batch.name, 'approved', note, by);
}

/** Counts per report status, every status present. */
export async function statusCounts(db: EngineDeps['db'], batch: string): Promise<Record<ReportStatus, number>> {
  const byState = await countByState(db, batch);
  const counts = Object.fromEntries(REPORT_STATUSES.map((s) => [s, 0])) as Record<ReportStatus, number>;
  for (const [state, n] of Object.entries(byState)) counts[reportStatus(state as keyof typeof byState)] += n;
  return counts;
}

/** The end of every run that got past reading: counts, finished mark, report, exit decision. */
async function finishRun(
  runner: Runner,
  opts: RunOptions,
  base: { batch: string; ingest?: IngestResult; dryRun: boolean },
  pf: Preflight | undefined,
  verdict: { exitCode: ExitCode; message: string } | undefined,
  stopped?: { kind: 'auth' | 'unavailable' | 'signal'; message: string },
  collisions = 0,
): Promise<RunResult> {
  const { db } = runner;
  const counts = await statusCounts(db, opts.batch);
  const unfinished = counts.not_sent + counts.sending + counts.pending;
  if (!verdict && unfinished === 0) await markFinished(db, opts.batch);
  runner.emit({ type: 'phase', phase: 'report' });
  let report: ReportPaths | undefined;
  let reportError: string | undefined;
  try {
    report = await writeReports(db, opts.batch, opts.reportDir ?? 'reports', { timeZone: opts.reportTimeZone, apiHost: hostOf(runner.client.baseUrl) });
  } catch (err) {
    // Money may have moved: a report that cannot be written never turns into "rows not paid".
    reportError = (err as Error).message;
    runner.logger.error({ err: reportError }, 'the report could not be written');
  }
  const held = counts.sending > 0 ? await heldByOthers(db, opts.batch, runner.owner) : 0;
  const decided = verdict ?? decideExit({ batch: opts.batch, counts, stopped, heldByOthers: held, reportError, cancelled: !runner.mayInitiate, collisions });
  const exit =
    verdict && reportError && verdict.exitCode !== EXIT.refused && verdict.exitCode !== EXIT.apiUnavailable
      ? { exitCode: EXIT.unfinished, message: `${verdict.message}; the report could not be written (${reportError})` }
      : decided;
  return { ...base, ...(pf ? { preflight: pf } : {}), counts, ...(report ? { report } : {}), ...exit, ...(runner.awaitingApproval ? { awaitingApproval: true } : {}) };
}
