import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import type { PGlite, PGliteOptions } from '@electric-sql/pglite';
import { DatabaseError, ProgramError } from '../errors.js';
import { maskUrl } from '../log.js';
import { lockDataDir } from './dataDirLock.js';
import { migrateLatest, migrateLatestLocked } from './migrate.js';

export { isAlive } from '../proc.js';

export interface DbOptions {
  /** PostgreSQL URL. When absent, embedded PGlite in `dataDir`. */
  databaseUrl?: string | undefined;
  /** PGlite data directory. Default ./.payouts (under cwd). Use ':memory:' for a throwaway database. */
  dataDir?: string;
  /** Pool size for PostgreSQL. Default 10. */
  poolMax?: number;
  /** PGlite's memory settings; the defaults are what BENCHMARKS.md "Footprint" measured. */
  pglite?: PgliteTuning;
}

export interface PgliteTuning {
  /**
   * PostgreSQL's shared_buffers inside PGlite. Default '16MB' (PGlite's own default is 128MB, which the WASM
   * heap fills as pages are read: ~110 MB more resident memory for no measured gain, the files below it
   * being in the OS page cache anyway).
   */
  sharedBuffers?: string;
  /**
   * Compile PGlite's WebAssembly with V8's baseline compiler only (no optimising tier). Default true: it
   * opens faster and keeps ~40 MB of optimised code out of memory, and measured no slower on this
   * program's statements. A process-wide V8 flag, set once before the module is compiled.
   */
  baselineWasm?: boolean;
}

export interface Db {
  knex: Knex;
  kind: 'postgres' | 'pglite';
  /** Where the data lives, safe to print (no password). */
  where: string;
  close(): Promise<void>;
}

export const DEFAULT_PGLITE_TUNING: Required<PgliteTuning> = { sharedBuffers: '16MB', baselineWasm: true };

/** Waits for a PostgreSQL connection this long before saying the server cannot be reached. */
const CONNECT_TIMEOUT_MS = 30_000;

/**
 * Opens the database and applies pending migrations.
 *
 * PGlite is one connection in one process: a second process on the same directory would corrupt it,
 * so a lock file refuses that with a BusyError naming the holder. Several runners on one batch need
 * PostgreSQL; there, migrations are serialised across processes by an advisory lock (src/db/migrate.ts).
 *
 * PGlite and knex are imported here, when a database is opened, not when the program starts: commands
 * that need no database (help, validate, the API commands) never load them.
 *
 * Every failure is a ProgramError: BusyError (exit 5) when another process holds the data, DatabaseError
 * (exit 2) when the database cannot be reached, opened or migrated, with what to check.
 */
export async function openDb(opts: DbOptions = {}): Promise<Db> {
  return opts.databaseUrl ? openPostgres(opts.databaseUrl, opts.poolMax ?? 10) : openPglite(opts.dataDir ?? '.payouts', opts.pglite);
}

async function openPostgres(url: string, poolMax: number): Promise<Db> {
  const where = maskUrl(url);
  const { default: knexFactory } = await import('knex');
  const knex = knexFactory({
    client: 'pg',
    connection: { connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, application_name: 'alliance-payouts' },
    pool: { min: 0, max: poolMax },
  });
  try {
    await knex.raw('select 1');
  } catch (err) {
    await knex.destroy().catch(() => {});
    throw new DatabaseError(`cannot connect to PostgreSQL at ${where}: ${postgresProblem(err)}`, { cause: err });
  }
  try {
    await migrateLatestLocked(knex, url, where, CONNECT_TIMEOUT_MS);
  } catch (err) {
    await knex.destroy().catch(() => {});
    throw asProgramError(err, `migrating the database at ${where} failed`);
  }
  return { knex, kind: 'postgres', where, close: () => knex.destroy() };
}

async function openPglite(dir: string, tuning: PgliteTuning = {}): Promise<Db> {
  const t = { ...DEFAULT_PGLITE_TUNING, ...tuning };
  let release = () => {};
  let dataDir: string | undefined;
  let where: string;
  if (dir === ':memory:') {
    where = 'PGlite in memory';
  } else {
    const root = path.resolve(dir);
    dataDir = path.join(root, 'pgdata');
    where = `PGlite at ${dataDir}`;
    try {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new DatabaseError(`cannot create the data directory ${dataDir}: ${(err as Error).message}. Choose another with --data-dir (or PAYOUTS_DATA_DIR).`, {
        cause: err,
      });
    }
    release = await lockDataDir(root);
  }
  let pglite: PGlite | undefined;
  let knex: Knex | undefined;
  try {
    if (t.baselineWasm) (await import('node:v8')).setFlagsFromString('--liftoff-only');
    const { PGlite } = await import('@electric-sql/pglite');
    const options: PGliteOptions = { startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${t.sharedBuffers}`] };
    try {
      pglite = new PGlite(dataDir, options);
      await pglite.waitReady;
    } catch (err) {
      throw new DatabaseError(
        `cannot open the embedded database ${where}: ${(err as Error).message}. ` +
          `If the directory holds something else or was damaged, move it away (or use --data-dir for a new one); it is never changed on failure.`,
        { cause: err },
      );
    }
    const { default: knexFactory } = await import('knex');
    const { default: ClientPgLite } = await import('knex-pglite');
    // The instance is passed in (not a file name) so PGlite gets our options and its errors are ours to word.
    knex = knexFactory({ client: ClientPgLite, dialect: 'postgres', connection: { pglite } } as unknown as Knex.Config);
    try {
      await migrateLatest(knex);
    } catch (err) {
      throw asProgramError(err, `migrating the database ${where} failed`);
    }
  } catch (err) {
    await knex?.destroy().catch(() => {});
    if (pglite && !pglite.closed) await pglite.close().catch(() => {});
    release();
    throw err;
  }
  const k = knex;
  const p = pglite;
  return {
    knex: k,
    kind: 'pglite',
    where,
    close: async () => {
      try {
        await k.destroy();
        // knex closes PGlite only if it ever handed out the connection.
        if (!p.closed) await p.close();
      } finally {
        release();
      }
    },
  };
}

/** A PostgreSQL connection failure in words a person can act on. */
function postgresProblem(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const msg = e.message ?? String(err);
  switch (e.code) {
    case 'ECONNREFUSED':
      return `connection refused (${msg}): is the server running, and are host and port in DATABASE_URL right?`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `unknown host (${msg}): check the host name in DATABASE_URL`;
    case '28P01':
    case '28000':
      return `${msg}: check the user and password in DATABASE_URL`;
    case '3D000':
      return `${msg}: create it (createdb) or fix the database name in DATABASE_URL`;
    default:
      if (/timeout/i.test(msg)) return `no answer within ${CONNECT_TIMEOUT_MS / 1000} s (${msg}): is the server reachable from here?`;
      return msg;
  }
}

function asProgramError(err: unknown, what: string): ProgramError {
  if (err instanceof ProgramError) return err;
  return new DatabaseError(`${what}: ${(err as Error).message ?? String(err)}`, { cause: err });
}

