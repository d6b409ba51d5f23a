import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import type { PGlite, PGliteOptions } from '@electric-sql/pglite';
import { DatabaseError, ProgramError } from '../errors.js';
import { maskUrl } from '../log.js';
import { lockDataDir } from './dataDirLock.js';
import { migrateLatest, migrateLatestLocked } from './migrate.js';
import { defaultTemplateDir, readTemplate, tarBlob } from './template.js';

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
  /**
   * The directory of the database template a new PGlite database is made from (src/db/template.ts).
   * Default: the one `npm run build` makes (dist/pglite-template). Tests point it elsewhere.
   */
  templateDir?: string | undefined;
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
  /**
   * PGlite only: how this open came by its database: one that was there ('existing'), or a new one made from
   * the build's template ('template') or by PGlite's initdb ('initdb').
   */
  origin?: 'existing' | 'template' | 'initdb';
  /** PGlite, a new database made by initdb: why not from the template; `absent` when the build made none. */
  templateSkipped?: { absent: boolean; reason: string };
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
  return opts.databaseUrl
    ? openPostgres(opts.databaseUrl, opts.poolMax ?? 10)
    : openPglite(opts.dataDir ?? '.payouts', opts.pglite, 'templateDir' in opts ? opts.templateDir : defaultTemplateDir());
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

async function openPglite(dir: string, tuning: PgliteTuning = {}, templateDir: string | undefined): Promise<Db> {
  const t = { ...DEFAULT_PGLITE_TUNING, ...tuning };
  let release = () => {};
  let root: string | undefined;
  let dataDir: string | undefined;
  let where: string;
  if (dir === ':memory:') {
    where = 'PGlite in memory';
  } else {
    root = path.resolve(dir);
    dataDir = path.join(root, 'pgdata');
    where = `PGlite at ${dataDir}`;
    // Only the directory holding the lock is made here: whether pgdata is new can be judged only under the
    // lock, and a new one is put in place whole (from the template) or made by PGlite.
    try {
      mkdirSync(root, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new DatabaseError(`cannot create the data directory ${dataDir}: ${(err as Error).message}. Choose another with --data-dir (or PAYOUTS_DATA_DIR).`, {
        cause: err,
      });
    }
    try {
      release = await lockDataDir(root);
    } catch (err) {
      if (err instanceof ProgramError) throw err;
      throw new DatabaseError(`cannot use the data directory ${root}: ${(err as Error).message}. Choose another with --data-dir (or PAYOUTS_DATA_DIR).`, {
        cause: err,
      });
    }
  }
  let pglite: PGlite | undefined;
  let knex: Knex | undefined;
  let origin: Db['origin'];
  let templateSkipped: Db['templateSkipped'];
  try {
    if (t.baselineWasm) (await import('node:v8')).setFlagsFromString('--liftoff-only');
    const { PGlite } = await import('@electric-sql/pglite');
    const options: PGliteOptions = { startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${t.sharedBuffers}`] };
    if (root && dataDir) {
      if (isNewDataDir(dataDir)) {
        const made = await newDataDirFromTemplate(PGlite, options, root, dataDir, templateDir);
        // Only after a staging instance ran (an absent template starts none).
        if (made === true || !made.absent) await collectGarbage();
        origin = made === true ? 'template' : 'initdb';
        if (made !== true) {
          templateSkipped = made;
          // For PGlite's initdb, as before: only this user may read the payroll's data.
          try {
            mkdirSync(dataDir, { recursive: true, mode: 0o700 });
          } catch (err) {
            throw new DatabaseError(`cannot create the data directory ${dataDir}: ${(err as Error).message}. Choose another with --data-dir (or PAYOUTS_DATA_DIR).`, {
              cause: err,
            });
          }
        }
      } else {
        origin = 'existing';
      }
    }
    try {
      if (dataDir) {
        pglite = new PGlite(dataDir, options);
        await pglite.waitReady;
      } else {
        ({ pglite, origin, templateSkipped } = await newMemoryDb(PGlite, options, templateDir));
      }
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
      // A database new from the template is as empty as one from initdb: every migration applies here.
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
    origin,
    ...(templateSkipped ? { templateSkipped } : {}),
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

type PGliteClass = typeof import('@electric-sql/pglite').PGlite;

/**
 * pgdata does not exist, or is an empty directory (an earlier version made it before running initdb, and
 * was stopped before initdb wrote anything): there is nothing in it to lose. Anything else is an existing
 * database (or something a person must look at) and is opened as it is, never replaced.
 */
function isNewDataDir(dataDir: string): boolean {
  try {
    return statSync(dataDir).isDirectory() && readdirSync(dataDir).length === 0;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/**
 * Makes the new data directory from the template: loaded (PGlite's loadDataDir) into `<root>/pgdata.template-load`,
 * started once there (which is what proves the template fits this PGlite) and closed, then renamed to pgdata.
 * So pgdata appears whole or not at all: a process killed during the load leaves only the staging directory,
 * which the next open (holding the lock, so nobody else can be loading) removes. Returns true, or why not.
 * The caller holds the data directory's lock.
 */
async function newDataDirFromTemplate(
  PGlite: PGliteClass,
  options: PGliteOptions,
  root: string,
  dataDir: string,
  templateDir: string | undefined,
): Promise<true | { absent: boolean; reason: string }> {
  const template = await readTemplate(templateDir);
  if (!template.ok) return { absent: template.absent, reason: template.reason };
  const staging = path.join(root, 'pgdata.template-load');
  try {
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { mode: 0o700 });
  } catch (err) {
    return { absent: false, reason: `its staging directory ${staging} could not be made: ${(err as Error).message}` };
  }
  let pg: PGlite | undefined;
  try {
    // The checked tar, uncompressed: PGlite must not gunzip it (see checkTar in template.ts).
    pg = new PGlite(staging, { ...options, loadDataDir: tarBlob(template.tar) });
    await pg.waitReady;
    await pg.close();
  } catch (err) {
    if (pg?.ready && !pg.closed) await pg.close().catch(() => {});
    discard(staging);
    return { absent: false, reason: `PGlite could not start on it: ${(err as Error).message}` };
  }
  try {
    // rmdir removes only an empty directory: what isNewDataDir found, never a database.
    if (existsSync(dataDir)) rmdirSync(dataDir);
    renameSync(staging, dataDir);
  } catch (err) {
    discard(staging);
    return { absent: false, reason: `it could not be moved into place: ${(err as Error).message}` };
  }
  return true;
}

/** Removes a staging directory that will not be used; one left behind is removed by the next open anyway. */
function discard(staging: string): void {
  try {
    rmSync(staging, { recursive: true, force: true });
  } catch {
    /* the next open of this data directory removes it */
  }
}

/**
 * One full garbage collection, once, after the template's staging instance. Measured (BENCHMARKS.md): that
 * closed instance's WASM memory and the tar's buffers (~100 MB) stay resident until V8 happens to collect
 * them, which on the first `payouts demo` was after the run had grown, so both counted at the peak (~290
 * against ~250 MiB). `gc` is not exposed to programs; the flag set at run time gives it to a new context.
 * Best effort: without it, only the peak is higher.
 */
async function collectGarbage(): Promise<void> {
  try {
    (await import('node:v8')).setFlagsFromString('--expose-gc');
    const gc = (await import('node:vm')).runInNewContext('gc') as (() => void) | undefined;
    // After a turn of the event loop: PGlite lets go of the closed instance only once its close has settled.
    await new Promise((r) => setImmediate(r));
    gc?.();
  } catch {
    /* not available: the memory is freed at V8's next collection instead */
  }
}

/** A database in memory: from the template when there is a usable one (half the time of initdb), else initdb. */
async function newMemoryDb(
  PGlite: PGliteClass,
  options: PGliteOptions,
  templateDir: string | undefined,
): Promise<{ pglite: PGlite; origin: 'template' | 'initdb'; templateSkipped?: { absent: boolean; reason: string } }> {
  const template = await readTemplate(templateDir);
  let skipped: { absent: boolean; reason: string } = template.ok ? { absent: false, reason: '' } : { absent: template.absent, reason: template.reason };
  if (template.ok) {
    const pg = new PGlite({ ...options, loadDataDir: tarBlob(template.tar) });
    try {
      await pg.waitReady;
      return { pglite: pg, origin: 'template' };
    } catch (err) {
      if (pg.ready && !pg.closed) await pg.close().catch(() => {});
      skipped = { absent: false, reason: `PGlite could not start on it: ${(err as Error).message}` };
    }
  }
  const pg = new PGlite(options);
  await pg.waitReady;
  return { pglite: pg, origin: 'initdb', templateSkipped: skipped };
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

