import type { Knex } from 'knex';

export interface BatchRecord {
  name: string;
  source_file: string;
  file_sha256: string;
  revision: number;
  default_user_id: string | null;
  ingest_complete: boolean;
  created_at: Date;
  updated_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

export async function getBatch(db: Knex, name: string): Promise<BatchRecord | undefined> {
  return db<BatchRecord>('batches').where({ name }).first();
}

export async function listBatches(db: Knex): Promise<BatchRecord[]> {
  return db<BatchRecord>('batches').orderBy('created_at', 'desc');
}

export async function insertBatch(
  db: Knex,
  b: { name: string; sourceFile: string; sha256: string; defaultUserId: string | null },
): Promise<void> {
  await db('batches').insert({
    name: b.name,
    source_file: b.sourceFile,
    file_sha256: b.sha256,
    default_user_id: b.defaultUserId,
    revision: 1,
  });
}

/** A corrected copy of the file: the batch moves to a new revision. */
export async function reviseBatch(db: Knex, name: string, sourceFile: string, sha256: string): Promise<number> {
  const [row] = await db('batches')
    .where({ name })
    .update({
      source_file: sourceFile,
      file_sha256: sha256,
      revision: db.raw('revision + 1'),
      ingest_complete: false,
      updated_at: db.fn.now(),
    })
    .returning('revision');
  return (row as { revision: number }).revision;
}

export async function markStarted(db: Knex, name: string): Promise<void> {
  await db('batches').where({ name }).update({ started_at: db.raw('coalesce(started_at, now())'), updated_at: db.fn.now() });
}

export async function markFinished(db: Knex, name: string): Promise<void> {
  await db('batches').where({ name }).update({ finished_at: db.fn.now(), updated_at: db.fn.now() });
}
