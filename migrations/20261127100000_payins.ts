import type { Knex } from 'knex';

// Append-only: never edit a migration after it lands; add a new one.
//
// Payins (issue 11): what the payin status API said about each payin this program has seen, by lookup
// (`payouts payin-status`) or confirmed after a webhook hint. A webhook body is never stored as fact:
// raw_event keeps only which event arrived and when; every other column comes from the authenticated
// status API (raw_response is its data object, unchanged).
// Status only moves forward: Pending (the webhook's "Initiated") -> Approved | Rejected, never back.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('payins', (t) => {
    t.bigIncrements('id').primary();
    t.text('order_id').notNullable().unique();
    t.text('user_id');
    // Received (final) amount and the amount asked of the payer, in paise.
    t.bigInteger('amount_paise');
    t.bigInteger('request_amount_paise');
    t.text('method');
    // The API's transaction_id: the payment's UTR.
    t.text('utr');
    t.text('bank_upi');
    t.text('bank_name');
    t.text('status').notNullable();
    t.text('comments');
    // "2025-08-04 16:58:30" without a zone in the document: kept as the API's text.
    t.text('time_of_processing');
    t.timestamp('api_created_at', { useTz: true });
    t.timestamp('api_updated_at', { useTz: true });
    t.timestamp('first_seen_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('last_checked_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.jsonb('raw_event');
    t.jsonb('raw_response');
    t.index(['status']);
    t.index(['first_seen_at']);
  });
  await knex.raw('ALTER TABLE payins ADD CONSTRAINT payins_amount_check CHECK ((amount_paise IS NULL OR amount_paise >= 0) AND (request_amount_paise IS NULL OR request_amount_paise >= 0))');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('payins');
}
