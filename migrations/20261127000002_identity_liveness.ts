import type { Knex } from 'knex';

// Append-only: never edit a migration after it lands; add a new one.
//
// Payout identity across databases and revisions (issue 7), "never sent means never claimed" (issue 8)
// and an operator's decisions on a batch (issue 9):
// - batches.identity: what derived order_ids hash besides the payout (name, file sha256, month), fixed
//   when the batch is created; NULL for batches created before it (their ids derive from the name).
// - batches.source_header / payout_rows.source: the input's own header and cells, for the corrections
//   file and the report's reference columns; payout_rows.reference: the payee reference (employee id).
// - payout_rows.payee_key / ref_key: normalized payee identity, how a corrected copy is matched.
// - payout_rows.first_claimed_at: set on the first claim and never cleared: a row ever claimed may exist
//   at the API, whatever its state says now.
// - payout_rows.in_file: false for a row kept from an earlier revision (ever sent) that the latest file lacks.
// - batches.decision: 'declined' at the prompt (no later run sends until confirmed again) or 'approved'.
// - state 'cancelled': never sent, and never will be (`payouts cancel`).
const STATES = ['invalid', 'ready', 'submitting', 'pending', 'approved', 'rejected', 'failed', 'skipped', 'needs_review', 'cancelled'];

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('batches', (t) => {
    t.text('identity');
    t.jsonb('source_header');
    t.text('reference_column');
    t.text('decision');
    t.timestamp('decided_at', { useTz: true });
    t.text('decision_note');
    t.timestamp('cancelled_at', { useTz: true });
  });
  await knex.schema.alterTable('payout_rows', (t) => {
    t.timestamp('first_claimed_at', { useTz: true });
    t.text('payee_key');
    t.text('ref_key');
    t.text('reference');
    t.jsonb('source');
    t.boolean('in_file').notNullable().defaultTo(true);
    t.bigInteger('replaces_row_id');
  });
  // Every row claimed so far set first_sent_at on its claim.
  await knex.raw('UPDATE payout_rows SET first_claimed_at = first_sent_at WHERE first_sent_at IS NOT NULL');
  await knex.raw('ALTER TABLE payout_rows DROP CONSTRAINT payout_rows_state_check');
  await knex.raw(
    `ALTER TABLE payout_rows ADD CONSTRAINT payout_rows_state_check CHECK (state IN (${STATES.map((s) => `'${s}'`).join(', ')}))`,
  );
  // A row that was ever claimed may exist at the API: it can never again look unsent.
  await knex.raw(
    `ALTER TABLE payout_rows ADD CONSTRAINT payout_rows_claimed_check CHECK (state NOT IN ('submitting', 'pending', 'approved', 'rejected') OR first_claimed_at IS NOT NULL)`,
  );
  await knex.schema.alterTable('payout_rows', (t) => {
    t.index(['batch', 'payee_key']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE payout_rows DROP CONSTRAINT payout_rows_claimed_check');
  await knex.raw("DELETE FROM payout_rows WHERE state = 'cancelled'");
  await knex.raw('ALTER TABLE payout_rows DROP CONSTRAINT payout_rows_state_check');
  await knex.raw(
    `ALTER TABLE payout_rows ADD CONSTRAINT payout_rows_state_check CHECK (state IN (${STATES.filter((s) => s !== 'cancelled').map((s) => `'${s}'`).join(', ')}))`,
  );
  await knex.schema.alterTable('payout_rows', (t) => {
    t.dropIndex(['batch', 'payee_key']);
    for (const c of ['first_claimed_at', 'payee_key', 'ref_key', 'reference', 'source', 'in_file', 'replaces_row_id']) t.dropColumn(c);
  });
  await knex.schema.alterTable('batches', (t) => {
    for (const c of ['identity', 'source_header', 'reference_column', 'decision', 'decided_at', 'decision_note', 'cancelled_at']) t.dropColumn(c);
  });
}
