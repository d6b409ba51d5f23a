import path from 'node:path';
import { getBatch } from '../db/batches.js';
import { BatchNotFoundError } from '../errors.js';
import { writeReports } from '../report/report.js';
import { migrationSource } from '../db/migrations.js';
import { printJson, withDb, type CommandIO } from './context.js';

/** `payouts report <batch>`: writes the report files again from the database. */
export async function reportCommand(io: CommandIO, batch: string, reportDir: string | undefined): Promise<number> {
  return withDb(io, async (db) => {
    if (!(await getBatch(db.knex, batch))) throw new BatchNotFoundError(`no batch named "${batch}": \`payouts status\` lists them`);
    const r = await writeReports(db.knex, batch, path.resolve(io.cwd, reportDir ?? 'reports'));
    if (io.json) printJson(io, { csv: r.csv, json: r.json, summary: r.summary });
    else io.out(`Report: ${r.csv} and ${r.json}`);
    return 0;
  });
}

/** `payouts migrate` */
export async function migrateCommand(io: CommandIO): Promise<number> {
  return withDb(io, async (db) => {
    const [done] = (await db.knex.migrate.list({ migrationSource })) as [unknown[], unknown[]];
    if (io.json) printJson(io, { database: db.where, migrations: done.length });
    else io.out(`Database ${db.where} is up to date (${done.length} migrations)`);
    return 0;
  });
}
