import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from './errors.js';

/**
 * A configuration file for scheduled runs (`--config <file>` or PAYOUTS_CONFIG): the same settings as the
 * environment variables, as JSON (`payouts.config.json`: {"ALLIANCE_BASE_URL": "…"}) or as a `.env` file
 * (KEY=VALUE lines). Read once, with the rest of the configuration (config.ts): flags win over the
 * environment, the environment over the file. A file holding the secret key that anyone but its owner can
 * read is refused, as ssh refuses a private key others can read.
 */
const SETTING = /^(ALLIANCE_[A-Z0-9_]+|PAYOUTS_[A-Z0-9_]+|DATABASE_URL)$/;
const SECRETS = ['ALLIANCE_SECRET_KEY', 'ALLIANCE_ACCESS_KEY', 'DATABASE_URL'];

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
    if (!SETTING.test(key)) {
      throw new ConfigError(`${file}: unknown setting "${key}": settings are the environment variable names (ALLIANCE_*, PAYOUTS_*, DATABASE_URL); see \`payouts --help\``);
    }
  }
  const secret = SECRETS.find((k) => values[k] !== undefined && (k !== 'DATABASE_URL' || /:[^/@]+@/.test(values[k]!)));
  if (secret && (mode & 0o077) !== 0) {
    throw new ConfigError(
      `${file} holds ${secret} and can be read by ${mode & 0o007 ? 'anyone on this machine' : 'its group'} (mode ${(mode & 0o777).toString(8).padStart(3, '0')}): ` +
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
