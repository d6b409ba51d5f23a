#!/usr/bin/env node
/**
 * The command line: yargs wiring only. Every command is a plain async function in src/commands that
 * returns an exit code or throws; this is the only place that calls process.exit.
 *
 * Command modules (and with them knex, PGlite, undici, pino) are imported when their command runs, not
 * at start: `payouts --help` loads yargs and these few small modules only (BENCHMARKS.md "Start-up").
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadConfig, parseDuration, parseFee, parseRupeeInput, type Config, type ConfigFlags } from './config.js';
import { ConfigError, EXIT, UsageError } from './errors.js';
import { askLine, askSecret } from './cli/ask.js';
import { defaultBatchName } from './batch/name.js';
import { failureOf } from './cli/failure.js';
import { Screen } from './cli/screen.js';
import { apiOptions, asOption, dbOptions, exitCodesEpilogue, progressOption, runOptions } from './cli/options.js';
import type { CommandIO } from './commands/context.js';

type Args = ConfigFlags & { json?: boolean; [k: string]: unknown };

const stop = new AbortController();
let screen: Screen | undefined;
/**
 * What the running command does on a stop request (it finishes in-flight work), as the line a person reads;
 * undefined: the command is simply ended by a signal.
 */
let stopping: string | undefined;
/** The batch the command works on, for the line printed when a second signal quits at once. */
let batchName: string | undefined;
let exitCode = 0;
/** A Ctrl-C or SIGTERM has asked to stop (the next one quits at once). */
let signalled = false;

/** The stop line of a command that pays (run, resume, cancel, watch, demo). */
const PAYS = 'no new payouts are sent; those in flight finish and the report is written';

/**
 * Output whose reader went away (`payouts … | head`, a closed pipe, a terminal that hung up) is dropped from
 * then on instead of crashing the process: a run that crashed there would leave payouts with an unknown
 * outcome and exit 1, which a scheduler reads as "finished". A command that pays stops as on SIGTERM (no
 * new payouts; those in flight finish; the report is written; exit 4), since nobody sees its output.
 */
const closedOut = new Set<NodeJS.WriteStream>();
function writeTo(s: NodeJS.WriteStream, text: string): void {
  if (closedOut.has(s) || s.destroyed) return;
  s.write(text);
}
for (const s of [process.stdout, process.stderr]) {
  s.on('error', (err: NodeJS.ErrnoException) => {
    closedOut.add(s);
    if (stopping === undefined || stop.signal.aborted) return;
    const which = s === process.stdout ? 'stdout' : 'stderr';
    const why = err.code === 'EPIPE' ? 'EPIPE: its reader went away' : `${err.code ?? err.message}: it cannot be written`;
    writeTo(process.stderr, `Stopping: ${which} was closed (${why}): ${stopping}.\n`);
    stop.abort();
  });
}

function io(argv: Args, config: Config = loadConfig(argv, process.env)): CommandIO {
  screen = new Screen({
    write: (t) => writeTo(process.stderr, t),
    tty: Boolean(process.stderr.isTTY) && config.logFormat !== 'json',
    json: config.logFormat === 'json',
    columns: () => process.stderr.columns || 100,
    color: config.color,
  });
  // A person can answer when the keyboard (stdin) and the screen the question goes to (stderr) are a terminal,
  // whatever stdout is: `payouts run … | tee run.log` at a terminal is asked (the facts and the question on
  // the terminal, the results in the log too), as terraform and gh do. With no terminal at all (cron, a
  // pipe into stdin, systemd) nobody is asked: --yes or `payouts approve`.
  const interactive = Boolean(process.stdin.isTTY && process.stderr.isTTY);
  return {
    // On one terminal, a result line goes where the progress block was, and the block below it.
    out: process.stdout.isTTY ? (line) => screen!.around(() => writeTo(process.stdout, line + '\n')) : (line) => writeTo(process.stdout, line + '\n'),
    err: (line) => screen!.line(line),
    json: Boolean(argv.json),
    config,
    cwd: process.cwd(),
    stopSignal: stop.signal,
    screen,
    progressEveryMs: typeof argv['progressInterval'] === 'string' ? parseDuration(argv['progressInterval'], '--progress-interval', 10_000) : undefined,
    ask: interactive ? (q) => askLine(q, { input: process.stdin, output: process.stderr, signal: stop.signal }) : undefined,
    askSecret: interactive ? (q) => askSecret(q, { input: process.stdin, output: process.stderr, signal: stop.signal }) : undefined,
  };
}

/** Options that may be given several times; any other given twice is a mistake, not "the last one wins". */
const REPEATABLE = new Set(['_', 'accept-change', 'acceptChange', 'allow-ip', 'allowIp']);

/**
 * A command's handler: its module loaded now, its exit code kept for the end. `stopping`: the command
 * honours a stop request (Ctrl-C, SIGTERM, SIGHUP, its output closed), and this is what it then does.
 */
const run =
  (fn: (argv: Args) => Promise<number>, o: { stopping?: string } = {}) =>
  async (argv: Args) => {
    for (const [k, v] of Object.entries(argv)) {
      if (Array.isArray(v) && !REPEATABLE.has(k) && k.includes('-') === false && /^[a-z]/.test(k)) {
        throw new UsageError(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} was given more than once (${v.join(', ')}): give it once`);
      }
    }
    stopping = o.stopping;
    const command = (argv as { _?: unknown[] })._?.[0];
    batchName = typeof argv['batch'] === 'string' ? argv['batch'] : command === 'run' && typeof argv['csv'] === 'string' ? defaultBatchName(argv['csv']) : undefined;
    exitCode = await fn(argv);
  };

/** The run/resume options from flags. */
function batchArgs(argv: Args, config: Config) {
  return {
    rate: argv['rate'] as number,
    concurrency: argv['concurrency'] as number,
    reportDir: argv['reportDir'] as string,
    pollTimeoutMs: parseDuration(argv['pollTimeout'] as string, '--poll-timeout', 600_000),
    feePerPayoutPaise: parseFee(argv['feePerPayout'] as string),
    userId: (argv['userId'] as string | undefined) ?? config.userId,
    yes: Boolean(argv['yes']),
    as: argv['as'] as string | undefined,
    notifyUrl: config.notifyUrl,
    ...(argv['webhookPort'] !== undefined
      ? {
          webhooks: {
            port: argv['webhookPort'] as number,
            host: argv['webhookHost'] as string | undefined,
            token: config.webhookToken,
            maxConnections: argv['webhookMaxConnections'] as number | undefined,
          },
        }
      : {}),
    engine: {
      leaseMs: parseDuration(argv['lease'] as string, '--lease', 120_000),
      ambiguousGraceMs: parseDuration(argv['grace'] as string, '--grace', 60_000),
      pollIntervalMs: parseDuration(argv['pollInterval'] as string, '--poll-interval', 2_000),
      webhookWaitMs: parseDuration(argv['webhookWait'] as string, '--webhook-wait', 30_000),
      rateMarginMs: rateMargin(argv['rateMargin']),
      requestTimeoutMs: config.api.timeoutMs,
    },
  };
}

function rateMargin(v: unknown): number {
  const ms = parseDuration(v as string | undefined, '--rate-margin', 40);
  if (ms > 1000) throw new ConfigError(`--rate-margin ${String(v)} is more than a second: give it with a unit, e.g. 40ms or 150ms`);
  return ms;
}

function repeatWindow(v: unknown): number {
  const n = Number(v ?? 30);
  if (!Number.isInteger(n) || n < 0 || n > 3650) throw new UsageError(`--repeat-window ${String(v)}: give whole days from 0 (off) to 3650`);
  return n;
}

function expectRows(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--expect-rows ${String(v)}: give the number of data rows, a whole number like 300`);
  return n;
}

function expectTotal(text: unknown, flag = '--expect-total'): bigint | undefined {
  if (text === undefined) return undefined;
  const p = parseRupeeInput(String(text));
  if (p === undefined) throw new ConfigError(`${flag} must be rupees like 1,23,456.00 or 123456; got "${String(text)}"`);
  return p;
}

const cli = yargs(hideBin(process.argv))
  .scriptName('payouts')
  .usage(
    '$0 <command> [options]\n\nBatch payouts through the Alliance Payin & Payout API: validate a CSV, check the balance, ask for an explicit yes, pay every row exactly once, follow each payout to its end, report.',
  )
  .option('json', { type: 'boolean', describe: 'Results as JSON on stdout (snake_case, rupees as "1234.50", paise only in *_paise); errors as {"error":{"code","message"}}' })
  .option('verbose', { type: 'boolean', describe: 'Debug logs on stderr and stack traces on errors' })
  .option('log-level', { type: 'string', describe: 'Log level on stderr: debug, info, warn, error', defaultDescription: 'warn' })
  .option('log-format', { choices: ['auto', 'pretty', 'json'], describe: 'Logs on stderr: readable lines (repeats counted) or JSON lines; auto = readable on a terminal', defaultDescription: 'auto' })
  .option('config', { type: 'string', describe: 'A settings file (JSON or KEY=value lines, the environment variable names; env PAYOUTS_CONFIG): under the environment, over the defaults; refused if it holds the secret and others can read it' })
  .epilogue(`${exitCodesEpilogue()}\n\nScheduled runs (cron, systemd): run the installed binary (\`npm install -g .\`, or node_modules/.bin/payouts), never \`npx\`: npx does not pass SIGTERM on and changes exit codes. README: "Running it on a schedule".`)

  // run
  .command(
    'run <csv>',
    'Validate a CSV, check the balance, ask for a yes, pay every valid row once, follow each to its end, write the report',
    (y) =>
      runOptions(y)
        .positional('csv', { type: 'string', demandOption: true, describe: 'The payout CSV, or an Excel workbook (.xlsx; first sheet unless --sheet); headers: the API field names or common aliases' })
        .option('batch', { type: 'string', describe: 'Batch name (default: the file name); the same name again resumes it' })
        .option('dry-run', { type: 'boolean', describe: 'Validation, the balance check and what would be sent (with --revise: what the corrected copy changes); nothing stored or sent', default: false })
        .option('revise', { type: 'boolean', describe: 'Merge a corrected copy into a batch that already sent rows (rows already paid are not paid again)', default: false })
        .option('accept-change', { type: 'number', array: true, describe: 'With --revise: a row number of the corrected copy whose changed amount or account is paid in addition (repeatable)' })
        .option('expect-rows', { type: 'number', describe: 'Control total: refuse the file unless it has exactly this many data rows' })
        .option('expect-total', { type: 'string', describe: 'Control total: refuse the file unless its rows add up to these rupees (e.g. 1,23,456.00)' })
        .option('accept-unterminated', { type: 'boolean', default: false, describe: 'Accept a last line without a line break (normally held back: a file still being written looks like that)' })
        .option('sheet', { type: 'string', describe: 'For an Excel file (.xlsx): the sheet to read, by its tab name', defaultDescription: 'the first sheet' })
        .option('allow-duplicate-file', { type: 'boolean', default: false, describe: 'Run a file another batch already ran (same content): normally refused, it would pay everyone again' })
        .option('repeat-window', { type: 'number', default: 30, describe: 'Days to look back for another batch paying the same account the same amount (listed as warnings before the yes)' })
        .example('$0 run payroll-nov.csv --user-id M123 --dry-run', 'What a run would do: invalid rows, totals per method, balance; nothing stored or sent')
        .example('$0 run payroll-nov.csv --user-id M123', 'Pay it: asks for y at a terminal after showing API, rows, rupees and balance')
        .example('$0 run payroll-nov.csv --user-id M123 --yes', 'Pay without a question (cron, systemd, CI)')
        .example('$0 run payroll-nov-v2.csv --batch payroll-nov --revise --dry-run', 'Preview a corrected copy: kept, dropped, changed rows')
        .epilogue(exitCodesEpilogue()),
    run(
      async (argv) => {
        const { runCommand } = await import('./commands/run.js');
        const { crashHookFromEnv } = await import('./engine/crash.js');
        const cio = io(argv);
        return runCommand(cio, {
          ...batchArgs(argv, cio.config),
          crash: crashHookFromEnv(cio.config.crashAt),
          csv: argv['csv'] as string,
          batch: argv['batch'] as string | undefined,
          dryRun: Boolean(argv['dryRun']),
          revise: Boolean(argv['revise']),
          acceptChanges: (argv['acceptChange'] as number[] | undefined) ?? [],
          expectRows: expectRows(argv['expectRows']),
          expectTotalPaise: expectTotal(argv['expectTotal']),
          acceptUnterminated: Boolean(argv['acceptUnterminated']),
          ...(argv['sheet'] !== undefined ? { sheet: String(argv['sheet']) } : {}),
          allowDuplicateFile: Boolean(argv['allowDuplicateFile']),
          repeatWindowDays: repeatWindow(argv['repeatWindow']),
        });
      },
      { stopping: PAYS },
    ),
  )

  // resume
  .command(
    'resume <batch>',
    'Carry on with a stored batch: resolve unknown outcomes (status first), send what is left, follow each payout to its end',
    (y) =>
      runOptions(y)
        .positional('batch', { type: 'string', demandOption: true, describe: 'The batch name (`payouts status` lists them)' })
        .option('retry-failed', { type: 'boolean', default: false, describe: 'Send again the rows the API refused (failed), status first' })
        .option('retry-review', { type: 'boolean', default: false, describe: 'Send again the rows an operator has checked (needs_review), status first' })
        .example('$0 resume payroll-nov', 'After Ctrl-C, a crash or exit 4: finishes what was sent, sends the rest (asks first at a terminal)')
        .example('$0 resume payroll-nov --yes', 'The same, unattended')
        .epilogue(exitCodesEpilogue()),
    run(
      async (argv) => {
        const { runCommand } = await import('./commands/run.js');
        const { crashHookFromEnv } = await import('./engine/crash.js');
        const cio = io(argv);
        return runCommand(cio, {
          ...batchArgs(argv, cio.config),
          crash: crashHookFromEnv(cio.config.crashAt),
          batch: argv['batch'] as string,
          retryFailed: Boolean(argv['retryFailed']),
          retryReview: Boolean(argv['retryReview']),
        });
      },
      { stopping: PAYS },
    ),
  )

  // validate
  .command(
    'validate <csv>',
    'Check every row of a CSV and list all problems; nothing is stored or sent, no API call',
    (y) =>
      y
        .positional('csv', { type: 'string', demandOption: true, describe: 'The payout CSV or Excel workbook (.xlsx)' })
        .option('user-id', { type: 'string', describe: 'user_id for rows without one (as `run --user-id` would use; env PAYOUTS_USER_ID)' })
        .option('batch', { type: 'string', describe: 'Batch name the order_ids would be derived from (default: the file name)' })
        .option('expect-rows', { type: 'number', describe: 'Control total: the file must have exactly this many data rows' })
        .option('expect-total', { type: 'string', describe: 'Control total: its rows must add up to these rupees (e.g. 1,23,456.00)' })
        .option('accept-unterminated', { type: 'boolean', default: false, describe: 'Accept a last line without a line break' })
        .option('sheet', { type: 'string', describe: 'For an Excel file (.xlsx): the sheet to read, by its tab name', defaultDescription: 'the first sheet' })
        .example('$0 validate payroll-nov.xlsx --sheet November', 'An Excel workbook read directly (numbers that lost digits are errors)')
        .example('$0 validate payroll-nov.csv --user-id M123', 'Every problem of every row, with the row, the field and the fix')
        .example('$0 validate payroll-nov.csv --expect-rows 300 --expect-total 1,90,58,324.00', 'Also check the control totals of the payroll sheet'),
    run(async (argv) => {
      const { validateCommand } = await import('./commands/validate.js');
      const vio = io(argv);
      const userId = (argv['userId'] as string | undefined) ?? vio.config.userId;
      return validateCommand(vio, {
        csv: argv['csv'] as string,
        ...(userId ? { userId } : {}),
        ...(argv['batch'] ? { batch: argv['batch'] as string } : {}),
        ...(argv['expectRows'] !== undefined ? { expectRows: expectRows(argv['expectRows']) } : {}),
        ...(argv['expectTotal'] !== undefined ? { expectTotalPaise: expectTotal(argv['expectTotal'])! } : {}),
        acceptUnterminated: Boolean(argv['acceptUnterminated']),
        ...(argv['sheet'] !== undefined ? { sheet: String(argv['sheet']) } : {}),
      });
    }),
  )

  // status
  .command(
    'status [batch]',
    "A batch's rows by status, with rupees, from the database (no API call); without a name, the batches",
    (y) =>
      progressOption(dbOptions(y))
        .positional('batch', { type: 'string', describe: 'The batch name; omit to list the batches' })
        .option('follow', { type: 'boolean', default: false, describe: 'Keep watching while a run pays the batch (works from another terminal, on the embedded database too)' })
        .option('interval', { type: 'string', default: '2s', describe: 'With --follow: how often to look' })
        .example('$0 status', 'The batches in this database')
        .example('$0 status payroll-nov', 'Not sent / sent, outcome unknown / awaiting the bank / paid / rejected …, with rupees')
        .example('$0 status payroll-nov --follow', 'Watch a run from another terminal'),
    run(
      async (argv) => {
        const { statusCommand } = await import('./commands/status.js');
        return statusCommand(io(argv), argv['batch'] as string | undefined, {
          follow: Boolean(argv['follow']),
          intervalMs: parseDuration(argv['interval'] as string, '--interval', 2000),
        });
      },
      { stopping: 'the watch ends (a run, if any, goes on)' },
    ),
  )

  // report
  .command(
    'report <batch>',
    "Write the batch's reports again from the database (CSV for spreadsheets, JSON for scripts, HTML for people), or with --fixable the rows to correct",
    (y) =>
      dbOptions(y)
        .positional('batch', { type: 'string', demandOption: true, describe: 'The batch name (`payouts status` lists them)' })
        .option('report-dir', { type: 'string', default: 'reports', describe: 'Where <batch>.csv, .xlsx, .json, .html (and .corrections.csv) are written' })
        .option('format', { choices: ['csv', 'xlsx', 'json', 'html', 'all'] as const, default: 'all', describe: 'Which report to write (xlsx: an Excel workbook, identifiers as text, amounts in ₹, the summary on its own sheet)' })
        .option('fixable', { type: 'boolean', default: false, describe: "Write <batch>.corrections.csv instead: the invalid, refused and bank-rejected rows in the input's own columns plus a reason, to fix and run with --revise" })
        .option('time-zone', { type: 'string', describe: 'IANA time zone for the times in the reports (env PAYOUTS_TIME_ZONE)', defaultDescription: 'Asia/Kolkata' })
        .example('$0 report payroll-nov', 'reports/payroll-nov.csv, .xlsx, .json and .html')
        .example('$0 report payroll-nov --format xlsx', 'only the Excel workbook')
        .example('$0 report payroll-nov --format html', 'only the HTML report')
        .example('$0 report payroll-nov --fixable', 'reports/payroll-nov.corrections.csv, then: payouts run reports/payroll-nov.corrections.csv --batch payroll-nov --revise'),
    run(async (argv) => {
      const { reportCommand } = await import('./commands/report.js');
      const cio = io(argv);
      return reportCommand(cio, {
        batch: argv['batch'] as string,
        reportDir: argv['reportDir'] as string,
        format: argv['format'] as 'csv' | 'xlsx' | 'json' | 'html' | 'all',
        fixable: Boolean(argv['fixable']),
        timeZone: cio.config.timeZone,
      });
    }),
  )

  // reconcile
  .command(
    'reconcile <batch>',
    'Compare every row with the API, adopt final states it reports, move rows unresolved past --review-after to needs_review; never sends',
    (y) =>
      progressOption(dbOptions(apiOptions(y)))
        .positional('batch', { type: 'string', demandOption: true, describe: 'The batch name' })
        .option('review-after', { type: 'string', default: '1h', describe: 'Age after which an unresolved row needs an operator' })
        .option('dry-run', { type: 'boolean', default: false, describe: 'List mismatches, change nothing' })
        .option('rate', { type: 'number', describe: 'API requests per second', default: 5 })
        .example('$0 reconcile payroll-nov', 'Every row against GET payout/{order_id}/status; lists what needs a person'),
    run(
      async (argv) => {
        const { reconcileCommand } = await import('./commands/reconcile.js');
        return reconcileCommand(io(argv), {
          batch: argv['batch'] as string,
          reviewAfterMs: parseDuration(argv['reviewAfter'] as string, '--review-after', 3_600_000),
          dryRun: Boolean(argv['dryRun']),
          rate: argv['rate'] as number,
        });
      },
      { stopping: 'no new status checks; what was learned so far is kept and reported' },
    ),
  )

  // approve
  .command(
    'approve <batch>',
    'Approve a batch for unattended runs (also lifts a "no" given at a prompt); a corrected copy needs a new approval',
    (y) =>
      dbOptions(y)
        .positional('batch', { type: 'string', demandOption: true, describe: 'The batch name' })
        .option('note', { type: 'string', describe: 'Why, or who checked it (kept with the decision)' })
        .option('revision', { type: 'number', describe: 'The revision you checked (required once the batch was corrected; must be the current one)' })
        .option('as', { type: 'string', describe: 'Approve as this checker (required with the approval policy on): the password from a prompt or env PAYOUTS_PASSWORD' })
        .example('$0 approve payroll-nov --note "checked by finance"', 'The next `payouts resume payroll-nov --yes` (e.g. from cron) pays it')
        .example('$0 approve payroll-nov --as asha', 'With the approval policy on: a checker other than the uploader approves')
        .example('$0 approve payroll-nov --revision 2', 'A corrected batch: approve the revision you checked (`payouts status` shows it)'),
    run(async (argv) => {
      const { approveCommand } = await import('./commands/decide.js');
      return approveCommand(io(argv), { batch: argv['batch'] as string, note: argv['note'] as string | undefined, revision: argv['revision'] as number | undefined, as: argv['as'] as string | undefined });
    }),
  )

  // reject
  .command(
    'reject <batch>',
    "A checker's no: the batch's current revision is not paid (a corrected copy is a new revision to decide on)",
    (y) =>
      asOption(dbOptions(y))
        .positional('batch', { type: 'string', demandOption: true, describe: 'The batch name' })
        .option('note', { type: 'string', describe: 'Why (kept with the decision and in the audit)' })
        .option('revision', { type: 'number', describe: 'The revision you checked (must be the current one)' })
        .example('$0 reject payroll-nov --as asha --note "bank account of E17 changed"', 'Nothing more of this revision is sent'),
    run(async (argv) => {
      const { rejectCommand } = await import('./commands/access.js');
      return rejectCommand(io(argv), { batch: argv['batch'] as string, note: argv['note'] as string | undefined, revision: argv['revision'] as number | undefined, as: argv['as'] as string | undefined });
    }),
  )

  // users
  .command(
    'users <action> [name]',
    'Users of the console and of --as, with roles: maker (uploads), checker (approves), admin (users, policy), viewer (looks)',
    (y) =>
      asOption(dbOptions(y))
        .positional('action', { choices: ['add', 'list', 'disable'] as const, demandOption: true, describe: 'add, list or disable' })
        .positional('name', { type: 'string', describe: 'The user name' })
        .option('role', { choices: ['maker', 'checker', 'admin', 'viewer'], describe: 'The role of a new user' })
        .option('password-stdin', { type: 'boolean', default: false, describe: "Read the new user's password from the first line of standard input (else a prompt asks twice)" })
        .example('$0 users add ravi --role admin', 'The first user must be an admin; after that only an admin (--as) adds users')
        .example('$0 users add asha --role checker --as ravi', 'An admin adds a checker (the password is asked for both)')
        .example('$0 users list', 'Names, roles, disabled or since when'),
    run(async (argv) => {
      const { usersCommand } = await import('./commands/access.js');
      return usersCommand(io(argv), {
        action: argv['action'] as 'add' | 'list' | 'disable',
        name: argv['name'] as string | undefined,
        role: argv['role'] as string | undefined,
        as: argv['as'] as string | undefined,
        passwordStdin: Boolean(argv['passwordStdin']),
      });
    }),
  )

  // policy
  .command(
    'policy',
    'Show or set the approval policy: N checkers other than the uploader, a second one above a total (off by default)',
    (y) =>
      asOption(dbOptions(y))
        .option('checkers', { type: 'number', describe: 'Approvals each batch needs, by different checkers (1 to 5); turns the policy on' })
        .option('second-above', { type: 'string', describe: 'Above this batch total (rupees, e.g. 10,00,000) a second, different checker approves too' })
        .option('off', { type: 'boolean', default: false, describe: 'Turn the policy off (a yes, --yes or `approve` pays a batch, as before)' })
        .example('$0 policy --checkers 1 --second-above 10,00,000 --as ravi', 'One checker; two different ones for a batch above ₹10 lakh')
        .example('$0 policy', 'Show it'),
    run(async (argv) => {
      const { policyCommand } = await import('./commands/access.js');
      const second = argv['secondAbove'] as string | undefined;
      return policyCommand(io(argv), {
        checkers: argv['checkers'] as number | undefined,
        secondAbovePaise: second === undefined ? undefined : expectTotal(second, '--second-above'),
        off: Boolean(argv['off']),
        as: argv['as'] as string | undefined,
      });
    }),
  )

  // audit
  .command(
    'audit [batch]',
    'Who did what, when and from where: uploads, approvals, rejections, runs, cancels, user and policy changes (newest first)',
    (y) =>
      dbOptions(y)
        .positional('batch', { type: 'string', describe: 'Only this batch' })
        .option('limit', { type: 'number', default: 200, describe: 'At most this many entries' })
        .example('$0 audit payroll-nov', 'The trail of one batch'),
    run(async (argv) => {
      const { auditCommand } = await import('./commands/access.js');
      return auditCommand(io(argv), { batch: argv['batch'] as string | undefined, limit: argv['limit'] as number });
    }),
  )

  // cancel
  .command(
    'cancel <batch>',
    'Stop a batch for good: rows never sent are cancelled, rows already sent are followed to their end (asks first; --yes without a terminal)',
    (y) =>
      progressOption(dbOptions(apiOptions(y)))
        .positional('batch', { type: 'string', demandOption: true, describe: 'The batch name' })
        .option('yes', { type: 'boolean', default: false, describe: 'Cancel without a question' })
        .option('report-dir', { type: 'string', default: 'reports', describe: 'Where <batch>.csv and <batch>.json are written' })
        .option('poll-timeout', { type: 'string', default: '10m', describe: 'Follow rows already sent this long; still pending: exit 4' })
        .option('rate', { type: 'number', describe: 'API requests per second', default: 5 })
        .option('as', { type: 'string', describe: 'Cancel as this user (named in the audit)' })
        .example('$0 cancel payroll-nov', 'Asks, then cancels what was never sent; exit 0 once nothing is in flight')
        .epilogue(exitCodesEpilogue()),
    run(
      async (argv) => {
        const { cancelCommand } = await import('./commands/decide.js');
        return cancelCommand(io(argv), {
          batch: argv['batch'] as string,
          yes: Boolean(argv['yes']),
          reportDir: argv['reportDir'] as string,
          rate: argv['rate'] as number,
          pollTimeoutMs: parseDuration(argv['pollTimeout'] as string, '--poll-timeout', 600_000),
          as: argv['as'] as string | undefined,
        });
      },
      { stopping: PAYS },
    ),
  )

  // migrate
  .command(
    'migrate',
    'Create or upgrade the database (every command does it too; this only migrates)',
    (y) => dbOptions(y).example('DATABASE_URL=postgres://… $0 migrate', 'Prepare a PostgreSQL database before the first runners start'),
    run(async (argv) => {
      const { migrateCommand } = await import('./commands/batch.js');
      return migrateCommand(io(argv));
    }),
  )

  // demo
  .command(
    'demo',
    'Pay samples/payroll.csv end to end against an in-process sandbox and the embedded database (no setup)',
    (y) =>
      progressOption(dbOptions(y))
        .option('report-dir', { type: 'string', default: 'reports', describe: 'Where the report files are written' })
        .option('csv', { type: 'string', describe: 'Another CSV instead of the sample' })
        .example('$0 demo', 'Its database: <data dir>/demo, never a real payroll database'),
    run(
      async (argv) => {
        const { demoCommand } = await import('./commands/demo.js');
        return demoCommand(io(argv), { reportDir: argv['reportDir'] as string, csv: argv['csv'] as string | undefined });
      },
      { stopping: PAYS },
    ),
  )

  // balance
  .command(
    'balance',
    'Show the wallet balance',
    (y) => apiOptions(y).example('$0 balance --json', '{"balance": "1234567.89", "balance_paise": "123456789"}'),
    run(async (argv) => {
      const { balanceCommand } = await import('./commands/api.js');
      return balanceCommand(io(argv));
    }),
  )

  // payout-status
  .command(
    'payout-status <order-id>',
    "Show one payout's status at the API",
    (y) => apiOptions(y).positional('order-id', { type: 'string', demandOption: true, describe: 'The order_id (the report lists them)' }).example('$0 payout-status PO7D2A…', 'Status, UTR, amount and charge'),
    run(async (argv) => {
      const { payoutStatusCommand } = await import('./commands/api.js');
      return payoutStatusCommand(io(argv), argv['orderId'] as string);
    }),
  )

  // payin-status
  .command(
    'payin-status <order-id>',
    "Show one payin's status at the API",
    (y) => apiOptions(y).positional('order-id', { type: 'string', demandOption: true, describe: 'The payin order_id' }).example('$0 payin-status PI123', 'Status, UTR, amount and method'),
    run(async (argv) => {
      const { payinStatusCommand } = await import('./commands/api.js');
      return payinStatusCommand(io(argv), argv['orderId'] as string);
    }),
  )

  // payins
  .command(
    'payins',
    'List the payins stored (by payin-status lookups and confirmed webhooks)',
    (y) =>
      dbOptions(y)
        .option('status', { type: 'string', describe: 'Only this status: Approved, Rejected or Pending' })
        .option('since', { type: 'string', describe: 'Created on or after: a date (2026-11-01), an ISO time, or an age (7d, 12h)' })
        .example('$0 payins --status Approved --since 7d', 'The approved payins of the last week'),
    run(async (argv) => {
      const { payinsCommand } = await import('./commands/payins.js');
      return payinsCommand(io(argv), { status: argv['status'] as string | undefined, since: argv['since'] as string | undefined });
    }),
  )

  // doctor
  .command(
    'doctor',
    'Before a first live payroll: probe the configured API (read-only) and print the settings it needs',
    (y) =>
      apiOptions(y)
        .option('probe-initiate', {
          type: 'boolean',
          default: false,
          describe: 'Also send an initiate the server must refuse (no amount, no account) to learn how it wants the mobile number',
        })
        .example('$0 doctor', 'Credentials, IP, clock, and which signing rules the server follows, as flags and environment variables'),
    run(async (argv) => {
      const { doctorCommand } = await import('./commands/doctor.js');
      return doctorCommand(io(argv), { probeInitiate: Boolean(argv['probeInitiate']) });
    }),
  )

  // webhooks
  .command(
    'webhooks',
    "Receive Alliance's webhooks at /alliance/webhook/<token>: each hint is checked with the API (payouts and payins) and never trusted itself",
    (y) =>
      dbOptions(apiOptions(y))
        .option('port', { type: 'number', default: 4020, describe: 'Port to listen on' })
        .option('host', { type: 'string', default: '127.0.0.1', describe: 'Address to listen on (0.0.0.0 for all)' })
        .option('webhook-token', { type: 'string', describe: 'Secret path segment, 16+ URL-safe characters (env PAYOUTS_WEBHOOK_TOKEN; default: generated)' })
        .option('allow-ip', { type: 'array', string: true, describe: 'Only these addresses may post (repeatable)' })
        .option('max-body', { type: 'number', describe: 'Largest body in bytes', default: 65536 })
        .option('rate', { type: 'number', default: 5, describe: 'API requests per second for the status checks hints lead to (shared with batch runs on PostgreSQL, where these checks keep to a fifth of it)' })
        .option('idle-timeout', { type: 'string', default: '30s', describe: 'Close a connection that sends nothing for this long' })
        .option('max-connections', { type: 'number', default: 256, describe: 'Connections open at once; more are closed as they arrive' })
        .option('max-queued', { type: 'number', default: 1000, describe: 'Hints waiting for their check, per kind (payout, payin); more are dropped and counted' })
        .example('PAYOUTS_WEBHOOK_TOKEN=… $0 webhooks --port 4020 --host 0.0.0.0', 'Give Alliance http://<host>:4020/alliance/webhook/<token>'),
    run(
      async (argv) => {
        const { webhooksCommand } = await import('./commands/webhooks.js');
        return webhooksCommand(io(argv), {
          port: argv['port'] as number,
          host: argv['host'] as string,
          allowIps: argv['allowIp'] as string[] | undefined,
          maxBodyBytes: argv['maxBody'] as number | undefined,
          rate: argv['rate'] as number,
          idleTimeoutMs: parseDuration(argv['idleTimeout'] as string, '--idle-timeout', 30_000),
          maxConnections: argv['maxConnections'] as number,
          maxQueuedHints: argv['maxQueued'] as number,
        });
      },
      { stopping: 'no new webhooks are taken; hints waiting are dropped; the checks in flight finish' },
    ),
  )

  // console
  .command(
    'console',
    'The ops console in a browser: upload, approve or reject, watch progress, reports (users from `payouts users add`)',
    (y) =>
      dbOptions(apiOptions(y))
        .option('port', { type: 'number', default: 8080, describe: 'Port to listen on' })
        .option('host', { type: 'string', default: '127.0.0.1', describe: 'Address to listen on' })
        .option('report-dir', { type: 'string', default: 'reports', describe: 'Where the reports are written and served from' })
        .option('rate', { type: 'number', describe: 'API requests per second of the batches it runs' })
        .option('insecure-cookie', { type: 'boolean', default: false, describe: 'Session cookie without Secure (only for plain http on an address other than 127.0.0.1/localhost; better: https in front)' })
        .example('$0 console', 'Open http://127.0.0.1:8080 and sign in'),
    run(
      async (argv) => {
        const { consoleCommand } = await import('./commands/console.js');
        return consoleCommand(io(argv), {
          port: argv['port'] as number,
          host: argv['host'] as string,
          reportDir: argv['reportDir'] as string,
          rate: argv['rate'] as number | undefined,
          insecureCookie: argv['insecureCookie'] as boolean,
        });
      },
      { stopping: 'no new batches are started; runs in flight stop as Ctrl-C stops `payouts run`' },
    ),
  )

  // watch
  .command(
    'watch <inbox>',
    'Scheduled payroll: pay each CSV dropped in <inbox> once it stops growing, one at a time; move it to done/ or failed/ with its reports (needs --yes)',
    (y) =>
      runOptions(y)
        .positional('inbox', { type: 'string', demandOption: true, describe: 'The directory files are dropped into' })
        .option('once', { type: 'boolean', default: false, describe: 'Pay what is there, then exit (for cron); otherwise keep watching' })
        .option('stable', { type: 'string', default: '5s', describe: "How long a file's size must stay the same before it is taken" })
        .option('every', { type: 'string', default: '5s', describe: 'How often the inbox is looked at' })
        .option('retry-after', { type: 'string', default: '1m', describe: 'A run that stopped early (left in processing/) is tried again after this long' })
        .example('$0 watch /srv/payroll/inbox --yes --user-id M123 --notify-url https://hooks.slack.com/…', 'systemd: a long-running watcher (samples/payouts-watch.service)')
        .example('$0 watch /srv/payroll/inbox --once --yes --user-id M123', 'cron: pay what is there and exit')
        .epilogue(`${exitCodesEpilogue()}\nThe watcher exits with the highest code of the files it took (0 when it took none): any payroll with rows not paid, refused or unfinished makes it non-zero.`),
    run(
      async (argv) => {
        const { watchCommand } = await import('./commands/watch.js');
        const cio = io(argv);
        return watchCommand(cio, {
          ...batchArgs(argv, cio.config),
          crash: undefined,
          inbox: argv['inbox'] as string,
          once: Boolean(argv['once']),
          stableMs: parseDuration(argv['stable'] as string, '--stable', 5000),
          pollMs: parseDuration(argv['every'] as string, '--every', 5000),
          retryMs: parseDuration(argv['retryAfter'] as string, '--retry-after', 60_000),
        });
      },
      { stopping: `${PAYS}; no new file is taken from the inbox` },
    ),
  )

  // sandbox-payin
  .command(
    'sandbox-payin',
    'Create a payin in a running sandbox (its admin API), as if a customer paid',
    (y) =>
      y
        .option('order-id', { type: 'string', demandOption: true, describe: "The payin's order_id" })
        .option('amount', { type: 'string', demandOption: true, describe: 'Rupees, e.g. 100 or 1111.11' })
        .option('outcome', { choices: ['Approved', 'Rejected'], default: 'Approved', describe: 'How it settles' })
        .option('user-id', { type: 'string', describe: "The payer's user_id" })
        .option('method', { type: 'string', describe: 'Payment method (default UPI)' })
        .option('url', { type: 'string', describe: "The sandbox's URL (default ALLIANCE_BASE_URL)" })
        .option('admin-token', { type: 'string', describe: "The sandbox's admin token (env PAYOUTS_SANDBOX_ADMIN_TOKEN)" })
        .example('$0 sandbox-payin --order-id PI-1 --amount 500 --url http://127.0.0.1:4010 --admin-token …', 'The sandbox then sends the payin webhooks'),
    run(async (argv) => {
      const { sandboxPayinCommand } = await import('./commands/sandbox.js');
      return sandboxPayinCommand(io(argv), {
        orderId: argv['orderId'] as string,
        amount: argv['amount'] as string,
        outcome: argv['outcome'] as 'Approved' | 'Rejected',
        userId: argv['userId'] as string | undefined,
        method: argv['method'] as string | undefined,
        url: argv['url'] as string | undefined,
      });
    }),
  )

  // sandbox
  .command(
    'sandbox',
    'Serve a local simulation of the API (for rehearsals and tests); prints its URL and admin token',
    (y) =>
      y
        .option('port', { type: 'number', default: 4010, describe: 'Port to listen on (0: any free port)' })
        .option('host', { type: 'string', default: '127.0.0.1', describe: 'Address to listen on' })
        .option('access-key', { type: 'string', describe: 'The access key it accepts (env ALLIANCE_ACCESS_KEY)' })
        .option('secret-key', { type: 'string', describe: 'The secret key it checks signatures with (env ALLIANCE_SECRET_KEY)' })
        .option('balance', { type: 'string', default: '500000', describe: 'Starting wallet balance in rupees' })
        .option('rate', { type: 'number', describe: 'Requests per second before it answers 429' })
        .option('rate-mode', { choices: ['bucket', 'sliding'], default: 'bucket', describe: 'Count --rate as a token bucket or as arrivals in any sliding second' })
        .option('settle-ms', { type: 'number', describe: 'Pending to final after this many ms', default: 2000 })
        .option('seed', { type: 'number', describe: 'Seed for faults and UTRs (replayable)' })
        .option('webhook-url', { type: 'string', describe: 'Where it POSTs payout and payin events (none by default)' })
        .option('reject-suffix', { type: 'string', default: '0000', describe: 'Accounts ending with this are rejected by its bank' })
        // Named `dedup` so that yargs' own negation gives `--no-dedup` (an option named "no-dedup" cannot be passed).
        .option('dedup', { type: 'boolean', default: true, describe: 'Refuse a repeated order_id (422); --no-dedup executes it again (tests the client alone)' })
        .option('reencode', { choices: ['raw', 'php', 'ascii'], describe: 'Verify signatures over the raw body, or a PHP / Python (ascii) re-encoding of it' })
        .option('accept-get-body', { choices: ['empty', '{}', 'either'], default: 'either', describe: 'Which GET body lines it accepts in signatures' })
        .option('accept-timestamp', { choices: ['ms', 's'], default: 'ms', describe: 'Read the Timestamp header in milliseconds or seconds' })
        .option('require-mobile-number', { type: 'boolean', default: false, describe: 'Refuse beneficiary_mobile_no sent as a string' })
        .option('allow-ip', { type: 'array', string: true, describe: 'IP allowlist (repeatable)' })
        .option('admin-token', { type: 'string', describe: 'Token for the admin endpoints (env PAYOUTS_SANDBOX_ADMIN_TOKEN; default: generated and printed)' })
        .option('faults', { type: 'string', describe: 'Fault options as JSON, e.g. {"error5xxAfterRate":0.1}' })
        .example('$0 sandbox --port 4010 --access-key K --secret-key S', 'Then ALLIANCE_BASE_URL=http://127.0.0.1:4010 in another shell'),
    run(
      async (argv) => {
        const cio = io(argv);
        const { startSandboxFromArgs } = await import('./commands/sandbox.js');
        const sb = await startSandboxFromArgs(cio, argv);
        await new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve(), { once: true }));
        await sb.close();
        return 0;
      },
      { stopping: 'the sandbox closes' },
    ),
  )

  .demandCommand(1, 'Name a command: `payouts --help` lists them')
  .strict()
  .recommendCommands()
  .help()
  .alias('h', 'help')
  .version()
  .wrap(Math.min(110, process.stdout.columns || 110))
  .fail((msg, err) => {
    if (err) throw err;
    throw new UsageError(msg);
  });

/**
 * SIGINT and SIGTERM (Ctrl-C, `timeout`, systemd, `kill`): a command that pays stops sending, lets the
 * requests in flight finish, writes its report and exits 4. A second signal quits at once (exit 4: what
 * was in flight has an unknown outcome; `payouts resume` asks about it first). A command with nothing to
 * finish is ended by the signal as usual.
 */
function onSignal(sig: NodeJS.Signals): void {
  if (stopping === undefined) {
    process.removeAllListeners(sig);
    process.kill(process.pid, sig);
    return;
  }
  // Only a second Ctrl-C or SIGTERM quits at once: not the first after a closed output started the stop, and
  // never a hangup (one can arrive twice: from the shell and from the terminal).
  if (stop.signal.aborted && (signalled || sig === 'SIGHUP')) {
    if (sig === 'SIGHUP') return;
    screen?.clearStatus();
    if (stopping.startsWith(PAYS)) {
      writeTo(process.stderr, `payouts: quitting at once; payouts in flight have an unknown outcome: \`payouts resume ${batchName ?? '<batch>'}\` asks about them before sending anything\n`);
    }
    process.exit(EXIT.unfinished);
  }
  signalled = sig !== 'SIGHUP';
  const again = sig === 'SIGHUP' ? '' : ` ${sig === 'SIGINT' ? 'Ctrl-C' : 'The same signal'} again to quit at once.`;
  const line = stop.signal.aborted ? `Stopping already (${sig}): ${stopping}.${again}` : `Stopping (${sig}): ${stopping}.${again}`;
  if (screen) screen.line(line, 'warn');
  else writeTo(process.stderr, line + '\n');
  stop.abort();
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
// A terminal that hangs up (an ssh connection lost): the same as SIGTERM, not a process killed mid-send.
process.on('SIGHUP', onSignal);

try {
  await cli.parseAsync();
  process.exitCode = exitCode;
} catch (err) {
  const verbose = process.argv.includes('--verbose');
  const { code, message } = failureOf(err, verbose);
  screen?.clearStatus();
  const line = `payouts: ${message}`;
  if (screen) screen.line(line, 'error', { exit_code: code });
  else writeTo(process.stderr, line + '\n');
  if (verbose && err instanceof Error && err.cause) writeTo(process.stderr, `caused by: ${String((err.cause as Error).stack ?? err.cause)}\n`);
  if (process.argv.includes('--json')) writeTo(process.stdout, JSON.stringify({ error: { code, message } }, null, 2) + '\n');
  process.exitCode = code;
}
screen?.finish();
// Only this file exits; give stdout a chance to flush, and don't hang on stray handles.
setTimeout(() => process.exit(process.exitCode ?? 0), 50).unref();
