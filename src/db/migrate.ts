import { setTimeout as sleep } from 'node:timers/promises';
import type { Knex } from 'knex';
import { BusyError } from '../errors.js';
import { migrationSource } from './migrations.js';

/**
 * The advisory lock key of this program's migrations: arbitrary but fixed ('PAY0'), below 2^31 so pg_locks
 * shows it as classid 0, objid KEY. Advisory locks are per database.
 */
export const MIGRATION_LOCK_KEY = 0x50415930;

/** How long a start waits for another process's migration before giving up with a BusyError. */
const MIGRATION_WAIT_MS = 120_000;

/**
 * Applies pending migrations; the caller has the database to itself (PGlite's lock file, or the advisory
 * lock below). A migration killed half-way leaves knex's own lock row set, and knex would then refuse every
 * later start ("Migration table is already locked"); holding exclusive access we know nobody is migrating,
 * so that row is freed first.
 */
export async function migrateLatest(knex: Knex): Promise<void> {
  await freeKnexLock(knex);
  await knex.migrate.latest({ migrationSource });
}

/**
 * Sets knex's lock row free, in place. Not knex's forceFreeMigrationsLock: it deletes the row and inserts a
 * new one, and in that moment any knex.migrate call of another process (they create the row when the table
 * is empty, outside our advisory lock: `payouts migrate` lists migrations) can add a second row, after which
 * knex's lock (an UPDATE that must touch exactly one row) fails for ever. For the same reason, duplicate rows
 * left by such a race are reduced to one, never to none.
 */
async function freeKnexLock(knex: Knex): Promise<void> {
  if (!(await knex.schema.hasTable('knex_migrations_lock'))) return;
  await knex('knex_migrations_lock').update({ is_locked: 0 });
  await knex.raw('DELETE FROM knex_migrations_lock WHERE index <> (SELECT min(index) FROM knex_migrations_lock)');
}

/**
 * Applies pending migrations on a PostgreSQL database that other runners may be starting on at the same
 * moment. knex's own guard is a lock row in a table that it first creates if missing, so two processes on
 * a fresh database both try to create it and one fails ("relation knex_migrations already exists"). A
 * session advisory lock, held on a connection of its own (not the pool's: the migration needs those) around
 * the whole migration, makes the others wait; the server drops it if the holder dies.
 */
export async function migrateLatestLocked(knex: Knex, url: string, where: string, connectTimeoutMs: number): Promise<void> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: connectTimeoutMs, application_name: 'alliance-payouts migrate' });
  // An error on this idle connection (server restart) surfaces on its next query; don't crash the process.
  client.on('error', () => {});
  await client.connect();
  try {
    const deadline = Date.now() + MIGRATION_WAIT_MS;
    for (;;) {
      const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [MIGRATION_LOCK_KEY]);
      if (rows[0]?.ok) break;
      if (Date.now() > deadline) throw new BusyError(await holderMessage(client, where));
      await sleep(50 + Math.random() * 100);
    }
    try {
      await migrateLatest(knex);
    } finally {
      await client.query('SELECT pg_advisory_unlock($1::bigint)', [MIGRATION_LOCK_KEY]).catch(() => {});
    }
  } finally {
    await client.end().catch(() => {});
  }
}

async function holderMessage(client: import('pg').Client, where: string): Promise<string> {
  const { rows } = await client
    .query<{ pid: number; application_name: string; client_addr: string | null; backend_start: Date }>(
      `SELECT a.pid, a.application_name, a.client_addr::text AS client_addr, a.backend_start
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = $1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      [MIGRATION_LOCK_KEY],
    )
    .catch(() => ({ rows: [] }));
  const h = rows[0];
  const who = h
    ? `server process ${h.pid} (${h.application_name || 'no application name'}${h.client_addr ? ` from ${h.client_addr}` : ''}, connected ${h.backend_start.toISOString()})`
    : 'another session';
  return (
    `another process has been migrating the database at ${where} for over ${MIGRATION_WAIT_MS / 1000} s: ${who} holds the migration lock. ` +
    `Wait for it and run again; if it hangs, stop that process (or SELECT pg_terminate_backend(${h?.pid ?? '<pid>'}) on the server).`
  );
}
