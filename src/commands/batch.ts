import path from 'node:path';
import { formatRupees, formatRupeesIndian, parseRupees, type Paise } from '../money.js';
import { validateFile } from '../batch/validateFile.js';
import { listBatches, getBatch } from '../db/batches.js';
import { countByState } from '../db/rows.js';
import { defaultBatchName } from '../engine/ingest.js';
import { BatchNotFoundError, InputError } from '../errors.js';
import { runBatch, type Preflight, type RunOptions, type RunResult } from '../engine/run.js';
import { summarize } from '../report/report.js';
import { clientOf, loggerOf, printJson, withDb, type CommandIO } from './context.js';
import type { EngineOptions } from '../engine/context.js';
import { migrationSource } from '../db/migrations.js';
import type { CrashHook } from '../engine/crash.js';

export interface RunCommandOptions {
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
  retryFailed?: boolean | undefined;
  retryReview?: boolean | undefined;
  /** Skip the confirmation question (scheduled runs never get one: no TTY). */
  yes?: boolean | undefined;
  /** Engine knobs for tests and operators (lease, grace, polling). */
  engine?: Partial<EngineOptions>;
  /** Crash-test hook (PAYOUTS_CRASH_AT). */
  crash?: CrashHook | undefined;
}

/** `payouts run <csv>` and `payouts resume <batch>`: one batch end to end. */
export async function runCommand(io: CommandIO, o: RunCommandOptions): Promise<number> {
  const logger = loggerOf(io);
  const batch = o.batch ?? (o.csv ? defaultBatchName(o.csv) : undefined);
  if (!batch) throw new BatchNotFoundError('name the batch to resume: `payouts resume <batch>`');
  const client = clientOf(io, logger);
  try {
    return await withDb(io, async (db) => {
      // Which database holds the batch matters: a run from another directory would see another one.
      if (!io.json) io.out(`Database: ${db.where}`);
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
        dryRun: o.dryRun ?? false,
        revise: o.revise ?? false,
        retryFailed: o.retryFailed ?? false,
        retryReview: o.retryReview ?? false,
        stopSignal: io.stopSignal,
        reportTimeZone: io.config.timeZone,
        onEvent: (e) => {
          if (io.json) return;
          if (e.type === 'ingested') {
            const i = e.ingest;
            const what = i.kind === 'unchanged' ? 'already read; carrying on' : i.kind === 'revised' ? `corrected copy merged (revision ${i.revision})` : 'read';
            io.out(`Batch ${i.batch}: ${i.rows} rows ${what}, ${i.invalid} invalid, ${i.warnings} with warnings`);
          } else if (e.type === 'preflight' && e.preflight.toSend > 0) {
            io.out(`Balance ${formatRupeesIndian(e.preflight.balancePaise ?? 0n)}; to send ${e.preflight.toSend} payouts needing ${formatRupeesIndian(e.preflight.needPaise)}`);
          } else if (e.type === 'recovering') {
            io.out(`Resolving ${e.rows} payouts an earlier run left unfinished (asking their status first)`);
          }
        },
      };
      opts.yes = o.yes ?? false;
      if (io.ask && !o.dryRun) opts.confirm = (pf) => confirm(io, batch, pf);
      const res = await runBatch(opts, { db: db.knex, client, logger, crash: o.crash });
      printResult(io, res);
      return res.exitCode;
    });
  } finally {
    await client.close();
  }
}

function rupeesText(amount: string): string {
  return formatRupeesIndian(parseRupees(amount) ?? 0n);
}

function printTotals(io: CommandIO, totals: Record<string, { count: number; amount: string }>): void {
  for (const [status, t] of Object.entries(totals)) {
    if (t.count > 0) io.out(`  ${status.padEnd(13)} ${String(t.count).padStart(7)}  ${rupeesText(t.amount).padStart(16)}`);
  }
}

async function confirm(io: CommandIO, batch: string, pf: Preflight): Promise<boolean> {
  const answer = await io.ask!(
    `Send ${pf.toSend} payouts of batch ${batch} totalling ${formatRupeesIndian(pf.amountPaise)} from a balance of ${formatRupeesIndian(pf.balancePaise ?? 0n)}? [y/N] `,
  );
  return /^y(es)?$/i.test(answer.trim());
}

function printResult(io: CommandIO, res: RunResult): void {
  if (io.json) {
    printJson(io, {
      batch: res.batch,
      exit_code: res.exitCode,
      message: res.message,
      ingest: res.ingest,
      preflight: res.preflight,
      summary: res.report?.summary,
      report: res.report ? { csv: res.report.csv, json: res.report.json } : undefined,
    });
    return;
  }
  if (res.report) {
    const s = res.report.summary;
    printTotals(io, s.totals);
    io.out(`  charges ${rupeesText(s.charges)}; debited ${rupeesText(s.debited)}`);
  }
  // A run that could not do its work says why on stderr too, where scripts and people look for errors.
  if (res.exitCode >= 2) (io.err ?? io.out)(`payouts: ${res.message}`);
  else io.out(res.message);
  if (res.report) io.out(`Report: ${res.report.csv}, ${res.report.json} and ${res.report.html}`);
}

/** `payouts validate <csv>`: every row checked, nothing stored, nothing sent. */
export async function validateCommand(
  io: CommandIO,
  o: { csv: string; batch?: string; userId?: string; expectRows?: number; expectTotalPaise?: Paise; acceptUnterminated?: boolean },
): Promise<number> {
  const file = path.resolve(io.cwd, o.csv);
  const s = await validateFile(file, {
    batch: o.batch ?? defaultBatchName(file),
    defaultUserId: o.userId,
    expectRows: o.expectRows,
    expectTotalPaise: o.expectTotalPaise,
    acceptUnterminated: o.acceptUnterminated,
  });
  const fileErrors = s.file_issues.filter((i) => i.severity === 'error');
  if (io.json) {
    const byRow = new Map<number, { row: number; errors: string[]; warnings: string[] }>();
    for (const p of s.problems) {
      let r = byRow.get(p.row);
      if (!r) byRow.set(p.row, (r = { row: p.row, errors: [], warnings: [] }));
      (p.severity === 'error' ? r.errors : r.warnings).push(p.message);
    }
    printJson(io, {
      file,
      refused: s.refused,
      rows: s.rows,
      valid: s.valid,
      invalid: s.invalid,
      with_warnings: s.warnings,
      valid_total: formatRupees(s.total_paise),
      valid_total_paise: s.total_paise.toString(),
      file_issues: s.file_issues,
      ignored_columns: s.ignored_columns,
      reference_column: s.reference_column,
      problems: [...byRow.values()],
      problems_omitted: s.problems_omitted,
    });
  } else {
    for (const i of s.file_issues) if (i.severity === 'warning') io.out(`file: warning: ${i.message}`);
    for (const p of s.problems) io.out(`row ${p.row}: ${p.severity}: ${p.message}`);
    if (s.problems_omitted > 0) io.out(`… and ${s.problems_omitted} more row problems not listed (fix these and validate again)`);
    io.out(
      `${s.rows} rows: ${s.valid} valid totalling ${formatRupeesIndian(s.total_paise)}, ${s.invalid} invalid, ${s.warnings} with warnings` +
        (s.refused ? '; the file is refused as a whole (the problem is described below)' : ''),
    );
  }
  // A refused file: exit 2 with its problems on stderr, each once.
  if (fileErrors.length === 1) throw new InputError(fileErrors[0]!.message);
  if (fileErrors.length > 1) {
    const shown = fileErrors.slice(0, 20).map((i) => `  - ${i.message}`);
    if (fileErrors.length > 20) shown.push(`  - and ${fileErrors.length - 20} more (--json lists them all)`);
    throw new InputError(`${file} is refused (${fileErrors.length} problems):\n${shown.join('\n')}`);
  }
  return s.invalid > 0 ? 1 : 0;
}

/** `payouts status [batch]`: what the database knows, no API call. */
export async function statusCommand(io: CommandIO, batch: string | undefined): Promise<number> {
  return withDb(io, async (db) => {
    if (!batch) {
      const all = await listBatches(db.knex);
      if (io.json) printJson(io, all.map((b) => ({ batch: b.name, revision: b.revision, created_at: b.created_at, finished_at: b.finished_at })));
      else if (all.length === 0) io.out('No batches yet: start one with `payouts run <csv>`');
      else for (const b of all) io.out(`${b.name}  revision ${b.revision}  ${b.finished_at ? 'finished' : 'open'}  ${b.source_file}`);
      return 0;
    }
    if (!(await getBatch(db.knex, batch))) throw new BatchNotFoundError(`no batch named "${batch}": \`payouts status\` lists them`);
    const s = await summarize(db.knex, batch);
    const states = await countByState(db.knex, batch);
    if (io.json) printJson(io, { ...s, states });
    else {
      io.out(`Batch ${batch}: ${s.rows} rows${s.finished_at ? `, finished ${s.finished_at}` : ''}`);
      printTotals(io, s.totals);
      if (states.submitting) io.out(`  (${states.submitting} with an unknown outcome: \`payouts resume ${batch}\` resolves them)`);
    }
    return 0;
  });
}

/** `payouts migrate` */
export async function migrateCommand(io: CommandIO): Promise<number> {
  return withDb(io, async (db) => {
    const [done] = (await db.knex.migrate.list({ migrationSource })) as [unknown[], unknown[]];
    if (io.json) printJson(io, { database: db.where, migrations: done.length });
    else io.out(`Database ${db.where} is up to date (${done.length} migrations)`);
    return 0;
  });
}
