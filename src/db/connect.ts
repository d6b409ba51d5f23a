import { mkdirSync, openSync, writeSync, closeSync, readFileSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';
import { migrationSource } from './migrations.js';
import { maskUrl } from '../log.js';

export interface DbOptions {
  /** PostgreSQL URL. When absent, embedded PGlite in `dataDir`. */
  databaseUrl?: string | undefined;
  /** PGlite data directory. Default ./.payouts (under cwd). Use ':memory:' for a throwaway database. */
  dataDir?: string;
  /** Pool size for PostgreSQL. Default 10. */
  poolMax?: number;
}

export interface Db {
  knex: Knex;
  kind: 'postgres' | 'pglite';
  /** Where the data lives, safe to print (no password). */
  where: string;
  close(): Promise<void>;
}

/**
 * Opens the database and applies pending migrations.
 *
 * PGlite is one connection in one process: a second process on the same directory would corrupt it,
 * so a lock file refuses that with a clear message. Several runners on one batch need PostgreSQL.
 */
export async function openDb(opts: DbOptions = {}): Promise<Db> {
  let knex: Knex;
  let kind: Db['kind'];
  let where: string;
  let release = () => {};
  if (opts.databaseUrl) {
    kind = 'postgres';
    where = maskUrl(opts.databaseUrl);
    knex = knexFactory({
      client: 'pg',
      connection: opts.databaseUrl,
      pool: { min: 0, max: opts.poolMax ?? 10 },
    });
    try {
      await knex.raw('select 1');
    } catch (err) {
      await knex.destroy();
      throw new Error(`cannot connect to PostgreSQL at ${where}: ${(err as Error).message}`, { cause: err });
    }
  } else {
    kind = 'pglite';
    const dir = opts.dataDir ?? '.payouts';
    if (dir === ':memory:') {
      where = 'PGlite in memory';
      knex = knexFactory({ client: ClientPgLite, dialect: 'postgres', connection: {} } as Knex.Config);
    } else {
      const dbDir = path.resolve(dir, 'pgdata');
      mkdirSync(dbDir, { recursive: true, mode: 0o700 });
      release = lockDataDir(path.resolve(dir));
      where = `PGlite at ${dbDir}`;
      knex = knexFactory({ client: ClientPgLite, dialect: 'postgres', connection: { filename: dbDir } } as Knex.Config);
    }
  }
  try {
    await knex.migrate.latest({ migrationSource });
  } catch (err) {
    await knex.destroy();
    release();
    throw new Error(`migrating the database (${where}) failed: ${(err as Error).message}`, { cause: err });
  }
  return {
    knex,
    kind,
    where,
    close: async () => {
      await knex.destroy();
      release();
    },
  };
}


/** A pid lock beside PGlite's data: stale locks (dead pid on this host) are taken over. */
function lockDataDir(dir: string): () => void {
  const lock = path.join(dir, 'lock');
  const me = `${hostname()}:${process.pid}`;
  for (let i = 0; i < 2; i++) {
    try {
      const fd = openSync(lock, 'wx', 0o600);
      writeSync(fd, me);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(lock, 'utf8') === me) unlinkSync(lock);
        } catch {
          /* already gone */
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let holder = '';
      try {
        holder = readFileSync(lock, 'utf8');
      } catch {
        continue;
      }
      const [host, pidText] = holder.split(':');
      const pid = Number(pidText);
      const alive = host !== hostname() || isAlive(pid);
      if (alive && holder !== me) {
        throw new Error(
          `the data directory ${dir} is in use by process ${holder}: PGlite allows one process at a time. ` +
            `Wait for it to finish, or set DATABASE_URL to use PostgreSQL for concurrent runners.`,
        );
      }
      try {
        unlinkSync(lock);
      } catch {
        /* raced with another taker */
      }
    }
  }
  throw new Error(`could not lock the data directory ${dir}`);
}

export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
