import type { Knex } from 'knex';
import ClientPgLite from 'knex-pglite';
import { migrationSource } from './src/db/migrations.js';

/**
 * For the knex CLI only (`npx knex --knexfile dist/knexfile.js migrate:status`); the program itself
 * migrates on start and through `payouts migrate`. DATABASE_URL picks PostgreSQL, else PGlite in ./.payouts.
 */
const config: Knex.Config = process.env['DATABASE_URL']
  ? { client: 'pg', connection: process.env['DATABASE_URL'], migrations: { migrationSource } }
  : ({
      client: ClientPgLite,
      dialect: 'postgres',
      connection: { filename: '.payouts/pgdata' },
      migrations: { migrationSource },
    } as Knex.Config);

export default config;
