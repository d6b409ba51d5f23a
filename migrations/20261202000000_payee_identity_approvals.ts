import type { Knex } from 'knex';

// Append-only: never edit a migration after it lands; add a new one.
//
// Payee identity (issue 17):
// - payout_rows (ref_key, amount_paise): a near-copy of a recent batch (most of its payments equal another
//   batch's: the same payee by account and IFSC or by reference, the same amount) is refused; the lookup by
//   reference needs this index as the one by account has payout_rows_payee_amount_idx.
// - approvals: what a person approved, by name: the revision, its file's sha256 and its totals. A yes of
//   `payouts approve` holds only for that revision and that file (before, it approved whatever revision the
//   batch held, one stored after the person looked too). Also the place later approvals (maker-checker) go.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payout_rows', (t) => {
    t.index(['ref_key', 'amount_paise'], 'payout_rows_ref_amount_idx');
  });
  await knex.schema.createTable('approvals', (t) => {
    t.bigIncrements('id').primary();
    t.text('batch').notNullable().references('name').inTable('batches').onDelete('CASCADE');
    t.integer('revision').notNullable();
    t.text('file_sha256').notNullable();
    // What the approver saw: rows to pay and their total when approving.
    t.integer('rows').notNullable();
    t.bigInteger('total_paise').notNullable();
    // 'approved' or 'rejected'.
    t.text('decision').notNullable();
    // Who (an operating-system user@host for the CLI, a user name for the console) and from where.
    t.text('by_user').notNullable();
    t.text('from_where');
    t.text('note');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['batch', 'revision']);
  });
  await knex.raw(`ALTER TABLE approvals ADD CONSTRAINT approvals_decision_check CHECK (decision IN ('approved', 'rejected'))`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('approvals');
  await knex.schema.alterTable('payout_rows', (t) => {
    t.dropIndex(['ref_key', 'amount_paise'], 'payout_rows_ref_amount_idx');
  });
}
