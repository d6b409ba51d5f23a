import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { AllianceClient } from '../alliance/client.js';
import { validateFile, type ValidateSummary } from '../batch/validateFile.js';
import { auditOf } from '../db/access.js';
import { approvalsOf, getBatch, listBatches, type BatchRecord } from '../db/batches.js';
import { rowsInStates } from '../db/reports.js';
import { fileRowTotals, repeatedPayments, type RepeatedPayment } from '../db/rows.js';
import { approvalState, audit, requireRole, uploadersOf, type Actor, type ApprovalState } from '../engine/access.js';
import { approveBatch, rejectBatch } from '../engine/decisions.js';
import { ingestFile, type IngestResult } from '../engine/ingest.js';
import { changePlan, type ChangePlan } from '../engine/plan.js';
import { BatchNotFoundError } from '../errors.js';
import { parseRupees } from '../money.js';
import { reportRow, type ReportRow } from '../report/rows.js';
import { summarize, type BatchSummary } from '../report/summary.js';
import { ALL_ROW_STATES } from '../states.js';
import type { Runs } from './runs.js';

/**
 * What the console does, one function per action, each a thin call of the engine with the session's actor:
 * the JSON API and the pages both call these (src/console/server.ts), so a page can do nothing the API
 * cannot, and neither does anything the CLI does not.
 */
export interface ConsoleContext {
  db: Knex;
  client: AllianceClient;
  logger: Logger;
  runs: Runs;
  /** Time zone of the times shown and in the reports. */
  timeZone: string;
  /** user_id for rows without one, when the upload names none (the settings' PAYOUTS_USER_ID). */
  defaultUserId?: string | undefined;
  /** Days back for repeated payments (as `run --repeat-window`). Default 30. */
  repeatWindowDays?: number | undefined;
  /** Start a batch in this process once its approvals are met. Default true (the embedded database needs it). */
  startOnApproval: boolean;
  /** The last balance the API gave (see balanceAfter). */
  balanceCache: { value?: { at: number; paise: bigint } };
}

/** Who may do what in the console besides the engine's own rules (approve and reject: checkers; users and policy: admins). */
export const MAY = {
  /** As the CLI: anyone but a viewer may read a file into a batch; the engine then never lets its uploader approve it. */
  upload: ['maker', 'checker', 'admin'],
  /** Resume, cancel, reconcile: none of them can pay a batch the policy holds back (runBatch checks it), so any role that works on batches. */
  operate: ['maker', 'checker', 'admin'],
} as const;

export interface UploadInput {
  /** The uploaded file, saved on disk under its original name. */
  path: string;
  batch: string;
  userId?: string | undefined;
  /** Merge into an existing batch as a corrected copy (as `run --revise`). */
  revise?: boolean | undefined;
}

export interface UploadOutcome {
  batch: string;
  validation: ValidateSummary;
  /** Absent when the file is refused as a whole (nothing stored). */
  ingest?: IngestResult;
}

/**
 * An upload: the file checked by `payouts validate`'s code, then stored by the engine's ingest with the
 * session's user as its uploader (who then never approves it). Nothing is sent: a batch is paid once
 * approved (the policy) or when someone presses resume.
 */
export async function upload(ctx: ConsoleContext, actor: Actor, u: UploadInput): Promise<UploadOutcome> {
  requireRole(actor, MAY.upload, 'uploading a batch');
  const userId = u.userId || ctx.defaultUserId;
  const validation = await validateFile(u.path, { batch: u.batch, defaultUserId: userId });
  if (validation.refused) return { batch: u.batch, validation };
  const ingest = await ingestFile(ctx.db, {
    batch: u.batch,
    csvPath: u.path,
    defaultUserId: userId,
    revise: u.revise ?? false,
    uploadedBy: actor.name,
    logger: ctx.logger,
    ...(ctx.repeatWindowDays !== undefined ? { repeatWindowDays: ctx.repeatWindowDays } : {}),
  });
  if (ingest.kind !== 'unchanged') {
    await audit(ctx.db, actor, ingest.kind === 'new' ? 'upload' : 'revise', {
      batch: u.batch,
      revision: ingest.revision,
      detail: { file: u.path, rows: ingest.rows, invalid: ingest.invalid, valid_total_paise: ingest.validTotalPaise.toString(), via: 'console' },
    });
  }
  return { batch: u.batch, validation, ingest };
}

export interface Decision {
  note?: string | undefined;
  /** The revision the checker looked at (the page sends the one it showed). */
  revision?: number | undefined;
}

/** A checker's approval (the engine refuses the uploader and other roles); the batch starts here once the policy is met. */
export async function approve(ctx: ConsoleContext, actor: Actor, batch: string, d: Decision): Promise<{ approval: ApprovalState; started: boolean }> {
  await approveBatch({ db: ctx.db }, batch, { note: `approved in the console by ${actor.name}${d.note ? `: ${d.note}` : ''}`, by: actor.name, from: actor.from, actor, revision: d.revision });
  const b = (await getBatch(ctx.db, batch))!;
  const approval = await approvalState(ctx.db, b, (await fileRowTotals(ctx.db, batch)).validTotalPaise);
  let started = false;
  if (approval.met && ctx.startOnApproval && !ctx.runs.running(batch)) {
    ctx.runs.start(batch, 'run', actor);
    started = true;
  }
  return { approval, started };
}

export async function reject(ctx: ConsoleContext, actor: Actor, batch: string, d: Decision): Promise<{ approval: ApprovalState }> {
  await rejectBatch({ db: ctx.db }, batch, { note: d.note ?? '', by: actor.name, from: actor.from, actor, revision: d.revision });
  const b = (await getBatch(ctx.db, batch))!;
  return { approval: await approvalState(ctx.db, b, (await fileRowTotals(ctx.db, batch)).validTotalPaise) };
}

/** Resume, cancel or reconcile, in the background; the engine audits each (and holds back what the policy does not allow). */
export async function operate(ctx: ConsoleContext, actor: Actor, batch: string, what: 'run' | 'cancel' | 'reconcile'): Promise<void> {
  requireRole(actor, MAY.operate, what === 'run' ? 'resuming a batch' : what === 'cancel' ? 'cancelling a batch' : 'reconciling a batch');
  await mustExist(ctx.db, batch);
  // reconcile writes no audit record of its own in the engine: the console's is it.
  if (what === 'reconcile') await audit(ctx.db, actor, 'reconcile', { batch });
  ctx.runs.start(batch, what, actor);
}

async function mustExist(db: Knex, batch: string): Promise<BatchRecord> {
  const b = await getBatch(db, batch);
  if (!b) throw new BatchNotFoundError(`no batch named "${batch}"`);
  return b;
}

/** Where a batch stands, in one word a list can show. */
export type BatchState = 'running' | 'cancelled' | 'rejected' | 'awaiting approval' | 'approved' | 'finished' | 'unfinished' | 'uploaded';

function stateOf(b: BatchRecord, s: BatchSummary, a: ApprovalState, running: boolean): BatchState {
  if (running) return 'running';
  if (b.cancelled_at) return 'cancelled';
  if (a.rejectedBy.length) return 'rejected';
  const open = s.counts.not_sent + s.counts.sending + s.counts.pending;
  if (b.finished_at && open === 0) return 'finished';
  if (a.required && !a.met && s.counts.not_sent > 0) return 'awaiting approval';
  if (b.started_at) return 'unfinished';
  return a.required && a.met ? 'approved' : 'uploaded';
}

export interface BatchOverview {
  batch: string;
  revision: number;
  state: BatchState;
  uploadedBy: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  summary: BatchSummary;
  approval: ApprovalState;
  validTotalPaise: bigint;
  running?: string | undefined;
}

export async function overview(ctx: ConsoleContext, b: BatchRecord): Promise<BatchOverview> {
  const summary = await summarize(ctx.db, b.name, { timeZone: ctx.timeZone });
  const totals = await fileRowTotals(ctx.db, b.name);
  const approval = await approvalState(ctx.db, b, totals.validTotalPaise);
  const running = ctx.runs.running(b.name);
  return {
    batch: b.name,
    revision: b.revision,
    state: stateOf(b, summary, approval, running !== undefined),
    uploadedBy: b.uploaded_by,
    createdAt: b.created_at,
    startedAt: b.started_at,
    finishedAt: b.finished_at,
    summary,
    approval,
    validTotalPaise: totals.validTotalPaise,
    running,
  };
}

export async function listOverview(ctx: ConsoleContext): Promise<BatchOverview[]> {
  const out: BatchOverview[] = [];
  for (const b of await listBatches(ctx.db)) out.push(await overview(ctx, b));
  return out;
}

export interface BatchDetail extends BatchOverview {
  uploaders: string[];
  approvals: Awaited<ReturnType<typeof approvalsOf>>;
  /** Rows not paid (invalid first, with reasons) and rows paid or to pay, as the report shows them. */
  invalid: ReportRow[];
  rows: ReportRow[];
  plan: ChangePlan;
  repeats: { rows: number; first: RepeatedPayment[]; windowDays: number };
  /** The wallet's balance now (the API's answer), and what it would be after the rows not sent yet. */
  balance: { paise: bigint | null; afterPaise: bigint | null; error?: string | undefined };
  audit: Awaited<ReturnType<typeof auditOf>>;
  lastRun?: ReturnType<Runs['lastOf']>;
  trouble?: string | undefined;
}

/** Rows listed on a batch's page (the reports have them all). */
export const ROWS_LISTED = 500;

export async function detail(ctx: ConsoleContext, batch: string): Promise<BatchDetail> {
  const b = await mustExist(ctx.db, batch);
  const o = await overview(ctx, b);
  const rctx = { batch, decision: b.decision };
  const invalid = (await rowsInStates(ctx.db, batch, ['invalid'], ROWS_LISTED)).map((r) => reportRow(r, rctx));
  const rows = (await rowsInStates(ctx.db, batch, ALL_ROW_STATES.filter((s) => s !== 'invalid'), ROWS_LISTED)).map((r) => reportRow(r, rctx));
  const windowDays = ctx.repeatWindowDays ?? 30;
  const notSentPaise = parseRupees(o.summary.totals.not_sent.amount) ?? 0n;
  return {
    ...o,
    uploaders: [...(await uploadersOf(ctx.db, b))],
    approvals: await approvalsOf(ctx.db, batch),
    invalid,
    rows,
    plan: await changePlan(ctx.db, batch),
    repeats: { ...(await repeatedPayments(ctx.db, batch, windowDays)), windowDays },
    balance: await balanceAfter(ctx, notSentPaise),
    audit: await auditOf(ctx.db, batch, 100),
    lastRun: ctx.runs.lastOf(batch),
    trouble: ctx.runs.troubleOf(batch),
  };
}

/** The client's balance call, at most every 10 s (a page open during a run must not eat the API's rate). */
async function balanceAfter(ctx: ConsoleContext, notSentPaise: bigint): Promise<BatchDetail['balance']> {
  try {
    const c = ctx.balanceCache;
    if (!c.value || Date.now() - c.value.at > 10_000) c.value = { at: Date.now(), paise: (await ctx.client.balance({ signal: AbortSignal.timeout(5000) })).balancePaise };
    return { paise: c.value.paise, afterPaise: c.value.paise - notSentPaise };
  } catch (err) {
    return { paise: null, afterPaise: null, error: (err as Error).message };
  }
}
