import type { Logger } from 'pino';
import { AllianceClient } from '../alliance/client.js';
import { requireApi, type Config } from '../config.js';
import { openDb, type Db } from '../db/connect.js';
import { createLogger } from '../log.js';

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
  /** Asks a person a question (only when one is watching: a TTY). */
  ask?: ((question: string) => Promise<string>) | undefined;
  /** Ctrl-C: stop gracefully. */
  stopSignal?: AbortSignal | undefined;
}

export function loggerOf(io: CommandIO): Logger {
  return io.logger ?? createLogger({ level: io.config.logLevel });
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

export async function dbOf(io: CommandIO): Promise<Db> {
  const { databaseUrl, dataDir } = io.config.db;
  const path = await import('node:path');
  return openDb({ databaseUrl, dataDir: dataDir === ':memory:' ? dataDir : path.resolve(io.cwd, dataDir) });
}

/** Opens what a command needs and closes it whatever happens. */
export async function withDb<T>(io: CommandIO, fn: (db: Db) => Promise<T>): Promise<T> {
  const db = await dbOf(io);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

export function printJson(io: CommandIO, value: unknown): void {
  io.out(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2));
}
