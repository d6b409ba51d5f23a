import type { Knex } from 'knex';

// Append-only: never edit a migration after it lands; add a new one.
//
// One rate budget per API account, shared by every runner on this database (issue 10): the next free
// request slot (database time), and the AIMD factor after 429s. Runners reserve a few slots at a time; a
// runner that dies simply leaves its last few slots unused.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('rate_budget', (t) => {
    // A hash of the API's base URL and access key: never the key itself.
    t.text('account').primary();
    t.timestamp('next_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.double('factor').notNullable().defaultTo(1);
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('rate_budget');
}
