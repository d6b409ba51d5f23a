import { migrationSource } from '../db/migrations.js';
import { printJson, withDb, type CommandIO } from './context.js';

/** `payouts migrate` */
export async function migrateCommand(io: CommandIO): Promise<number> {
  return withDb(io, async (db) => {
    const [done] = (await db.knex.migrate.list({ migrationSource })) as [unknown[], unknown[]];
    if (io.json) printJson(io, { database: db.where, migrations: done.length });
    else io.out(`Database ${db.where} is up to date (${done.length} migrations)`);
    return 0;
  });
}
