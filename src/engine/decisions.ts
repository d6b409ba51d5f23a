import { AccessError, BatchNotFoundError, RefusedError, UsageError } from '../errors.js';
import { batchFilesOf, getBatch, markCancelled, recordApproval, recordDecision, type BatchRecord } from '../db/batches.js';
import { audit, policy, requireRole, uploadersOf, type Actor } from './access.js';
import { readyByMethod } from '../db/rows.js';
import { applyMove } from '../db/moves.js';
import { MOVES } from './machine.js';
import { formatRupeesIndian } from '../money.js';
import type { EngineDeps } from './context.js';
import { runBatch, type RunOptions, type RunResult } from './run.js';
import { DEFAULT_TIME_ZONE, localTime } from '../report/time.js';

/**
 * An operator's decisions on a batch, for the CLI and (later) a web console where one person uploads and
 * another approves.
 */

/** What an approval names: the revision, its file and what it pays (rows not sent yet, and their total). */
export interface ApprovalSubject {
  batch: string;
  revision: number;
  /** Revisions the batch has had (1 for a batch never corrected). */
  revisions: number;
  sourceFile: string;
  sha256: string;
  readAt: Date | null;
  rows: number;
  totalPaise: bigint;
}

/** The batch's current revision as an approver is shown it. */
export async function approvalSubject(deps: Pick<EngineDeps, 'db'>, batch: string): Promise<ApprovalSubject> {
  const b = await getBatch(deps.db, batch);
  if (!b) throw new BatchNotFoundError(`no batch named "${batch}": \`payouts status\` lists them`);
  const files = await batchFilesOf(deps.db, batch);
  const methods = await readyByMethod(deps.db, batch);
  return {
    batch,
    revision: b.revision,
    revisions: b.revision,
    sourceFile: b.source_file,
    sha256: b.file_sha256,
    readAt: files.find((f) => f.revision === b.revision)?.read_at ?? null,
    rows: methods.reduce((n, m) => n + m.count, 0),
    totalPaise: methods.reduce((n, m) => n + m.paise, 0n),
  };
}

export interface ApproveOptions {
  /** Why, or who checked it. */
  note: string;
  /** Who approves (user@host at a terminal; a user name in a console). */
  by: string;
  /** Where from (a host, an address). */
  from?: string | undefined;
  /** Who approves, authenticated (`--as`, the console): required with the approval policy on. */
  actor?: Actor | undefined;
  /**
   * The revision the person checked. Required once the batch has been corrected (two or more revisions): an
   * approval names what it approves, and a revision stored after the person looked is not it. Given, it
   * must be the current one.
   */
  revision?: number | undefined;
}

/**
 * Approves the batch's current revision: later unattended runs (and a batch declined at a prompt) may pay
 * it. The approval is recorded with the revision, its file's sha256 and its totals; a revision read later
 * clears it (it needs its own).
 */
export async function approveBatch(deps: Pick<EngineDeps, 'db'>, batch: string, o: ApproveOptions): Promise<ApprovalSubject> {
  const b = await getBatch(deps.db, batch);
  if (!b) throw new BatchNotFoundError(`no batch named "${batch}": \`payouts status\` lists them`);
  if (b.cancelled_at) throw new UsageError(`batch "${batch}" was cancelled on ${localTime(b.cancelled_at, DEFAULT_TIME_ZONE)}: a cancelled batch is never paid; start a new one`);
  const subject = await approvalSubject(deps, batch);
  const current = `revision ${subject.revision} (${subject.sourceFile}, sha256 ${subject.sha256.slice(0, 12)}…${subject.readAt ? `, read ${localTime(subject.readAt, DEFAULT_TIME_ZONE)}` : ''}: ${subject.rows} payouts of ${formatRupeesIndian(subject.totalPaise)} not sent yet)`;
  if (o.revision === undefined && b.revision > 1) {
    throw new UsageError(`batch "${batch}" was corrected: it is at ${current}. Name the revision you checked: --revision ${subject.revision}; nothing approved`);
  }
  if (o.revision !== undefined && o.revision !== b.revision) {
    throw new RefusedError(
      `batch "${batch}" is at ${current}, not revision ${o.revision}: what you checked is not what would be paid; nothing approved. ` +
        `Check revision ${subject.revision} (\`payouts status ${batch}\`, the report) and approve it with --revision ${subject.revision}`,
    );
  }
  const by = await checkerFor(deps.db, b, o.actor, 'approve');
  await recordApproval(deps.db, { batch, revision: b.revision, sha256: b.file_sha256, rows: subject.rows, totalPaise: subject.totalPaise, decision: 'approved', by: by ?? o.by, from: o.from ?? null, note: o.note });
  await recordDecision(deps.db, batch, 'approved', o.note, 'approve');
  await audit(deps.db, o.actor ?? { name: o.by, from: o.from ?? 'cli' }, 'approve', { batch, revision: b.revision, detail: { note: o.note, rows: subject.rows, total_paise: subject.totalPaise.toString(), sha256: b.file_sha256 } });
  return subject;
}

/**
 * Who may approve or reject this batch: with the policy on (or whenever a user is named), an enabled
 * checker who did not upload it or its current revision. Returns their name, or undefined with the policy
 * off and no user named (today's `payouts approve`).
 */
async function checkerFor(db: EngineDeps['db'], b: BatchRecord, actor: Actor | undefined, verb: 'approve' | 'reject'): Promise<string | undefined> {
  const what = verb === 'approve' ? 'approving a batch' : 'rejecting a batch';
  const p = await policy(db);
  if (!p.enabled && !actor?.user) return undefined;
  const user = requireRole(actor ?? { name: 'cli', from: 'cli' }, ['checker'], what);
  if ((await uploadersOf(db, b)).has(user.name)) {
    throw new AccessError(`"${user.name}" uploaded batch "${b.name}"${b.revision > 1 ? ` (or its revision ${b.revision})` : ''}: another checker must ${verb} it`);
  }
  return user.name;
}

/**
 * A checker's no: the revision is not paid (recorded with the revision, file and totals, like an approval);
 * a corrected copy is a new revision to decide on. Nothing already sent is affected.
 */
export async function rejectBatch(deps: Pick<EngineDeps, 'db'>, batch: string, o: ApproveOptions): Promise<ApprovalSubject> {
  const b = await getBatch(deps.db, batch);
  if (!b) throw new BatchNotFoundError(`no batch named "${batch}": \`payouts status\` lists them`);
  if (o.revision !== undefined && o.revision !== b.revision) {
    throw new RefusedError(`batch "${batch}" is at revision ${b.revision}, not revision ${o.revision}: nothing rejected`);
  }
  const subject = await approvalSubject(deps, batch);
  const actor = o.actor ?? { name: o.by, from: o.from ?? 'cli' };
  // With the policy off and no user named, the person at the terminal says no (as `approve` says yes).
  const by = (await checkerFor(deps.db, b, actor, 'reject')) ?? o.by;
  await recordApproval(deps.db, { batch, revision: b.revision, sha256: b.file_sha256, rows: subject.rows, totalPaise: subject.totalPaise, decision: 'rejected', by, from: o.from ?? null, note: o.note });
  await recordDecision(deps.db, batch, 'declined', `rejected by ${by}${o.note ? `: ${o.note}` : ''}`, 'approve');
  await audit(deps.db, actor, 'reject', { batch, revision: b.revision, detail: { note: o.note } });
  return subject;
}

export interface CancelResult extends RunResult {
  /** Rows that were never sent and now never will be. */
  cancelledNow: number;
}

/**
 * Stops a batch for good: rows never sent become `cancelled`; rows whose request may be at the API are
 * resolved by status (adopted if they exist, cancelled if they certainly do not), never abandoned; pending
 * payouts are polled as usual. Safe to run again.
 */
export async function cancelBatch(opts: Omit<RunOptions, 'csvPath' | 'yes' | 'confirm' | 'dryRun' | 'revise'>, deps: EngineDeps): Promise<CancelResult> {
  const b = await getBatch(deps.db, opts.batch);
  if (!b) throw new BatchNotFoundError(`no batch named "${opts.batch}": \`payouts status\` lists them`);
  await markCancelled(deps.db, opts.batch);
  await audit(deps.db, opts.actor ?? { name: 'cli', from: 'cli' }, 'cancel', { batch: opts.batch, revision: b.revision });
  const cancelledNow = await applyMove(deps.db, MOVES.cancel, { batch: opts.batch }, {
    state: 'cancelled',
    finalized_at: deps.db.fn.now(),
    last_error: 'cancelled by an operator before it was sent',
  });
  const res = await runBatch({ ...opts, yes: false }, deps);
  return { ...res, cancelledNow };
}
