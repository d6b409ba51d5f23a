import type { Argv } from 'yargs';
import { EXIT_CODE_HELP } from '../errors.js';

/**
 * Option groups, each added only to the commands it affects: signing options only where the API is
 * called, the data directory only where the database is opened. Every option has a description, its
 * default, and its unit in the name or the value.
 */

export const API_GROUP = 'API options (or the environment):';
export const DB_GROUP = 'Database options:';

export function apiOptions<T>(y: Argv<T>) {
  return y
    .option('base-url', { group: API_GROUP, type: 'string', describe: 'API base URL (env ALLIANCE_BASE_URL); its host tells live from sandbox at the prompt' })
    .option('access-key', { group: API_GROUP, type: 'string', describe: 'API access key (env ALLIANCE_ACCESS_KEY; prefer the environment: flags show in `ps`)' })
    .option('secret-key', { group: API_GROUP, type: 'string', describe: 'API secret key (env ALLIANCE_SECRET_KEY; prefer the environment)' })
    .option('timeout', { group: API_GROUP, type: 'string', describe: 'Per-request timeout with its unit, e.g. 30s or 500ms (env ALLIANCE_TIMEOUT_MS in ms)', defaultDescription: '30s' })
    .option('get-body-mode', { group: API_GROUP, choices: ['empty', '{}'], describe: "How GET requests sign the body line (the document's rule: empty)", defaultDescription: 'empty' })
    .option('json-escape', { group: API_GROUP, choices: ['none', 'ascii', 'php'], describe: 'JSON escaping of request bodies, to match how the server checks signatures (env ALLIANCE_JSON_ESCAPE)', defaultDescription: 'none' })
    .option('timestamp-unit', { group: API_GROUP, choices: ['ms', 's'], describe: "Timestamp header in milliseconds (the document's text) or seconds (its header table); env ALLIANCE_TIMESTAMP_UNIT", defaultDescription: 'ms' })
    .option('mobile-as-number', { group: API_GROUP, type: 'boolean', describe: 'Send beneficiary_mobile_no as a JSON number, not a string; env ALLIANCE_MOBILE_AS_NUMBER', defaultDescription: 'false' });
}

export function dbOptions<T>(y: Argv<T>) {
  return y.option('data-dir', {
    group: DB_GROUP,
    type: 'string',
    describe: 'Embedded database directory when DATABASE_URL is unset (env PAYOUTS_DATA_DIR); the same from any working directory',
    defaultDescription: '$XDG_DATA_HOME/alliance-payouts or ~/.local/share/alliance-payouts',
  });
}

export function progressOption<T>(y: Argv<T>) {
  return y.option('progress-interval', {
    type: 'string',
    describe: 'Without a terminal: a plain progress line on stderr this often (a terminal gets a live display)',
    default: '10s',
  });
}

/** The options of a run (run, resume). */
/** --as NAME: act as a user of this database (maker-checker), the password from a prompt or PAYOUTS_PASSWORD. */
export function asOption<T>(y: Argv<T>) {
  return y.option('as', { type: 'string', describe: 'Act as this user (`payouts users`): the password from a prompt that does not show it, or env PAYOUTS_PASSWORD' });
}

export function runOptions<T>(y: Argv<T>) {
  return asOption(progressOption(dbOptions(apiOptions(y))))
    .option('yes', { type: 'boolean', describe: 'Pay without a question: the explicit yes an unattended run (cron, systemd, a pipe) needs', default: false })
    .option('user-id', { type: 'string', describe: 'user_id for rows without one (the merchant id the API expects; env PAYOUTS_USER_ID)' })
    .option('rate', { type: 'number', describe: 'API requests per second (payouts and status checks together)', default: 5 })
    .option('rate-margin', { type: 'string', describe: 'Added to the rate limit\'s second to absorb network jitter (R requests per 1 s + margin); raise it if the API answers 429 below its limit', default: '40ms' })
    .option('concurrency', { type: 'number', describe: 'API requests in flight at once', default: 4 })
    .option('report-dir', { type: 'string', describe: 'Where <batch>.csv, .xlsx, .json and .html are written', default: 'reports' })
    .option('time-zone', { type: 'string', describe: 'IANA time zone for the times in the reports (env PAYOUTS_TIME_ZONE)', defaultDescription: 'Asia/Kolkata' })
    .option('notify-url', { type: 'string', describe: 'POST a JSON summary here when the batch finishes, stops or fails (a Slack or Teams incoming webhook works; env PAYOUTS_NOTIFY_URL)' })
    .option('webhook-port', { type: 'number', describe: "Receive Alliance's webhooks on this port while the batch runs: each hint leads to one status check (never trusted itself); blind polling becomes the fallback" })
    .option('webhook-host', { type: 'string', describe: 'Address for --webhook-port (0.0.0.0 for all)', default: '127.0.0.1' })
    .option('webhook-token', { type: 'string', describe: 'Secret path segment of the webhook URL, 16+ URL-safe characters (env PAYOUTS_WEBHOOK_TOKEN; default: generated and printed)' })
    .option('webhook-wait', { type: 'string', describe: 'With --webhook-port: how long a pending payout waits for its webhook before the first status check, until the run has learned how long payouts take (1.5x what the webhooks show)', default: '30s' })
    .option('webhook-max-connections', { type: 'number', describe: 'With --webhook-port: connections open at once; more are closed as they arrive', default: 256 })
    .option('poll-timeout', { type: 'string', describe: 'After the last send, follow pending payouts this long (e.g. 10m); rows still pending exit 4', default: '10m' })
    .option('fee-per-payout', { type: 'string', describe: 'Estimated API charge per payout in rupees (e.g. 5.90), added in the balance check', default: '0' })
    .option('lease', { type: 'string', describe: 'How long a runner holds a claimed row before another may take it over', default: '2m' })
    .option('grace', {
      type: 'string',
      alias: 'ambiguous-grace',
      describe: 'After a request that may have been sent, how long before a "not found" status is trusted; keep it well above how long the API can take to execute a request it received (exactly-once also needs the API to refuse a repeated order_id: README)',
      default: '60s',
    })
    .option('poll-interval', { type: 'string', describe: 'First wait before checking a pending payout (grows 1.5x per check); with --webhook-port the checks wait for the webhook (--webhook-wait), never less than this', default: '2s' });
}

/** The exit codes, for the epilogue of `--help` (README "Exit codes" says the same). */
export function exitCodesEpilogue(): string {
  return ['Exit codes:', ...EXIT_CODE_HELP.map(([code, text]) => `  ${code}  ${text}`)].join('\n');
}
