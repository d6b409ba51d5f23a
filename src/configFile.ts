import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from './errors.js';

/**
 * A configuration file for scheduled runs (`--config <file>` or PAYOUTS_CONFIG): the same settings as the
 * environment variables, as JSON (`payouts.config.json`: {"ALLIANCE_BASE_URL": "…"}) or as a `.env` file
 * (KEY=VALUE lines). Read once, with the rest of the configuration (config.ts): flags win over the
 * environment, the environment over the file. A misspelt setting is refused with the nearest known name; a
 * file holding any secret (SETTINGS below) that anyone but its owner can read is refused, as ssh refuses a
 * private key others can read; test hooks are never read from a file.
 *
 * Every setting a file may hold, once: its name (the environment variable) and whether it carries a secret
 * (a key, a token, a password, or a URL whose path or userinfo is one, like a Slack incoming webhook). The
 * environment's names are read in config.ts; test/config-file.test.ts checks every name it reads is here.
 */
export const SETTINGS: Readonly<Record<string, { secret: boolean | ((value: string) => boolean) }>> = {
  ALLIANCE_BASE_URL: { secret: (v) => hasUrlPassword(v) },
  ALLIANCE_ACCESS_KEY: { secret: true },
  ALLIANCE_SECRET_KEY: { secret: true },
  ALLIANCE_TIMEOUT_MS: { secret: false },
  ALLIANCE_GET_BODY: { secret: false },
  ALLIANCE_JSON_ESCAPE: { secret: false },
  ALLIANCE_TIMESTAMP_UNIT: { secret: false },
  ALLIANCE_MOBILE_AS_NUMBER: { secret: false },
  DATABASE_URL: { secret: (v) => hasUrlPassword(v) || /(^|[?&])password=/i.test(v) },
  PAYOUTS_DATA_DIR: { secret: false },
  PAYOUTS_LOG_LEVEL: { secret: false },
  PAYOUTS_LOG_FORMAT: { secret: false },
  PAYOUTS_TIME_ZONE: { secret: false },
  PAYOUTS_USER_ID: { secret: false },
  PAYOUTS_NOTIFY_URL: { secret: true },
  PAYOUTS_WEBHOOK_TOKEN: { secret: true },
  PAYOUTS_SANDBOX_ADMIN_TOKEN: { secret: true },
  PAYOUTS_PASSWORD: { secret: true },
};

/**
 * Hooks for the crash tests: read from the process's own environment only (a test sets them on the child it
 * starts), never from a settings file, where one left behind would crash a payroll run on purpose.
 */
export const TEST_HOOKS = ['PAYOUTS_CRASH_AT'] as const;

function hasUrlPassword(v: string): boolean {
  try {
    return new URL(v).password !== '';
  } catch {
    return /:[^/@:]+@/.test(v);
  }
}

export function isSecretSetting(key: string, value: string): boolean {
  const s = SETTINGS[key]?.secret;
  return typeof s === 'function' ? s(value) : s === true;
}

/** The known setting nearest to a misspelt one (edit distance, a swap counting once), if any is near. */
export function nearestSetting(key: string): string | undefined {
  const k = key.toUpperCase();
  const names = [...Object.keys(SETTINGS), ...TEST_HOOKS, 'PAYOUTS_CONFIG'];
  // A name without its prefix (BASE_URL, NOTIFY_URL) is the prefixed one.
  const unprefixed = names.filter((n) => n.endsWith(`_${k}`));
  if (unprefixed.length === 1) return unprefixed[0];
  let best: string | undefined;
  let bestD = Infinity;
  for (const name of names) {
    const d = editDistance(k, name);
    if (d < bestD) [best, bestD] = [name, d];
  }
  // Near: a few letters off, and not most of the name (PAYOUTS_X is not "PAYOUTS_PASSWORD misspelt").
  return best !== undefined && bestD <= Math.max(2, Math.floor(best.length / 4)) && bestD < k.length / 2 ? best : undefined;
}

function editDistance(a: string, b: string): number {
  // Optimal string alignment: insertions, deletions, substitutions and adjacent swaps cost 1.
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

export function readConfigFile(file: string): Record<string, string> {
  let text: string;
  let mode: number;
  try {
    mode = statSync(file).mode;
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(
      code === 'ENOENT' ? `the configuration file ${file} does not exist: check --config (PAYOUTS_CONFIG)` : `cannot read the configuration file ${file}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const values = /\.json$/i.test(file) ? parseJson(file, text) : parseDotenv(file, text);
  for (const key of Object.keys(values)) {
    if ((TEST_HOOKS as readonly string[]).includes(key)) {
      throw new ConfigError(`${file}: ${key} is a hook for the crash tests, read from the environment only and never from a settings file: remove that line`);
    }
    if (key === 'PAYOUTS_CONFIG') throw new ConfigError(`${file}: PAYOUTS_CONFIG names the settings file itself and cannot be set inside one: remove that line`);
    if (SETTINGS[key] === undefined) {
      const near = nearestSetting(key);
      throw new ConfigError(
        `${file}: unknown setting "${key}"` +
          (near ? `: did you mean ${near}?` : `: the settings are ${Object.keys(SETTINGS).join(', ')}`) +
          ' (a misspelt setting would be ignored silently, so it is refused)',
      );
    }
  }
  const secrets = Object.keys(values).filter((k) => isSecretSetting(k, values[k]!));
  if (secrets.length > 0 && (mode & 0o077) !== 0) {
    throw new ConfigError(
      `${file} holds ${secrets.join(', ')} and can be read by ${mode & 0o007 ? 'anyone on this machine' : 'its group'} (mode ${(mode & 0o777).toString(8).padStart(3, '0')}): ` +
        `run \`chmod 600 ${path.resolve(file)}\` and keep it readable by its owner only`,
    );
  }
  return values;
}

function parseJson(file: string, text: string): Record<string, string> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(`${file} must hold one JSON object of settings, e.g. {"ALLIANCE_BASE_URL": "https://…"}`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (val === null || val === undefined) continue;
    if (typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean') throw new ConfigError(`${file}: "${k}" must be a string, number or true/false`);
    out[k] = String(val);
  }
  return out;
}

function parseDotenv(file: string, text: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new ConfigError(`${file} line ${i + 1}: expected KEY=value`);
    let value = m[2]!;
    const q = /^(['"])(.*)\1$/.exec(value);
    if (q) value = q[1] === '"' ? q[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"') : q[2]!;
    else value = value.replace(/\s+#.*$/, '');
    out[m[1]!] = value;
  });
  return out;
}
