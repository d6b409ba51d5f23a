#!/usr/bin/env node
/**
 * The command line: yargs wiring only. Every command is a plain async function in src/commands that
 * returns an exit code or throws; this is the only place that calls process.exit.
 */
import { createInterface } from 'node:readline/promises';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { AllianceError } from './alliance/errors.js';
import { loadConfig, parseDuration, parseFee, type Config, type ConfigFlags } from './config.js';
import { ConfigError, EXIT, ProgramError, UsageError } from './errors.js';
import { parseRupees } from './money.js';
import { crashHookFromEnv } from './engine/crash.js';
import { parseFaultOptions } from './sandbox/faults.js';
import { balanceCommand, payinStatusCommand, payoutStatusCommand } from './commands/api.js';
import { migrateCommand, runCommand, statusCommand, validateCommand } from './commands/batch.js';
import { reportCommand } from './commands/report.js';
import { demoCommand } from './commands/demo.js';
import { doctorCommand } from './commands/doctor.js';
import { payinsCommand } from './commands/payins.js';
import { webhooksCommand } from './commands/webhooks.js';
import { reconcileCommand } from './commands/reconcile.js';
import { sandboxCommand, sandboxPayinCommand } from './commands/sandbox.js';
import type { CommandIO } from './commands/context.js';

type Args = ConfigFlags & { json?: boolean; [k: string]: unknown };

const stop = new AbortController();

function io(argv: Args): CommandIO {
  const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  return {
    out: (line) => process.stdout.write(line + '\n'),
    err: (line) => process.stderr.write(line + '\n'),
    json: Boolean(argv.json),
    config: loadConfig(argv, process.env),
    cwd: process.cwd(),
    stopSignal: stop.signal,
    ask: interactive
      ? async (q) => {
          const rl = createInterface({ input: process.stdin, output: process.stdout });
          try {
            return await rl.question(q);
          } finally {
            rl.close();
          }
        }
      : undefined,
  };
}

let exitCode = 0;
const run = (fn: (argv: Args) => Promise<number>) => async (argv: Args) => {
  exitCode = await fn(argv);
};

const batchOptions = (y: Argv) =>
  y
    .option('rate', { type: 'number', describe: 'API requests per second (payouts and status checks together)', default: 5 })
    .option('concurrency', { type: 'number', describe: 'API requests in flight at once', default: 4 })
    .option('report-dir', { type: 'string', describe: 'Where <batch>.csv and <batch>.json are written', default: 'reports' })
    .option('poll-timeout', { type: 'string', describe: 'Stop polling after this long (e.g. 10m); rows still pending exit 4', default: '10m' })
    .option('fee-per-payout', { type: 'string', describe: 'Estimated API charge per payout in rupees, added in the balance check', default: '0' })
    .option('user-id', { type: 'string', describe: 'user_id for rows without one' })
    .option('yes', { type: 'boolean', describe: 'Do not ask for confirmation before paying', default: false })
    .option('lease', { type: 'string', describe: 'How long a runner holds a claimed row before another may take it over', default: '2m' })
    .option('ambiguous-grace', { type: 'string', describe: 'Wait after a possibly-sent request before trusting a "not found" status', default: '10s' })
    .option('poll-interval', { type: 'string', describe: 'First wait before polling a pending payout (grows 1.5x per poll)', default: '2s' });

/** The run/resume options from flags; the config is the one `io()` already read. */
function batchArgs(argv: Args, config: Config) {
  return {
    rate: argv['rate'] as number,
    concurrency: argv['concurrency'] as number,
    reportDir: argv['reportDir'] as string,
    pollTimeoutMs: parseDuration(argv['pollTimeout'] as string, '--poll-timeout', 600_000),
    feePerPayoutPaise: parseFee(argv['feePerPayout'] as string),
    userId: argv['userId'] as string | undefined,
    yes: Boolean(argv['yes']),
    engine: {
      leaseMs: parseDuration(argv['lease'] as string, '--lease', 120_000),
      ambiguousGraceMs: parseDuration(argv['ambiguousGrace'] as string, '--ambiguous-grace', 10_000),
      pollIntervalMs: parseDuration(argv['pollInterval'] as string, '--poll-interval', 2_000),
      requestTimeoutMs: config.api.timeoutMs,
    },
    crash: crashHookFromEnv(config.crashAt),
  };
}

const cli = yargs(hideBin(process.argv))
  .scriptName('payouts')
  .usage('$0 <command> [options]\n\nBatch payouts through the Alliance Payin & Payout API: validate a CSV, check the balance, pay every row exactly once, poll to final, report.')
  .option('json', { type: 'boolean', describe: 'Print results as JSON' })
  .option('verbose', { type: 'boolean', describe: 'Debug logs on stderr and stack traces on errors' })
  .option('log-level', { type: 'string', describe: 'pino log level on stderr (default warn)' })
  .option('base-url', { type: 'string', describe: 'API base URL (env ALLIANCE_BASE_URL)' })
  .option('access-key', { type: 'string', describe: 'API access key (env ALLIANCE_ACCESS_KEY; prefer the environment)' })
  .option('secret-key', { type: 'string', describe: 'API secret key (env ALLIANCE_SECRET_KEY; prefer the environment)' })
  .option('timeout', { type: 'number', describe: 'Per-request timeout in ms (default 30000)' })
  .option('get-body-mode', { choices: ['empty', '{}'], describe: 'How GET requests sign the body line (default empty, the document\'s rule)' })
  .option('json-escape', { choices: ['none', 'ascii', 'php'], describe: 'JSON escaping of request bodies, to match how the server checks signatures (default none)' })
  .option('timestamp-unit', { choices: ['ms', 's'], describe: 'Timestamp header in milliseconds (the document\'s text) or seconds (its header table); env ALLIANCE_TIMESTAMP_UNIT (default ms)' })
  .option('mobile-as-number', { type: 'boolean', describe: 'Send beneficiary_mobile_no as a JSON number, not a string; env ALLIANCE_MOBILE_AS_NUMBER (default false)' })
  .option('data-dir', { type: 'string', describe: 'Embedded database directory when DATABASE_URL is unset (default ./.payouts)' })
  .command(
    'run <csv>',
    'Validate a CSV, check the balance, pay every valid row once, poll to final and write the report',
    (y) =>
      batchOptions(y)
        .positional('csv', { type: 'string', demandOption: true, describe: 'The payout CSV' })
        .option('batch', { type: 'string', describe: 'Batch name (default: the file name); the same name again resumes it' })
        .option('dry-run', { type: 'boolean', describe: 'Stop after validation and the balance check', default: false })
        .option('revise', { type: 'boolean', describe: 'Merge a corrected copy into a batch that already paid some rows (they are not paid again)', default: false }),
    run((argv) => {
      const cio = io(argv);
      return runCommand(cio, {
        ...batchArgs(argv, cio.config),
        csv: argv['csv'] as string,
        batch: argv['batch'] as string | undefined,
        dryRun: Boolean(argv['dryRun']),
        revise: Boolean(argv['revise']),
      });
    }),
  )
  .command(
    'resume <batch>',
    'Carry on with a stored batch: resolve unknown outcomes, send what is left, poll to final',
    (y) =>
      batchOptions(y)
        .positional('batch', { type: 'string', demandOption: true })
        .option('retry-failed', { type: 'boolean', default: false, describe: 'Send again the rows the API refused (failed), status first' })
        .option('retry-review', { type: 'boolean', default: false, describe: 'Send again the rows an operator has checked (needs_review), status first' }),
    run((argv) => {
      const cio = io(argv);
      return runCommand(cio, {
        ...batchArgs(argv, cio.config),
        batch: argv['batch'] as string,
        retryFailed: Boolean(argv['retryFailed']),
        retryReview: Boolean(argv['retryReview']),
      });
    }),
  )
  .command(
    'validate <csv>',
    'Check every row of a CSV and list all problems; nothing is stored or sent',
    (y) => y.positional('csv', { type: 'string', demandOption: true }).option('user-id', { type: 'string' }).option('batch', { type: 'string' }),
    run((argv) => validateCommand(io(argv), { csv: argv['csv'] as string, ...(argv['userId'] ? { userId: argv['userId'] as string } : {}), ...(argv['batch'] ? { batch: argv['batch'] as string } : {}) })),
  )
  .command(
    'status [batch]',
    'Show a batch\'s rows by status from the database (no API call); without a name, list batches',
    (y) => y.positional('batch', { type: 'string' }),
    run((argv) => statusCommand(io(argv), argv['batch'] as string | undefined)),
  )
  .command(
    'report <batch>',
    'Write the batch\'s reports again from the database (CSV for spreadsheets, JSON for scripts, HTML for people), or with --fixable the rows to correct',
    (y) =>
      y
        .positional('batch', { type: 'string', demandOption: true, describe: 'The batch name (`payouts status` lists them)' })
        .option('report-dir', { type: 'string', default: 'reports', describe: 'Where <batch>.csv, .json, .html (and .corrections.csv) are written' })
        .option('format', { choices: ['csv', 'json', 'html', 'all'] as const, default: 'all', describe: 'Which report to write' })
        .option('fixable', { type: 'boolean', default: false, describe: 'Write <batch>.corrections.csv instead: the invalid and refused rows in the input\'s own columns plus a reason, to fix and run with --revise' })
        .option('time-zone', { type: 'string', describe: 'IANA time zone for the times in the reports (env PAYOUTS_TIME_ZONE; default Asia/Kolkata)' })
        .example('$0 report payroll-nov', 'reports/payroll-nov.csv, .json and .html')
        .example('$0 report payroll-nov --format html', 'only the HTML report')
        .example('$0 report payroll-nov --fixable', 'reports/payroll-nov.corrections.csv, then: payouts run reports/payroll-nov.corrections.csv --batch payroll-nov --revise'),
    run((argv) => {
      const cio = io(argv);
      return reportCommand(cio, {
        batch: argv['batch'] as string,
        reportDir: argv['reportDir'] as string,
        format: argv['format'] as 'csv' | 'json' | 'html' | 'all',
        fixable: Boolean(argv['fixable']),
        timeZone: cio.config.timeZone,
      });
    }),
  )
  .command(
    'reconcile <batch>',
    'Compare every row with the API, adopt final states it reports, move rows unresolved past --review-after to needs_review',
    (y) =>
      y
        .positional('batch', { type: 'string', demandOption: true })
        .option('review-after', { type: 'string', default: '1h', describe: 'Age after which an unresolved row needs an operator' })
        .option('dry-run', { type: 'boolean', default: false, describe: 'List mismatches, change nothing' })
        .option('rate', { type: 'number', describe: 'API requests per second', default: 5 }),
    run((argv) =>
      reconcileCommand(io(argv), {
        batch: argv['batch'] as string,
        reviewAfterMs: parseDuration(argv['reviewAfter'] as string, '--review-after', 3_600_000),
        dryRun: Boolean(argv['dryRun']),
        rate: argv['rate'] as number,
      }),
    ),
  )
  .command('migrate', 'Apply database migrations', (y) => y, run((argv) => migrateCommand(io(argv))))
  .command(
    'demo',
    'Run samples/payroll.csv end to end against an in-process sandbox and the embedded database',
    (y) => y.option('report-dir', { type: 'string', default: 'reports' }).option('csv', { type: 'string', describe: 'Another CSV instead of the sample' }),
    run((argv) => demoCommand(io(argv), { reportDir: argv['reportDir'] as string, csv: argv['csv'] as string | undefined })),
  )
  .command(
    'doctor',
    'Before a first live payroll: probe the configured API (read-only) and print the settings it needs',
    (y) =>
      y.option('probe-initiate', {
        type: 'boolean',
        default: false,
        describe: 'Also send an initiate the server must refuse (no amount, no account) to learn how it wants the mobile number',
      }),
    run((argv) => doctorCommand(io(argv), { probeInitiate: Boolean(argv['probeInitiate']) })),
  )
  .command('balance', 'Show the wallet balance', (y) => y, run((argv) => balanceCommand(io(argv))))
  .command(
    'payout-status <order-id>',
    'Show one payout\'s status at the API',
    (y) => y.positional('order-id', { type: 'string', demandOption: true }),
    run((argv) => payoutStatusCommand(io(argv), argv['orderId'] as string)),
  )
  .command(
    'payin-status <order-id>',
    'Show one payin\'s status at the API',
    (y) => y.positional('order-id', { type: 'string', demandOption: true }),
    run((argv) => payinStatusCommand(io(argv), argv['orderId'] as string)),
  )
  .command(
    'payins',
    'List the payins stored (by payin-status lookups and confirmed webhooks)',
    (y) =>
      y
        .option('status', { type: 'string', describe: 'Only this status: Approved, Rejected or Pending' })
        .option('since', { type: 'string', describe: 'Created on or after: a date (2026-11-01), an ISO time, or an age (7d, 12h)' }),
    run((argv) => payinsCommand(io(argv), { status: argv['status'] as string | undefined, since: argv['since'] as string | undefined })),
  )
  .command(
    'webhooks',
    'Receive Alliance webhooks at /alliance/webhook/<token>: payins are confirmed with the API and stored',
    (y) =>
      y
        .option('port', { type: 'number', default: 4020 })
        .option('host', { type: 'string', default: '127.0.0.1', describe: 'Address to listen on (0.0.0.0 for all)' })
        .option('webhook-token', { type: 'string', describe: 'Secret path segment, 16+ URL-safe characters (env PAYOUTS_WEBHOOK_TOKEN; default: generated)' })
        .option('allow-ip', { type: 'array', string: true, describe: 'Only these addresses may post' })
        .option('max-body', { type: 'number', describe: 'Largest body in bytes (default 65536)' }),
    run((argv) =>
      webhooksCommand(io(argv), {
        port: argv['port'] as number,
        host: argv['host'] as string,
        allowIps: argv['allowIp'] as string[] | undefined,
        maxBodyBytes: argv['maxBody'] as number | undefined,
      }),
    ),
  )
  .command(
    'sandbox',
    'Serve a local simulation of the API (for rehearsals and tests); prints its URL and admin token',
    (y) =>
      y
        .option('port', { type: 'number', default: 4010 })
        .option('host', { type: 'string', default: '127.0.0.1' })
        .option('balance', { type: 'string', default: '500000', describe: 'Starting wallet balance in rupees' })
        .option('rate', { type: 'number', describe: 'Requests per second before 429' })
        .option('rate-mode', { choices: ['bucket', 'sliding'], default: 'bucket', describe: 'Count --rate as a token bucket or as arrivals in any sliding second' })
        .option('settle-ms', { type: 'number', describe: 'Pending to final after this long', default: 2000 })
        .option('seed', { type: 'number', describe: 'Seed for faults and UTRs (replayable)' })
        .option('webhook-url', { type: 'string' })
        .option('reject-suffix', { type: 'string', default: '0000', describe: 'Accounts ending with this are rejected' })
        // Named `dedup` so that yargs' own negation gives `--no-dedup` (an option named "no-dedup" cannot be passed).
        .option('dedup', { type: 'boolean', default: true, describe: 'Refuse a repeated order_id (422); --no-dedup executes it again (tests the client alone)' })
        .option('reencode', { choices: ['raw', 'php', 'ascii'], describe: 'Verify signatures over the raw body, or a PHP / Python (ascii) re-encoding of it' })
        .option('accept-get-body', { choices: ['empty', '{}', 'either'], default: 'either', describe: 'GET body lines accepted in signatures' })
        .option('accept-timestamp', { choices: ['ms', 's'], default: 'ms', describe: 'Read the Timestamp header in milliseconds or seconds' })
        .option('require-mobile-number', { type: 'boolean', default: false, describe: 'Refuse beneficiary_mobile_no sent as a string' })
        .option('allow-ip', { type: 'array', string: true, describe: 'IP allowlist' })
        .option('admin-token', { type: 'string', describe: 'Token for the admin endpoints (env PAYOUTS_SANDBOX_ADMIN_TOKEN; default: generated and printed)' })
        .option('faults', { type: 'string', describe: 'Fault options as JSON, e.g. {"error5xxAfterRate":0.1}' }),
    async (argv) => {
      const cio = io(argv as Args);
      const { accessKey, secretKey } = cio.config.api;
      if (!accessKey || !secretKey) throw new ConfigError('the sandbox needs --access-key and --secret-key (or ALLIANCE_ACCESS_KEY / ALLIANCE_SECRET_KEY)');
      const balance = parseRupees(String(argv['balance']));
      if (balance === undefined) throw new ConfigError(`--balance must be rupees like 500000 or 1111.11; got "${argv['balance']}"`);
      let faults = {};
      if (argv['faults']) {
        try {
          faults = parseFaultOptions(JSON.parse(argv['faults'] as string));
        } catch (err) {
          throw new ConfigError(`--faults must be a JSON object of fault options: ${(err as Error).message}`);
        }
      }
      const sb = await sandboxCommand(cio, {
        port: argv['port'] as number,
        host: argv['host'] as string,
        accessKey,
        secretKey,
        balancePaise: balance,
        rate: argv['rate'] as number | undefined,
        rateMode: argv['rateMode'] as 'bucket' | 'sliding',
        settleMs: argv['settleMs'] as number | undefined,
        seed: argv['seed'] as number | undefined,
        webhookUrl: argv['webhookUrl'] as string | undefined,
        dedupOrderIds: argv['dedup'] !== false,
        ...(argv['reencode'] ? { reencode: argv['reencode'] as 'raw' | 'php' | 'ascii' } : {}),
        getBodyMode: argv['acceptGetBody'] as 'empty' | '{}' | 'either',
        timestampUnit: argv['acceptTimestamp'] as 'ms' | 's',
        requireMobileNumber: Boolean(argv['requireMobileNumber']),
        allowIps: argv['allowIp'] as string[] | undefined,
        rejectSuffix: argv['rejectSuffix'] as string,
        adminToken: cio.config.sandboxAdminToken,
        faults,
      });
      await new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve(), { once: true }));
      await sb.close();
    },
  )
  .command(
    'sandbox-payin',
    'Create a payin in a running sandbox (its admin API), as if a customer paid',
    (y) =>
      y
        .option('order-id', { type: 'string', demandOption: true, describe: 'The payin\'s order_id' })
        .option('amount', { type: 'string', demandOption: true, describe: 'Rupees, e.g. 100 or 1111.11' })
        .option('outcome', { choices: ['Approved', 'Rejected'], default: 'Approved', describe: 'How it settles' })
        .option('user-id', { type: 'string', describe: 'The payer\'s user_id' })
        .option('method', { type: 'string', describe: 'Payment method (default UPI)' })
        .option('url', { type: 'string', describe: 'The sandbox\'s URL (default ALLIANCE_BASE_URL)' })
        .option('admin-token', { type: 'string', describe: 'The sandbox\'s admin token (env PAYOUTS_SANDBOX_ADMIN_TOKEN)' }),
    run((argv) =>
      sandboxPayinCommand(io(argv), {
        orderId: argv['orderId'] as string,
        amount: argv['amount'] as string,
        outcome: argv['outcome'] as 'Approved' | 'Rejected',
        userId: argv['userId'] as string | undefined,
        method: argv['method'] as string | undefined,
        url: argv['url'] as string | undefined,
      }),
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

process.on('SIGINT', () => {
  if (stop.signal.aborted) process.exit(130);
  process.stderr.write('Stopping: no new payouts are sent; those in flight finish. Ctrl-C again to quit at once.\n');
  stop.abort();
});
process.on('SIGTERM', () => stop.abort());

function describe(err: unknown, verbose: boolean): { code: number; message: string } {
  const e = err as Error;
  if (err instanceof ProgramError) return { code: err.exitCode, message: e.message };
  // An API call that failed outright (unreachable, refused credentials, 5xx through every retry).
  if (err instanceof AllianceError) return { code: EXIT.apiUnavailable, message: e.message };
  return { code: EXIT.unfinished, message: verbose ? (e.stack ?? String(e)) : `${e.message ?? String(e)} (run with --verbose for details)` };
}

try {
  await cli.parseAsync();
  process.exitCode = exitCode;
} catch (err) {
  const verbose = process.argv.includes('--verbose');
  const { code, message } = describe(err, verbose);
  process.stderr.write(`payouts: ${message}\n`);
  if (verbose && err instanceof Error && err.cause) process.stderr.write(`caused by: ${String((err.cause as Error).stack ?? err.cause)}\n`);
  process.exitCode = code;
}
// Only this file exits; give stdout a chance to flush, and don't hang on stray handles.
setTimeout(() => process.exit(process.exitCode ?? 0), 50).unref();
