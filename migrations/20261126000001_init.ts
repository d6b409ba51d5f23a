import type { Knex } from 'knex';

// Append-only: never edit a migration after it lands; add a new one.
const STATES = ['invalid', 'ready', 'submitting', 'pending', 'approved', 'rejected', 'failed', 'skipped', 'needs_review'];

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('batches', (t) => {
    t.text('name').primary();
    t.text('source_file').notNullable();
    t.text('file_sha256').notNullable();
    t.integer('revision').notNullable().defaultTo(1);
    t.text('default_user_id');
    // False while a file is being read in: a crash mid-ingest makes the next run read it again.
    t.boolean('ingest_complete').notNullable().defaultTo(false);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('started_at', { useTz: true });
    t.timestamp('finished_at', { useTz: true });
  });
  // Fencing tokens: every claim of a row takes a new one; a write carrying an old one changes nothing.
  await knex.raw('CREATE SEQUENCE payout_fence');
  await knex.schema.createTable('payout_rows', (t) => {
    t.bigIncrements('id').primary();
    t.text('batch').notNullable().references('name').inTable('batches').onDelete('CASCADE');
    t.integer('revision').notNullable().defaultTo(1);
    t.integer('row_no').notNullable();
    // NULL only for rows too broken to derive one; such rows are never sent.
    t.text('order_id').unique();
    t.text('order_id_source');
    t.text('state').notNullable();
    t.text('name');
    t.text('email');
    t.text('mobile');
    t.text('address');
    t.text('method');
    t.text('account_no');
    t.text('bank_name');
    t.text('ifsc');
    t.bigInteger('amount_paise');
    t.text('remarks');
    t.text('user_id');
    t.jsonb('errors').notNullable().defaultTo('[]');
    t.jsonb('warnings').notNullable().defaultTo('[]');
    t.bigInteger('charge_paise');
    t.text('transaction_id');
    t.text('api_status');
    t.text('api_message');
    t.text('last_error');
    t.integer('send_count').notNullable().defaultTo(0);
    t.text('lease_owner');
    t.timestamp('lease_expires_at', { useTz: true });
    // Latest moment a request under the current claim could have been sent; a 404 is trusted after it.
    t.timestamp('send_deadline', { useTz: true });
    t.bigInteger('fence').notNullable().defaultTo(0);
    t.integer('poll_count').notNullable().defaultTo(0);
    t.timestamp('next_poll_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('first_sent_at', { useTz: true });
    t.timestamp('finalized_at', { useTz: true });
    t.index(['batch', 'state']);
    t.index(['batch', 'row_no']);
  });
  await knex.raw(
    `ALTER TABLE payout_rows ADD CONSTRAINT payout_rows_state_check CHECK (state IN (${STATES.map((s) => `'${s}'`).join(', ')}))`,
  );
  // A row that may be sent must have everything the API needs.
  await knex.raw(
    `ALTER TABLE payout_rows ADD CONSTRAINT payout_rows_sendable_check CHECK (state = 'invalid' OR (order_id IS NOT NULL AND amount_paise > 0 AND account_no IS NOT NULL AND ifsc IS NOT NULL))`,
  );
  await knex.raw(`ALTER TABLE payout_rows ADD CONSTRAINT payout_rows_amount_check CHECK (amount_paise IS NULL OR amount_paise > 0)`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('payout_rows');
  await knex.raw('DROP SEQUENCE payout_fence');
  await knex.schema.dropTable('batches');
}
