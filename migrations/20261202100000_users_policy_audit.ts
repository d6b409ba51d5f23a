import type { Knex } from 'knex';

// Append-only: never edit a migration after it lands; add a new one.
//
// Maker-checker (issue 19):
// - users: who may use the console and approve from the CLI, with a role (maker, checker, admin, viewer)
//   and a password hash (scrypt, with its parameters and salt in the string); disabled, never deleted (the
//   audit names them).
// - approval_policy: one row; off by default (today's behaviour). With it on, no batch sends a payout until
//   it holds `checkers` approvals of its current revision by checkers other than its uploader, and a second,
//   different checker above `second_above_paise`.
// - audit: every action on a batch, a user or the policy: who, when, what, from where.
// - batches.uploaded_by: who uploaded it (a user of the console or of `--as`, or the operating-system
//   user of a CLI run): an uploader never approves their own batch.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('users', (t) => {
    t.bigIncrements('id').primary();
    t.text('name').notNullable().unique();
    t.text('role').notNullable();
    t.text('password_hash').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('disabled_at', { useTz: true });
  });
  await knex.raw(`ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('maker', 'checker', 'admin', 'viewer'))`);
  await knex.schema.createTable('approval_policy', (t) => {
    // A single row, id 1.
    t.integer('id').primary();
    t.boolean('enabled').notNullable().defaultTo(false);
    t.integer('checkers').notNullable().defaultTo(1);
    t.bigInteger('second_above_paise');
    t.text('updated_by');
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`ALTER TABLE approval_policy ADD CONSTRAINT approval_policy_one_row CHECK (id = 1)`);
  await knex.raw(`ALTER TABLE approval_policy ADD CONSTRAINT approval_policy_checkers CHECK (checkers BETWEEN 1 AND 5)`);
  await knex('approval_policy').insert({ id: 1, enabled: false, checkers: 1 });
  await knex.schema.createTable('audit', (t) => {
    t.bigIncrements('id').primary();
    t.timestamp('at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('actor').notNullable();
    t.text('action').notNullable();
    t.text('batch');
    t.integer('revision');
    t.jsonb('detail');
    t.text('from_where');
    t.index(['batch', 'at']);
  });
  await knex.schema.alterTable('batches', (t) => {
    t.text('uploaded_by');
  });
  // Who read each revision's file: the uploader of a corrected copy never approves that revision either.
  await knex.schema.alterTable('batch_files', (t) => {
    t.text('uploaded_by');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('batch_files', (t) => {
    t.dropColumn('uploaded_by');
  });
  await knex.schema.alterTable('batches', (t) => {
    t.dropColumn('uploaded_by');
  });
  await knex.schema.dropTable('audit');
  await knex.schema.dropTable('approval_policy');
  await knex.schema.dropTable('users');
}
