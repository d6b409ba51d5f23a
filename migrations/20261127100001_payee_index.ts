import type { Knex } from 'knex';

// Append-only: never edit a migration after it lands; add a new one.
//
// Rows paying the same account the same amount in other recent batches are listed before a run
// (duplicate-upload protection, issue 12): looked up by payee across batches.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payout_rows', (t) => {
    t.index(['payee_key', 'amount_paise'], 'payout_rows_payee_amount_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payout_rows', (t) => {
    t.dropIndex(['payee_key', 'amount_paise'], 'payout_rows_payee_amount_idx');
  });
}
