import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { BatchSummary } from '../report/report.js';
import { formatRupeesIndian, type Paise } from '../money.js';
import { BatchNotFoundError, NoAnswerError } from '../errors.js';
import { PromptInterrupted } from '../cli/ask.js';
import { defaultBatchName, type IngestResult } from '../engine/ingest.js';
import { runBatch, type Preflight, type RunEvent, type RunOptions, type RunResult } from '../engine/run.js';
import type { EngineOptions } from '../engine/context.js';
import type { CrashHook } from '../engine/crash.js';
import type { BatchRecord } from '../db/batches.js';
import { summarize } from '../report/report.js';
import { confirmLines, confirmQuestion, isYes, repeatLines, revisionLines } from '../cli/confirm.js';
import { planLines } from '../cli/plan.js';
import { changePlan, type ChangePlan } from '../engine/plan.js';
import { Progress, snapshotPath } from '../cli/progress.js';
import { statusLines, summaryJson, unfinishedLines, type StatusTotalsLike } from '../cli/summary.js';
import { jsonStyle } from '../cli/jsonStyle.js';
import { actorOf, clientOf, dataDirOf, loggerOf, note, printJson, withDb, type CommandIO } from './context.js';
import { DEFAULT_TIME_ZONE, localTime } from '../report/time.js';

export interface RunCommandOptions {
  /** The run's end: its exit code and the one line a person acts on (the inbox watcher logs it). */
  onResult?: ((r: { exitCode: number; message: string; awaitingApproval?: boolean | undefined }) => void) | undefined;
  csv?: string | undefined;
  batch?: string | undefined;
  userId?: string | undefined;
  rate?: number | undefined;
  concurrency?: number | undefined;
  reportDir?: string | undefined;
  pollTimeoutMs?: number | undefined;
  feePerPayoutPaise?: Paise | undefined;
  dryRun?: boolean | undefined;
  revise?: boolean | undefined;
  /** Row numbers of a corrected copy whose changed amount or account is paid in addition (--accept-change). */
  acceptChanges?: number[] | undefined;
  /** Control totals (--expect-rows, --expect-total). */
  expectRows?: number | undefined;
  expectTotalPaise?: Paise | undefined;
  /** Days to look back for another batch paying an account the same amount (warnings). Default 30. */
  repeatWindowDays?: number | undefined;
  retryFailed?: boolean | undefined;
  retryReview?: boolean | undefined;
  /** An explicit yes given up front: pay without a question (the only way without a terminal). */
  yes?: boolean | undefined;
  /** Engine knobs for tests and operators (lease, grace, polling). */
  engine?: Partial<EngineOptions>;
  /** Crash-test hook (PAYOUTS_CRASH_AT). */
  crash?: CrashHook | undefined;
  /** Accept a last line without a line break (--accept-unterminated). */
  acceptUnterminated?: boolean | undefined;
  /** For a workbook (.xlsx): the sheet to read (--sheet). */
  sheet?: string | undefined;
  /** Run a file another batch already ran (--allow-duplicate-file). */
  allowDuplicateFile?: boolean | undefined;
  /** POST a summary here when the batch finishes, stops or fails (--notify-url). */
  notifyUrl?: string | undefined;
  /** Run as this user (--as NAME, authenticated): the uploader of a new batch, named in the audit. */
  as?: string | undefined;
  /** The reports are moved after the run (the inbox): say so instead of quoting paths that will be gone. */
  reportsMovedAfter?: boolean | undefined;
  /** A last check before the first send (the inbox: the file is still what was claimed and read). */
  beforeSend?: RunOptions['beforeSend'];
  /** Receive webhooks while the batch runs (--webhook-port); the token from the configuration or generated. */
  webhooks?: { port: number; host?: string | undefined; token?: string | undefined; maxConnections?: number | undefined } | undefined;
}

/** Invalid rows listed after reading a file; the report and `payouts validate` list every one. */
const MAX_LISTED = 20;

/** `payouts run <csv>` and `payouts resume <batch>`: one batch end to end. */
export async function runCommand(io: CommandIO, o: RunCommandOptions): Promise<number> {
  const logger = loggerOf(io);
  const batch = o.batch ?? (o.csv ? defaultBatchName(o.csv) : undefined);
  if (!batch) throw new BatchNotFoundError('name the batch to resume: `payouts resume <batch>`');
  const client = clientOf(io, logger);
  try {
    return await withDb(io, async (db) => {
      const dryRun = o.dryRun ?? false;
      const progress = io.screen
        ? new Progress({
            screen: io.screen,
            batch,
            command: o.csv ? 'run' : 'resume',
            refresh: () => summarize(db.knex, batch),
            snapshotFile: db.kind === 'pglite' && !dryRun && dataDirOf(io) !== ':memory:' ? snapshotPath(dataDirOf(io), batch) : undefined,
            plainEveryMs: io.progressEveryMs,
          })
        : undefined;
      let ingest: IngestResult | undefined;
      const opts: RunOptions = {
        ...o.engine,
        batch,
        csvPath: o.csv ? path.resolve(io.cwd, o.csv) : undefined,
        defaultUserId: o.userId,
        reportDir: path.resolve(io.cwd, o.reportDir ?? 'reports'),
        ...(o.rate !== undefined ? { rate: o.rate } : {}),
        ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
        ...(o.pollTimeoutMs !== undefined ? { pollTimeoutMs: o.pollTimeoutMs } : {}),
        ...(o.feePerPayoutPaise !== undefined ? { feePerPayoutPaise: o.feePerPayoutPaise } : {}),
        dryRun,
        revise: o.revise ?? false,
        acceptChanges: o.acceptChanges ?? [],
        expectRows: o.expectRows,
        expectTotalPaise: o.expectTotalPaise,
        ...(o.repeatWindowDays !== undefined ? { repeatWindowDays: o.repeatWindowDays } : {}),
        retryFailed: o.retryFailed ?? false,
        retryReview: o.retryReview ?? false,
        acceptUnterminated: o.acceptUnterminated ?? false,
        ...(o.sheet !== undefined ? { sheet: o.sheet } : {}),
        allowDuplicateFile: o.allowDuplicateFile ?? false,
        reportTimeZone: io.config.timeZone,
        ...(o.webhooks ? { webhooks: webhookListen(io, o.webhooks) } : {}),
        stopSignal: io.stopSignal,
        beforeSend: o.beforeSend,
        actor: await actorOf(io, db, o.as),
        yes: o.yes ?? false,
        onEvent: (e) => {
          progress?.event(e);
          if (e.type === 'ingested') ingest = e.ingest;
          if (!io.json) printEvent(io, e);
        },
      };
      if (io.ask && !dryRun) {
        opts.confirm = async (pf, rec) => confirm(io, rec, pf, ingest, await summarize(db.knex, batch), o, ingest?.plan ?? (await changePlan(db.knex, rec.name)));
      }
      progress?.start();
      let res: RunResult;
      try {
        res = await runBatch(opts, { db: db.knex, client, logger, crash: o.crash });
      } catch (err) {
        await progress?.stop({ exitCode: -1, message: (err as Error).message });
        await notify(io, o.notifyUrl, null, { batch, exitCode: (err as { exitCode?: number }).exitCode ?? 4, message: (err as Error).message });
        throw err;
      }
      await progress?.stop({ exitCode: res.exitCode, message: res.message, statuses: res.report?.summary });
      printResult(io, res, db.where, o.reportsMovedAfter ?? false);
      o.onResult?.({ exitCode: res.exitCode, message: res.message, awaitingApproval: res.awaitingApproval });
      if (!res.dryRun) await notify(io, o.notifyUrl, res.report?.summary ?? null, { batch, exitCode: res.exitCode, message: res.message });
      return res.exitCode;
    });
  } finally {
    await client.close();
  }
}

/** What a run tells a person as it goes, besides the progress display (stdout: these are results). */
function printEvent(io: CommandIO, e: RunEvent): void {
  if (e.type === 'ingested') {
    for (const line of ingestLines(e.ingest)) io.out(line);
  } else if (e.type === 'preflight' && e.preflight.toSend > 0) {
    const pf = e.preflight;
    const bal = pf.balancePaise === null ? '' : `Balance ${formatRupeesIndian(pf.balancePaise)}; `;
    io.out(`${bal}to send ${pf.toSend} payouts needing ${formatRupeesIndian(pf.needPaise)}`);
  }
}

/** A file just read: counts, header notes, the invalid rows (the first few), what a corrected copy changed. */
export function ingestLines(i: IngestResult): string[] {
  const what =
    i.kind === 'unchanged'
      ? 'already read; carrying on'
      : i.kind === 'revised'
        ? i.dryRun
          ? `read as a corrected copy (it would be revision ${i.revision}; dry run: nothing stored)`
          : `read as a corrected copy and merged (revision ${i.revision})`
        : i.dryRun
          ? 'read (dry run: nothing stored)'
          : 'read';
  const lines = [`Batch ${i.batch}: ${i.rows} rows ${what}, ${i.invalid} invalid, ${i.warnings} with warnings; valid rows total ${formatRupeesIndian(i.validTotalPaise)}`];
  for (const n of i.headerNotes) lines.push(`  note: ${n}`);
  let listed = 0;
  for (const p of i.problems) {
    if (listed >= MAX_LISTED) break;
    for (const e of p.errors) lines.push(`  row ${p.row}: error: ${e}`);
    for (const w of p.warnings) lines.push(`  row ${p.row}: warning: ${w}`);
    listed++;
  }
  const withProblems = i.problems.length;
  if (withProblems > listed) lines.push(`  … and ${withProblems - listed} more rows with problems${withProblems >= 1000 ? ' (or more)' : ''}: the report lists every one`);
  // Always here (a --yes run, a dry run, cron, and a run whose question is never asked); a question at a
  // terminal shows them again, just before the yes.
  lines.push(...revisionLines(i, MAX_LISTED), ...repeatLines(i, MAX_LISTED, i.dryRun ? 'before a real run' : ''), ...planLines(i.plan, MAX_LISTED));
  return lines;
}

/** The question before money moves: the facts on stderr, then "y" or anything else. */
async function confirm(
  io: CommandIO,
  rec: BatchRecord,
  pf: Preflight,
  ingest: IngestResult | undefined,
  statuses: StatusTotalsLike,
  control: { expectRows?: number | undefined; expectTotalPaise?: Paise | undefined; rate?: number | undefined },
  plan: ChangePlan,
): Promise<boolean> {
  io.screen?.clearStatus();
  const lines = confirmLines({
    batch: { name: rec.name, revision: rec.revision },
    preflight: pf,
    baseUrl: io.config.api.baseUrl ?? '',
    ingest,
    statuses,
    control: { rows: control.expectRows, totalPaise: control.expectTotalPaise },
    plan,
    rate: control.rate,
  });
  if (rec.decision === 'declined') lines.unshift(`This batch was declined at a prompt earlier${rec.decided_at ? ` (${localTime(rec.decided_at, DEFAULT_TIME_ZONE)})` : ''}; answering y now approves it.`);
  for (const l of lines) note(io, l);
  let answer: string;
  try {
    answer = await io.ask!(confirmQuestion(pf));
  } catch (err) {
    if (err instanceof PromptInterrupted && !err.byPerson) throw new NoAnswerError(err.message);
    throw err;
  }
  return isYes(answer);
}

function printResult(io: CommandIO, res: RunResult, database: string, reportsMoved: boolean): void {
  const summary = res.report?.summary;
  if (io.json) {
    printJson(io, {
      batch: res.batch,
      exit_code: res.exitCode,
      message: res.message,
      ...(res.exitCode >= 2 ? { error: { code: res.exitCode, message: res.message } } : {}),
      dry_run: res.dryRun,
      database,
      ingest: res.ingest ? jsonStyle(res.ingest) : undefined,
      preflight: res.preflight ? jsonStyle(res.preflight) : undefined,
      summary: summary ? summaryJson(summary) : undefined,
      report: res.report ? { csv: res.report.csv, json: res.report.json } : undefined,
    });
    return;
  }
  if (res.dryRun && res.preflight) {
    const pf = res.preflight;
    io.out(`A real run would send ${pf.toSend} payouts of ${formatRupeesIndian(pf.amountPaise)}:`);
    for (const m of pf.byMethod) io.out(`  ${m.method.padEnd(6)} ${String(m.count).padStart(7)} payouts  ${formatRupeesIndian(m.amountPaise).padStart(18)}`);
    if (pf.feesPaise > 0n) io.out(`  fees (estimate) ${formatRupeesIndian(pf.feesPaise)}`);
    if (pf.balancePaise !== null) io.out(`  balance ${formatRupeesIndian(pf.balancePaise)}, about ${formatRupeesIndian(pf.balancePaise - pf.needPaise)} after`);
  }
  if (summary) {
    io.out(`Batch ${res.batch}:`);
    // Refused before sending: a table of zeros says nothing; the rows that are there say what stays unsent.
    for (const l of statusLines(summary, { onlyNonZero: res.exitCode === 3 })) io.out(l);
    for (const l of unfinishedLines(summary, res.batch, { refused: res.exitCode === 3 })) io.out(l);
  }
  // A run that could not do its work says why on stderr too, where scripts and people look for errors.
  if (res.exitCode >= 2) note(io, `payouts: ${res.message}`, 'error');
  else io.out(res.message);
  if (res.report) io.out(reportsMoved ? 'Report: written; it moves with the file (the Inbox line below says where)' : `Report: ${res.report.csv}, ${res.report.json} and ${res.report.html} (for Excel: ${res.report.xlsx})`);
}

/** The webhook receiver's settings: a token from the configuration, or one made for this run and printed. */
function webhookListen(io: CommandIO, w: { port: number; host?: string | undefined; token?: string | undefined; maxConnections?: number | undefined }) {
  const token = w.token ?? randomBytes(24).toString('base64url');
  return {
    port: w.port,
    host: w.host,
    token,
    maxConnections: w.maxConnections,
    onListening: (url: string) => {
      const shown = w.token ? url.replace(token, '<your --webhook-token>') : url;
      note(io, `Receiving Alliance's webhooks on ${shown}${w.token ? '' : ' (token made for this run: pass --webhook-token or PAYOUTS_WEBHOOK_TOKEN to keep the URL)'}`);
    },
  };
}

/** Tells whoever the --notify-url points at (Slack, Teams, a pager) how the batch ended; never fails the run. */
export async function notify(io: CommandIO, url: string | undefined, summary: BatchSummary | null, o: { batch: string; exitCode: number; message: string }): Promise<void> {
  if (!url) return;
  const { eventForExit, notifySummary, notifyTarget } = await import('../notify/webhook.js');
  // Not the stop signal: after a SIGTERM the "stopped" notification is the one that matters most, and it
  // has its own timeout and retries (a second Ctrl-C still quits at once).
  const r = await notifySummary(url, summary, { event: eventForExit(o.exitCode), batch: o.batch, exitCode: o.exitCode, message: o.message });
  if (!r.delivered) note(io, `payouts: the notification to ${notifyTarget(url)} was not delivered (${r.error ?? 'no answer'}); the batch's outcome is above and in the report`, 'warn');
}
