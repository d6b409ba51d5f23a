import type { Knex } from 'knex';

// Append-only: never edit a migration after it lands; add a new one.
//
// Every file a batch was read from (each revision), with its bytes' sha256 and what it pays (the payroll
// fingerprint, src/batch/fingerprint.ts). A new batch whose file matches any of them, by bytes or by
// payments, is the same payroll again and is refused unless --allow-duplicate-file: before this table only
// a batch's latest file was compared, so the original of a revised batch, or a re-saved copy, paid again.
//
// batches.decided_by: who gave the batch's decision. Only `payouts approve` is a lasting yes for unattended
// runs; a yes typed at a prompt or given with --yes is the yes of that run (before, an unattended `resume`
// after a typed yes and a Ctrl-C sent the rest without --yes, against the README).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('batches', (t) => {
    // 'prompt' (typed at a terminal), 'flag' (--yes), 'approve' (the approve command); null: no decision.
    t.text('decided_by');
  });
  await knex.raw(
    `UPDATE batches SET decided_by = CASE
       WHEN decision_note IN ('confirmed at the terminal', 'declined at the confirmation prompt') THEN 'prompt'
       WHEN decision_note = 'confirmed with --yes' THEN 'flag'
       ELSE 'approve' END
     WHERE decision IS NOT NULL`,
  );
  await knex.schema.createTable('batch_files', (t) => {
    t.bigIncrements('id').primary();
    t.text('batch').notNullable().references('name').inTable('batches').onDelete('CASCADE');
    t.integer('revision').notNullable();
    t.text('source_file').notNullable();
    t.text('file_sha256').notNullable();
    // Null for a file that pays nobody, and for files read before this table existed.
    t.text('payments_fingerprint');
    t.integer('payments');
    t.timestamp('read_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['batch', 'revision']);
    t.index(['file_sha256']);
    t.index(['payments_fingerprint']);
  });
  await knex.raw(
    `INSERT INTO batch_files (batch, revision, source_file, file_sha256, read_at)
     SELECT name, revision, source_file, file_sha256, updated_at FROM batches WHERE ingest_complete`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('batch_files');
  await knex.schema.alterTable('batches', (t) => {
    t.dropColumn('decided_by');
  });
}
