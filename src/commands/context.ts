import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { AllianceClient } from '../alliance/client.js';
import { requireApi, type Config } from '../config.js';

/** Where the scheduled samples (samples/systemd) keep their embedded database. */
export const SAMPLES_DATA_DIR = '/var/lib/payroll/data';
import { openDb, type Db } from '../db/connect.js';
import { createLogger } from '../log.js';
import { jsonText } from '../cli/jsonStyle.js';
import { PrettyLog } from '../cli/prettyLog.js';
import type { Screen } from '../cli/screen.js';
import { hostname, userInfo } from 'node:os';
import { AccessError } from '../errors.js';
import { authenticate, type Actor } from '../engine/access.js';

/** What every command gets from the entry point: where to print, the config, and how to ask. */
export interface CommandIO {
  /** Results: stdout. */
  out: (line: string) => void;
  /** Problems a person must see: stderr. */
  err?: (line: string) => void;
  /** Print machine-readable JSON instead of lines. */
  json: boolean;
  config: Config;
  /** Base for relative paths, so tests never chdir. */
  cwd: string;
  logger?: Logger;
  /**
   * Asks a person a question: only when one is there to answer (stdin, stdout and stderr all terminals).
   * Throws when the person does not answer (Ctrl-C at the prompt, end of input): that is a "no".
   */
  ask?: ((question: string) => Promise<string>) | undefined;
  /** Asks for a secret without showing it (a password): only when a person is there to answer. */
  askSecret?: ((question: string) => Promise<string>) | undefined;
  /** Ctrl-C, SIGTERM: stop gracefully. */
  stopSignal?: AbortSignal | undefined;
  /** stderr with a status block: progress, readable logs. Absent: no progress display, JSON logs. */
  screen?: Screen | undefined;
  /** Without a terminal, a progress line this often. Default 10000 ms. */
  progressEveryMs?: number | undefined;
}

/**
 * The command's logger, made once: readable lines (repeats counted) when logs go to a person's terminal,
 * JSON lines otherwise or with --log-format json. Secrets are redacted by pino before either format.
 */
export function loggerOf(io: CommandIO): Logger {
  if (io.logger) return io.logger;
  const { logFormat, logLevel } = io.config;
  const screen = io.screen;
  const pretty = logFormat === 'pretty' || (logFormat === 'auto' && Boolean(screen?.tty));
  let logger: Logger;
  if (pretty) {
    const write = (t: string) => (screen ? screen.raw(t) : (io.err ?? io.out)(t.replace(/\n$/, '')));
    const stream = new PrettyLog(write, { color: screen?.color ?? false });
    screen?.onFinish(() => stream.flush());
    logger = createLogger({ level: logLevel, destination: stream });
  } else {
    logger = createLogger({ level: logLevel, ...(screen ? { destination: { write: (t: string) => (screen.raw(t), true) } } : {}) });
  }
  io.logger = logger;
  return logger;
}

export function clientOf(io: CommandIO, logger: Logger): AllianceClient {
  const api = requireApi(io.config.api);
  return new AllianceClient({
    baseUrl: api.baseUrl,
    accessKey: api.accessKey,
    secretKey: api.secretKey,
    timeoutMs: api.timeoutMs,
    getBodyMode: api.getBodyMode,
    escape: api.escape,
    timestampUnit: api.timestampUnit,
    mobileAsNumber: api.mobileAsNumber,
    logger,
  });
}

/** The embedded database's directory as this command uses it (absolute). */
export function dataDirOf(io: CommandIO): string {
  const { dataDir } = io.config.db;
  return dataDir === ':memory:' ? dataDir : path.resolve(io.cwd, dataDir);
}

export async function dbOf(io: CommandIO): Promise<Db> {
  return openDb({ databaseUrl: io.config.db.databaseUrl, dataDir: dataDirOf(io) });
}

/** A line for people that is not a result: stderr (the status block's screen when there is one). */
export function note(io: CommandIO, line: string, level: 'info' | 'warn' | 'error' = 'info'): void {
  if (io.screen) io.screen.line(line, level);
  else (io.err ?? io.out)(line);
}

/**
 * Which database a command uses, printed by every command that opens one (a run from another directory or
 * another user must never silently use another database): stdout with the results, stderr in --json mode.
 */
export function announceDb(io: CommandIO, db: Pick<Db, 'where' | 'kind' | 'templateSkipped'>): void {
  const from = io.config.db.dataDirFrom;
  const how = db.kind === 'postgres' ? ' (DATABASE_URL)' : from === 'default' ? ' (the default; --data-dir or PAYOUTS_DATA_DIR to change)' : from === 'env' ? ' (PAYOUTS_DATA_DIR)' : '';
  const line = `Database: ${db.where}${how}`;
  if (io.json) note(io, line);
  else io.out(line);
  // Two embedded databases never see each other's batches: the duplicate guard, the repeats and the change
  // plan of one are blind to the other. A person's default and the scheduled samples' directory are the
  // likely pair: said loudly when the other one exists.
  if (db.kind === 'pglite') {
    const here = dataDirOf(io);
    for (const other of [io.config.db.defaultDataDir, SAMPLES_DATA_DIR]) {
      if (path.resolve(other) === here || !existsSync(path.join(other, 'pgdata'))) continue;
      note(
        io,
        `WARNING: another embedded database exists at ${other}; this command uses ${here}. Their batches never meet: a payroll paid in one is not seen as a duplicate by the other. ` +
          `Use one (--data-dir, PAYOUTS_DATA_DIR in the settings file the schedules use, or DATABASE_URL for PostgreSQL).`,
        'warn',
      );
    }
  }
  // A template that is there but unusable is an install problem worth one line (the database itself is
  // fine, made by initdb); none at all (not built) is the old way of making a database and says nothing.
  if (db.templateSkipped && !db.templateSkipped.absent) {
    note(io, `note: the new database was made by initdb, not from the prebuilt template: ${db.templateSkipped.reason}. \`npm run build\` makes a new template.`, 'warn');
  }
  // Before the per-user default, the database lived in ./.payouts under the working directory.
  const legacy = path.join(io.cwd, '.payouts');
  if (db.kind === 'pglite' && from === 'default' && path.resolve(legacy) !== dataDirOf(io) && existsSync(path.join(legacy, 'pgdata'))) {
    note(io, `note: ${legacy} holds a database from an earlier version (whose default it was); this command does not use it. To use it: --data-dir ${legacy} (or PAYOUTS_DATA_DIR), or move it to ${dataDirOf(io)}`);
  }
}

/** Opens what a command needs, says which database it is, and closes it whatever happens. */
export async function withDb<T>(io: CommandIO, fn: (db: Db) => Promise<T>): Promise<T> {
  const db = await dbOf(io);
  try {
    announceDb(io, db);
    return await fn(db);
  } finally {
    await db.close();
  }
}

/** --json output: one style everywhere (src/cli/jsonStyle.ts). */
export function printJson(io: CommandIO, value: unknown): void {
  io.out(jsonText(value));
}

/** The operating-system user of this command, as user@host (who ran a CLI command without --as). */
export function osUser(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return hostname();
  }
}

/**
 * Who runs this command: the user named with --as, authenticated (the password from PAYOUTS_PASSWORD or a
 * prompt that does not show it), or the operating-system user.
 */
export async function actorOf(io: CommandIO, db: Db, as: string | undefined): Promise<Actor> {
  if (!as) return { name: osUser(), from: 'cli' };
  const password = io.config.password ?? (io.askSecret ? await io.askSecret(`Password for ${as}: `) : undefined);
  if (!password) throw new AccessError(`--as ${as} needs the password: type it at a terminal, or set PAYOUTS_PASSWORD for a script`, 401);
  const user = await authenticate(db.knex, as, password);
  return { name: user.name, user, from: 'cli' };
}
