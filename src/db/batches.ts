import { createHash } from 'node:crypto';
import type { Knex } from 'knex';

export type DecidedBy = 'prompt' | 'flag' | 'approve';

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
  /** What derived order_ids hash besides the payout; null for batches made before it existed (the name is used). */
  identity: string | null;
  source_header: string[] | null;
  reference_column: string | null;
  /** 'approved' (a person said yes for this revision) or 'declined' (no later run sends until confirmed again). */
  decision: 'approved' | 'declined' | null;
  /** Who decided: typed at a 'prompt', the 'flag' --yes, or the 'approve' command (the only lasting yes). */
  decided_by: DecidedBy | null;
  decided_at: Date | null;
  decision_note: string | null;
  cancelled_at: Date | null;
  /** Who uploaded it (a user, or the operating-system user of a CLI run); null for batches before issue 19. */
  uploaded_by: string | null;
}

export async function getBatch(db: Knex, name: string): Promise<BatchRecord | undefined> {
  return db<BatchRecord>('batches').where({ name }).first();
}

/** The batch row, locked until the transaction ends: one ingest (or revision) of a batch at a time. */
export async function lockBatch(trx: Knex.Transaction, name: string): Promise<BatchRecord | undefined> {
  return trx<BatchRecord>('batches').where({ name }).forUpdate().first();
}

export async function listBatches(db: Knex): Promise<BatchRecord[]> {
  return db<BatchRecord>('batches').orderBy('created_at', 'desc');
}

/**
 * Serialises the duplicate check of files with this content (a sha256, or a payments fingerprint) across
 * runners: two batches read from the same payroll at the same moment would otherwise both find no earlier
 * file and both pay it. Held until the transaction ends.
 */
export async function lockFileContent(trx: Knex.Transaction, key: string): Promise<void> {
  const id = createHash('sha256').update(`payouts-file-content:${key}`).digest().readBigInt64BE(0);
  await trx.raw('SELECT pg_advisory_xact_lock(?::bigint)', [id.toString()]);
}

/**
 * Serialises the reads of batches whose order_ids derive from payments in one scope (a month): each read
 * must see the order_ids the others stored, or two reads at once would derive the same ids and one would
 * fail on the unique index instead of moving on to the next occurrence (or being refused as a duplicate).
 * Held until the transaction ends.
 */
export async function lockPaymentScope(trx: Knex.Transaction, scope: string): Promise<void> {
  const id = createHash('sha256').update(`payouts-payment-scope:${scope}`).digest().readBigInt64BE(0);
  await trx.raw('SELECT pg_advisory_xact_lock(?::bigint)', [id.toString()]);
}

/** One file a batch was read from (each revision has one). */
export interface BatchFileRecord {
  batch: string;
  revision: number;
  source_file: string;
  file_sha256: string;
  payments_fingerprint: string | null;
  payments: number | null;
  read_at: Date;
  uploaded_by: string | null;
}

/**
 * Files other batches were read from (any revision, the original of a corrected batch too) with these bytes
 * or, when a fingerprint is given, paying the same payees the same amounts and read in the last
 * `fingerprintDays` days: the same payroll again.
 */
export async function earlierFilesLike(
  db: Knex,
  f: { sha256: string; fingerprint?: string | null; fingerprintDays?: number },
  except: string,
): Promise<BatchFileRecord[]> {
  return db<BatchFileRecord>('batch_files')
    .where((q) => {
      q.where({ file_sha256: f.sha256 });
      if (f.fingerprint) {
        q.orWhere((w) =>
          w.where({ payments_fingerprint: f.fingerprint }).andWhere('read_at', '>', db.raw(`now() - (? * interval '1 day')`, [f.fingerprintDays ?? 0])),
        );
      }
    })
    .whereNot({ batch: except })
    .orderBy('read_at')
    .orderBy('id');
}

/** The files a batch was read from, oldest first. */
export async function batchFilesOf(db: Knex, batch: string): Promise<BatchFileRecord[]> {
  return db<BatchFileRecord>('batch_files').where({ batch }).orderBy('revision');
}

/**
 * Creates the batch unless it exists; a runner that lost the race waits for the winner's transaction and
 * then sees its batch. Returns true when this call created it.
 */
export async function createBatch(
  db: Knex,
  b: { name: string; sourceFile: string; sha256: string; defaultUserId: string | null; identity: string; uploadedBy?: string | null },
): Promise<boolean> {
  const res = await db.raw(
    `INSERT INTO batches (name, source_file, file_sha256, default_user_id, revision, identity, ingest_complete, uploaded_by)
     VALUES (?, ?, ?, ?, 1, ?, false, ?) ON CONFLICT (name) DO NOTHING RETURNING name`,
    [b.name, b.sourceFile, b.sha256, b.defaultUserId, b.identity, b.uploadedBy ?? null],
  );
  return (res.rows as unknown[]).length === 1;
}

/** Kept for tests that build batches by hand. */
export async function insertBatch(
  db: Knex,
  b: { name: string; sourceFile: string; sha256: string; defaultUserId: string | null; identity?: string },
): Promise<void> {
  await db('batches').insert({
    name: b.name,
    source_file: b.sourceFile,
    file_sha256: b.sha256,
    default_user_id: b.defaultUserId,
    revision: 1,
    identity: b.identity ?? null,
  });
}

/**
 * A file completely read in: the batch's current content, and one more entry in the batch's files. A new
 * revision clears an earlier decision.
 */
export async function completeIngest(
  db: Knex,
  name: string,
  f: {
    sourceFile: string;
    sha256: string;
    revision: number;
    sourceHeader: string[] | null;
    referenceColumn: string | null;
    fingerprint: string | null;
    payments: number;
    uploadedBy?: string | null;
  },
): Promise<void> {
  await db('batch_files')
    .insert({ batch: name, revision: f.revision, source_file: f.sourceFile, file_sha256: f.sha256, payments_fingerprint: f.fingerprint, payments: f.payments, uploaded_by: f.uploadedBy ?? null })
    .onConflict(['batch', 'revision'])
    .merge();
  const prev = await db<BatchRecord>('batches').where({ name }).first();
  const revised = prev !== undefined && prev.revision !== f.revision;
  await db('batches')
    .where({ name })
    .update({
      source_file: f.sourceFile,
      file_sha256: f.sha256,
      revision: f.revision,
      ingest_complete: true,
      source_header: f.sourceHeader === null ? null : JSON.stringify(f.sourceHeader),
      reference_column: f.referenceColumn,
      updated_at: db.fn.now(),
      ...(revised ? { decision: null, decided_by: null, decided_at: null, decision_note: null } : {}),
    });
}

export async function recordDecision(db: Knex, name: string, decision: 'approved' | 'declined', note: string, by: DecidedBy): Promise<void> {
  await db('batches').where({ name }).update({ decision, decided_by: by, decided_at: db.fn.now(), decision_note: note, updated_at: db.fn.now() });
}

/** One approval (or rejection) of a revision, as stored. */
export interface ApprovalRecord {
  id: string;
  batch: string;
  revision: number;
  file_sha256: string;
  rows: number;
  total_paise: string;
  decision: 'approved' | 'rejected';
  by_user: string;
  from_where: string | null;
  note: string | null;
  created_at: Date;
}

export async function recordApproval(
  db: Knex,
  a: { batch: string; revision: number; sha256: string; rows: number; totalPaise: bigint; decision: 'approved' | 'rejected'; by: string; from: string | null; note: string | null },
): Promise<void> {
  await db('approvals').insert({
    batch: a.batch,
    revision: a.revision,
    file_sha256: a.sha256,
    rows: a.rows,
    total_paise: a.totalPaise.toString(),
    decision: a.decision,
    by_user: a.by,
    from_where: a.from,
    note: a.note,
  });
}

/** Whether this revision of the batch, read from this file, holds an approval. */
export async function isApproved(db: Knex, batch: string, revision: number, sha256: string): Promise<boolean> {
  return (await db('approvals').where({ batch, revision, file_sha256: sha256, decision: 'approved' }).first('id')) !== undefined;
}

/** The approvals of a batch, oldest first. */
export async function approvalsOf(db: Knex, batch: string): Promise<ApprovalRecord[]> {
  return db<ApprovalRecord>('approvals').where({ batch }).orderBy('created_at').orderBy('id');
}

export async function markCancelled(db: Knex, name: string): Promise<void> {
  await db('batches').where({ name }).update({ cancelled_at: db.raw('coalesce(cancelled_at, now())'), updated_at: db.fn.now() });
}

export async function markStarted(db: Knex, name: string): Promise<void> {
  await db('batches').where({ name }).update({ started_at: db.raw('coalesce(started_at, now())'), updated_at: db.fn.now() });
}

export async function markFinished(db: Knex, name: string): Promise<void> {
  await db('batches').where({ name }).update({ finished_at: db.fn.now(), updated_at: db.fn.now() });
}
