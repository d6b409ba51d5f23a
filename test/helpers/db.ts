import { randomBytes } from 'node:crypto';
import knexFactory from 'knex';
import { openDb, type Db } from '../../src/db/connect.js';

/**
 * The backends every storage test runs on: PGlite always; PostgreSQL when TEST_DATABASE_URL points at a
 * server (.ci/run starts one). Each call gets a fresh database, so test files never share state.
 */
export const BACKENDS: ('pglite' | 'postgres')[] = (process.env['TEST_DATABASE_URL'] ? ['pglite', 'postgres'] : ['pglite']).filter(
  // TEST_BACKENDS=postgres (or pglite) narrows a run to one backend, e.g. to run the long chaos suite per backend in parallel.
  (b) => !process.env['TEST_BACKENDS'] || process.env['TEST_BACKENDS'].split(',').includes(b),
) as ('pglite' | 'postgres')[];

export interface TestDb extends Db {
  /** URL of the fresh PostgreSQL database (postgres backend only), for child processes. */
  url?: string;
}

export async function freshDb(kind: 'pglite' | 'postgres', dataDir?: string): Promise<TestDb> {
  if (kind === 'pglite') return openDb({ dataDir: dataDir ?? ':memory:' });
  const admin = process.env['TEST_DATABASE_URL']!;
  const name = `t_${randomBytes(6).toString('hex')}`;
  const k = knexFactory({ client: 'pg', connection: admin, pool: { min: 0, max: 1 } });
  await k.raw(`CREATE DATABASE ${name}`);
  await k.destroy();
  const u = new URL(admin);
  u.pathname = `/${name}`;
  const db = await openDb({ databaseUrl: u.toString() });
  const close = db.close;
  return {
    ...db,
    url: u.toString(),
    close: async () => {
      await close();
      const k2 = knexFactory({ client: 'pg', connection: admin, pool: { min: 0, max: 1 } });
      await k2.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
      await k2.destroy();
    },
  };
}
