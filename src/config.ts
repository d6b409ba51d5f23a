import { homedir } from 'node:os';
import path from 'node:path';
import {
  GET_BODY_MODES,
  JSON_ESCAPE_MODES,
  TIMESTAMP_UNITS,
  type GetBodyMode,
  type JsonEscapeMode,
  type TimestampUnit,
} from './alliance/signing.js';
import { parseRupees, type Paise } from './money.js';
import { ConfigError } from './errors.js';
import { readConfigFile } from './configFile.js';
import { maskUrl } from './maskUrl.js';

/**
 * Configuration, read once: flags, then the environment, then defaults. This is the only module that
 * looks at environment variables (main.ts hands it process.env); everything else gets a Config.
 */
export interface ApiConfig {
  baseUrl: string | undefined;
  accessKey: string | undefined;
  secretKey: string | undefined;
  /** Per-request timeout, ms. Default 30000. */
  timeoutMs: number;
  /** GET body line in the signature. Default 'empty' (the document's rule). */
  getBodyMode: GetBodyMode;
  /** JSON escaping of bodies (and so of what is signed). Default 'none'. */
  escape: JsonEscapeMode;
  /** Timestamp header in ms (the document's text) or s (its header table). Default 'ms'. */
  timestampUnit: TimestampUnit;
  /** beneficiary_mobile_no as a JSON number (cURL and signature examples) instead of a string. Default false. */
  mobileAsNumber: boolean;
}

/**
 * The flag and environment variable of each setting that picks between the API document's contradictory
 * rules (README "Decisions where the API document contradicts itself"); `payouts doctor` prints them.
 */
export const API_RULE_SETTINGS = {
  getBodyMode: { flag: '--get-body-mode', env: 'ALLIANCE_GET_BODY' },
  escape: { flag: '--json-escape', env: 'ALLIANCE_JSON_ESCAPE' },
  timestampUnit: { flag: '--timestamp-unit', env: 'ALLIANCE_TIMESTAMP_UNIT' },
  mobileAsNumber: { flag: '--mobile-as-number', env: 'ALLIANCE_MOBILE_AS_NUMBER' },
} as const;

export interface DbConfig {
  /** PostgreSQL when set; otherwise embedded PGlite in dataDir. */
  databaseUrl: string | undefined;
  /**
   * The embedded database's directory. Default: a per-user location (`$XDG_DATA_HOME/alliance-payouts`, else
   * `~/.local/share/alliance-payouts`), the same from every working directory, so a scheduled run started
   * elsewhere sees the batches a person started by hand. A relative --data-dir is taken from the working directory.
   */
  dataDir: string;
  /** Where dataDir came from, for the line every command prints. */
  dataDirFrom: 'flag' | 'env' | 'default';
  /** This user's default data directory (where a person's commands keep their data without settings). */
  defaultDataDir: string;
}

/** How logs reach stderr: readable lines (a terminal), JSON lines (anything else), or decided by whether stderr is a terminal. */
export const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface Config {
  api: ApiConfig;
  db: DbConfig;
  logLevel: string;
  /** Default 'auto': pretty when stderr is a terminal, JSON otherwise. */
  logFormat: LogFormat;
  /** ANSI colours on a terminal; off with NO_COLOR (no-color.org). */
  color: boolean;
  verbose: boolean;
  /** Crash testing only: PAYOUTS_CRASH_AT=point:n kills the process with SIGKILL at that point. */
  crashAt: string | undefined;
  /** IANA time zone of the times in reports (--time-zone, PAYOUTS_TIME_ZONE). Default Asia/Kolkata. */
  timeZone: string;
  /** Incoming webhook told when a batch finishes, stops or fails (--notify-url, PAYOUTS_NOTIFY_URL). */
  notifyUrl: string | undefined;
  /** The secret path segment of the webhook receiver (`--webhook-token`, PAYOUTS_WEBHOOK_TOKEN). */
  webhookToken: string | undefined;
  /** The sandbox's admin token (`--admin-token`, PAYOUTS_SANDBOX_ADMIN_TOKEN). */
  sandboxAdminToken: string | undefined;
  /** The password of the `--as` user (PAYOUTS_PASSWORD), for scripts; a prompt asks otherwise. */
  password: string | undefined;
  /** user_id for rows without one (`--user-id`, PAYOUTS_USER_ID): the merchant id, for scheduled runs. */
  userId: string | undefined;
}

export interface ConfigFlags {
  /** A configuration file of settings (JSON or KEY=value), under the environment. */
  config?: string | undefined;
  baseUrl?: string | undefined;
  accessKey?: string | undefined;
  secretKey?: string | undefined;
  /** A duration with its unit ("30s", "500ms"). */
  timeout?: string | number | undefined;
  getBodyMode?: string | undefined;
  jsonEscape?: string | undefined;
  timestampUnit?: string | undefined;
  mobileAsNumber?: boolean | undefined;
  webhookToken?: string | undefined;
  adminToken?: string | undefined;
  dataDir?: string | undefined;
  databaseUrl?: string | undefined;
  logLevel?: string | undefined;
  logFormat?: string | undefined;
  verbose?: boolean | undefined;
  timeZone?: string | undefined;
  notifyUrl?: string | undefined;
}

/** The per-user data directory: XDG's data home, else ~/.local/share. */
export function defaultDataDir(env: Record<string, string | undefined>): string {
  const xdg = env['XDG_DATA_HOME'];
  // XDG says a relative XDG_DATA_HOME is invalid and must be ignored.
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'alliance-payouts');
  return path.join(env['HOME'] || homedir(), '.local', 'share', 'alliance-payouts');
}


function pick<T extends string>(value: string | undefined, allowed: readonly T[], what: string, fallback: T): T {
  if (value === undefined || value === '') return fallback;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(`${what} must be one of ${allowed.join(', ')}; got "${value}"`);
  }
  return value as T;
}

function bool(value: boolean | string | undefined, what: string, fallback: boolean): boolean {
  if (value === undefined || value === '') return fallback;
  if (typeof value === 'boolean') return value;
  const v = value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new ConfigError(`${what} must be true or false; got "${value}"`);
}

function positiveInt(value: string | number | undefined, what: string, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new ConfigError(`${what} must be a positive number; got "${value}"`);
  return Math.round(n);
}

export function loadConfig(flags: ConfigFlags, processEnv: Record<string, string | undefined>): Config {
  // A configuration file (--config, PAYOUTS_CONFIG) sits under the environment: flags > env > file > defaults.
  const file = flags.config ?? (processEnv['PAYOUTS_CONFIG'] || undefined);
  const env = file ? { ...readConfigFile(file), ...definedOnly(processEnv) } : processEnv;
  const verbose = flags.verbose ?? false;
  return {
    api: {
      baseUrl: flags.baseUrl ?? env['ALLIANCE_BASE_URL'],
      accessKey: flags.accessKey ?? env['ALLIANCE_ACCESS_KEY'],
      secretKey: flags.secretKey ?? env['ALLIANCE_SECRET_KEY'],
      timeoutMs:
        flags.timeout !== undefined
          ? parseDurationWithUnit(flags.timeout, '--timeout')
          : positiveInt(env['ALLIANCE_TIMEOUT_MS'], 'the request timeout in ms (ALLIANCE_TIMEOUT_MS)', 30_000),
      getBodyMode: pick(flags.getBodyMode ?? env['ALLIANCE_GET_BODY'], GET_BODY_MODES, '--get-body-mode (ALLIANCE_GET_BODY)', 'empty'),
      escape: pick(flags.jsonEscape ?? env['ALLIANCE_JSON_ESCAPE'], JSON_ESCAPE_MODES, '--json-escape (ALLIANCE_JSON_ESCAPE)', 'none'),
      timestampUnit: pick(flags.timestampUnit ?? env['ALLIANCE_TIMESTAMP_UNIT'], TIMESTAMP_UNITS, '--timestamp-unit (ALLIANCE_TIMESTAMP_UNIT)', 'ms'),
      mobileAsNumber: bool(flags.mobileAsNumber ?? env['ALLIANCE_MOBILE_AS_NUMBER'], '--mobile-as-number (ALLIANCE_MOBILE_AS_NUMBER)', false),
    },
    db: {
      databaseUrl: flags.databaseUrl ?? (env['DATABASE_URL'] || undefined),
      dataDir: flags.dataDir ?? (env['PAYOUTS_DATA_DIR'] || defaultDataDir(env)),
      dataDirFrom: flags.dataDir !== undefined ? 'flag' : env['PAYOUTS_DATA_DIR'] ? 'env' : 'default',
      defaultDataDir: defaultDataDir(env),
    },
    logLevel: flags.logLevel ?? env['PAYOUTS_LOG_LEVEL'] ?? (verbose ? 'debug' : 'warn'),
    logFormat: pick(flags.logFormat ?? env['PAYOUTS_LOG_FORMAT'], LOG_FORMATS, '--log-format (PAYOUTS_LOG_FORMAT)', 'auto'),
    color: !env['NO_COLOR'],
    verbose,
    // A test hook: the process's own environment only (configFile.ts refuses it in a file).
    crashAt: processEnv['PAYOUTS_CRASH_AT'] || undefined,
    timeZone: timeZone(flags.timeZone ?? (env['PAYOUTS_TIME_ZONE'] || undefined) ?? 'Asia/Kolkata'),
    notifyUrl: notifyUrl(flags.notifyUrl ?? (env['PAYOUTS_NOTIFY_URL'] || undefined)),
    webhookToken: flags.webhookToken ?? (env['PAYOUTS_WEBHOOK_TOKEN'] || undefined),
    sandboxAdminToken: flags.adminToken ?? (env['PAYOUTS_SANDBOX_ADMIN_TOKEN'] || undefined),
    password: env['PAYOUTS_PASSWORD'] || undefined,
    userId: env['PAYOUTS_USER_ID'] || undefined,
  };
}

function timeZone(tz: string): string {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
  } catch {
    throw new ConfigError(`--time-zone (PAYOUTS_TIME_ZONE) must be an IANA time zone such as Asia/Kolkata or UTC; got "${tz}"`);
  }
  return tz;
}

function notifyUrl(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  let ok = false;
  try {
    ok = ['http:', 'https:'].includes(new URL(url).protocol);
  } catch {
    ok = false;
  }
  // The URL itself is a secret (Slack and Teams keep the token in its path): never echo it.
  if (!ok) throw new ConfigError('--notify-url (PAYOUTS_NOTIFY_URL) must be an http(s) URL, e.g. a Slack or Teams incoming webhook');
  return url;
}

/** The API settings a command that talks to the API cannot do without. */
export type CompleteApiConfig = ApiConfig & { baseUrl: string; accessKey: string; secretKey: string };

export function requireApi(api: ApiConfig): CompleteApiConfig {
  const missing: string[] = [];
  if (!api.baseUrl) missing.push('ALLIANCE_BASE_URL (or --base-url)');
  if (!api.accessKey) missing.push('ALLIANCE_ACCESS_KEY (or --access-key)');
  if (!api.secretKey) missing.push('ALLIANCE_SECRET_KEY (or --secret-key)');
  if (missing.length) {
    throw new ConfigError(
      `missing ${missing.join(', ')}: set them in the environment. To rehearse without the real API, start \`payouts sandbox\` and point ALLIANCE_BASE_URL at it, or run \`payouts demo\`.`,
    );
  }
  // A malformed URL is a setting to fix (exit 2), caught before any client or database is opened.
  let url: URL | undefined;
  try {
    url = new URL(api.baseUrl!);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) {
    throw new ConfigError(`ALLIANCE_BASE_URL (or --base-url) "${url ? maskUrl(api.baseUrl!) : api.baseUrl}" is not an http(s) URL: use e.g. https://api.example.com`);
  }
  if (url.search || url.hash) {
    // Not echoed: a query is where a token would be.
    throw new ConfigError(`ALLIANCE_BASE_URL (or --base-url) must be the API's base address without a query or fragment (${maskUrl(url.origin + url.pathname)}…): e.g. https://api.example.com`);
  }
  return api as CompleteApiConfig;
}

/** "--fee-per-payout 5.90" -> 590n */
export function parseFee(text: string | number | undefined): Paise {
  if (text === undefined || text === '') return 0n;
  const p = parseRupees(String(text));
  if (p === undefined) throw new ConfigError(`--fee-per-payout must be rupees like 5.90; got "${text}"`);
  return p;
}

/**
 * A rupee amount a person types: "1,23,456.00", "123456", "₹1,23,456.50" (Indian or western grouping) -> paise.
 * Undefined for anything else (negative, more than two decimals, letters).
 */
export function parseRupeeInput(text: string | number): Paise | undefined {
  const s = String(text).trim().replace(/^₹\s*/, '');
  // Commas only as digit-group separators, never after the point.
  if (!/^\d{1,3}(,\d{2,3})*(\.\d{1,2})?$|^\d+(\.\d{1,2})?$/.test(s)) return undefined;
  return parseRupees(s.replace(/,/g, ''));
}

/**
 * A duration that must carry its unit ("30s", "500ms", "2m"): for options whose bare number meant
 * milliseconds in an earlier version, so "500" is refused instead of silently read as 500 seconds.
 */
export function parseDurationWithUnit(text: string | number, what: string): number {
  const t = String(text).trim();
  if (/^\d+(\.\d+)?$/.test(t)) throw new ConfigError(`${what} needs a unit: ${t}s or ${t}ms (a bare number is ambiguous); got "${t}"`);
  const ms = parseDuration(t, what, 0);
  if (!(ms > 0)) throw new ConfigError(`${what} must be longer than 0; got "${t}"`);
  return ms;
}

/** "90s", "10m", "1h", "500ms" or plain seconds -> ms */
export function parseDuration(text: string | number | undefined, what: string, fallbackMs: number): number {
  if (text === undefined || text === '') return fallbackMs;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(String(text).trim());
  if (!m) throw new ConfigError(`${what} must be a duration like 90s, 10m or 1h; got "${text}"`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!);
}

function definedOnly(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') out[k] = v;
  return out;
}
