/**
 * Concurrent starts on a fresh PostgreSQL database (issue 8 item 6): knex creates its migration tables if
 * missing, so two runners starting together used to fail with "relation knex_migrations already exists".
 * Runs only with TEST_DATABASE_URL; each case gets a fresh, empty database.
 */
import { randomBytes } from 'node:crypto';
import knexFactory, { type Knex } from 'knex';
import { afterAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../src/db/connect.js';
import { migrationSource } from '../src/db/migrations.js';
import { MIGRATION_LOCK_KEY } from '../src/db/migrate.js';
import { runCli } from './helpers/cli.js';

const ADMIN = process.env['TEST_DATABASE_URL'];
const created: string[] = [];

async function emptyDatabase(): Promise<string> {
  const name = `t_mig_${randomBytes(5).toString('hex')}`;
  const k = knexFactory({ client: 'pg', connection: ADMIN!, pool: { min: 0, max: 1 } });
  await k.raw(`CREATE DATABASE ${name}`);
  await k.destroy();
  created.push(name);
  const u = new URL(ADMIN!);
  u.pathname = `/${name}`;
  return u.toString();
}

async function applied(url: string): Promise<string[]> {
  const k: Knex = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
  try {
    return (await k('knex_migrations').select('name').orderBy('id')).map((r: { name: string }) => r.name);
  } finally {
    await k.destroy();
  }
}

describe.runIf(ADMIN)('migrations on a fresh PostgreSQL database, started together', () => {
  afterAll(async () => {
    const k = knexFactory({ client: 'pg', connection: ADMIN!, pool: { min: 0, max: 1 } });
    for (const n of created) await k.raw(`DROP DATABASE IF EXISTS ${n} WITH (FORCE)`).catch(() => {});
    await k.destroy();
  });

  it('eight openDb calls with separate pools at once all open, and every migration is applied once', async () => {
    const url = await emptyDatabase();
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => openDb({ databaseUrl: url, poolMax: 2 })));
    const dbs = results.filter((r): r is PromiseFulfilledResult<Db> => r.status === 'fulfilled').map((r) => r.value);
    try {
      expect(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
      const names = await applied(url);
      expect(names).toEqual((await migrationSource.getMigrations([])).map((m) => migrationSource.getMigrationName(m)));
      for (const db of dbs) expect((await db.knex('payout_rows').count('* as n'))[0]).toEqual({ n: '0' });
    } finally {
      await Promise.all(dbs.map((d) => d.close()));
    }
  });

  it('five `payouts migrate` processes started together on a fresh database all succeed', { timeout: 120_000 }, async () => {
    const url = await emptyDatabase();
    const runs = await Promise.all(Array.from({ length: 5 }, () => runCli(['migrate'], { env: { DATABASE_URL: url } })));
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    expect(new Set(await applied(url)).size).toBe((await migrationSource.getMigrations([])).length);
  });

  it('a migration killed half-way (knex lock row left set) does not block the next start', async () => {
    const url = await emptyDatabase();
    await (await openDb({ databaseUrl: url })).close();
    const k = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
    await k('knex_migrations_lock').update({ is_locked: 1 });
    await k.destroy();
    const db = await openDb({ databaseUrl: url });
    await db.close();
  });

  it('a lock table with two rows (left by a race with an unlocked knex call) is repaired, not a permanent refusal', async () => {
    const url = await emptyDatabase();
    await (await openDb({ databaseUrl: url })).close();
    const k = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
    try {
      await k('knex_migrations_lock').insert({ is_locked: 0 });
      expect((await k('knex_migrations_lock').count('* as n'))[0]).toEqual({ n: '2' });
      await (await openDb({ databaseUrl: url })).close();
      expect(await k('knex_migrations_lock').select('is_locked')).toEqual([{ is_locked: 0 }]);
    } finally {
      await k.destroy();
    }
  });

  it('waits for a migration in progress elsewhere instead of failing', async () => {
    const url = await emptyDatabase();
    // Another session holds the migration lock for a moment, as a peer migrating would.
    const holder = knexFactory({ client: 'pg', connection: url, pool: { min: 1, max: 1 } });
    await holder.raw('SELECT pg_advisory_lock(?::bigint)', [MIGRATION_LOCK_KEY]);
    let opened = false;
    const opening = openDb({ databaseUrl: url }).then((db) => {
      opened = true;
      return db;
    });
    await new Promise((r) => setTimeout(r, 700));
    expect(opened).toBe(false);
    await holder.raw('SELECT pg_advisory_unlock(?::bigint)', [MIGRATION_LOCK_KEY]);
    await holder.destroy();
    const db = await opening;
    expect(opened).toBe(true);
    await db.close();
  });
});
