import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { readBatchRows, type IngestRow } from '../batch/ingest.js';
import { isWorkbookPath } from '../batch/xlsxSource.js';
import type { HeaderMapping } from '../batch/columns.js';
import { InputError, RefusedError } from '../errors.js';
import { formatRupeesIndian, type Paise } from '../money.js';
import { maskAccount } from '../log.js';
import { batchFilesOf, lockPaymentScope, completeIngest, createBatch, earlierFilesLike, getBatch, lockBatch, lockFileContent, type BatchFileRecord, type BatchRecord } from '../db/batches.js';
import { PayrollFingerprint } from '../batch/fingerprint.js';
import { existingOrderIds, nearCopies, fileRowTotals, insertRows, readyByMethod, repeatedPayments, type Issue, type NewRow, type RepeatedPayment } from '../db/rows.js';
import { countRowsOf, keepForLine, lockPayees, markNotInFile, type StoredPayee } from '../db/revisions.js';
import { applyMove, countRefusedByMove, deleteByMove } from '../db/moves.js';
import { MOVES } from './machine.js';
import { payeeKey, planRevision, refKey, revisionStanding, type Conflict, type NewPayee, type RevisionPlan } from './revise.js';
import type { Difference, KeyKind } from '../batch/payeeIdentity.js';
import { batchIdentity, batchKey, derivesByPayment } from './identity.js';
import { derivePaymentOrderId } from '../batch/orderId.js';
import { changePlan, type ChangePlan } from './plan.js';
import { DEFAULT_TIME_ZONE, localTime } from '../report/time.js';

export interface IngestOptions {
  batch: string;
  csvPath: string;
  defaultUserId?: string | undefined;
  /** Merge a different file into a batch that has sent payouts (a corrected copy). Without it: refused. */
  revise?: boolean;
  /** Lines of a corrected copy (its row numbers) whose changed amount or account is to be paid in addition. */
  acceptChanges?: readonly number[];
  /** Who uploads it (kept with a new batch: its uploader never approves it). */
  uploadedBy?: string | undefined;
  /** Do everything, then roll it all back: what a real run would store, with nothing stored. */
  dryRun?: boolean;
  /** Control totals (as bank bulk files carry): refuse the file unless they match (src/batch/controlTotals.ts). */
  expectRows?: number | undefined;
  expectTotalPaise?: Paise | undefined;
  /** Accept a last line with no line break (the person says the file is complete). Default false. */
  acceptUnterminated?: boolean | undefined;
  /** For a workbook (.xlsx): the sheet to read, by its tab name. Default: the first tab. */
  sheet?: string | undefined;
  /** Rows per insert statement. Default 1000. */
  chunkSize?: number;
  logger?: Logger;
  /** Clock, for the batch identity's month (tests). */
  now?: () => Date;
  /** Rows read so far, every few hundred rows and at the end of each pass (for a progress display). */
  onProgress?: (rows: number) => void;
  /**
   * Run a file another batch was already read from (any of its revisions): the same bytes (sha256), or the
   * same payments written differently (a re-saved, re-sorted or reformatted copy: src/batch/fingerprint.ts).
   * Default false: refused, since the same payroll uploaded under a second name would pay everyone again.
   */
  allowDuplicateFile?: boolean;
  /** Look this many days back for rows paying the same account the same amount in other batches. Default 30. */
  repeatWindowDays?: number;
}

/** One row's problems, for a person: account numbers masked. */
export interface RowProblem {
  row: number;
  errors: string[];
  warnings: string[];
}

/** Rows' problems kept in a result; the report has them all. */
export const MAX_PROBLEMS = 1000;

/** A payee of the earlier copy, never sent, that the corrected copy no longer has (account masked). */
export interface RemovedPayee {
  row: number;
  name: string | null;
  account: string;
  amountPaise: Paise | null;
}

/** Removed payees listed in a result (the count is exact). */
export const MAX_REMOVED_LISTED = 1000;

export interface RevisionSummary {
  /** Lines whose payee was already sent the same money: not paid again. */
  kept: number;
  /** Rows of the earlier file never sent and no longer in the file (or replaced by their corrected line). */
  dropped: number;
  /** Of `dropped`: valid payees of the earlier copy, never sent, no longer in the file (not paid by this batch now). */
  removedCount: number;
  /** The first MAX_REMOVED_LISTED of them, for the confirmation and the dry run. */
  removed: RemovedPayee[];
  /** Of `toInsert`: the valid lines, paid by this batch (the rest are invalid and listed as such). */
  toPay: number;
  /** Rows sent earlier that the new file does not have: kept, with their payouts. */
  keptNotInFile: number;
  /** New lines to pay (new payees, corrected unsent rows, rows whose earlier payout failed). */
  toInsert: number;
  /** Accepted changes: paid in addition to what the payee was sent. */
  accepted: number;
  conflicts: Conflict[];
}

export interface IngestResult {
  batch: string;
  revision: number;
  /** 'new' batch, 'unchanged' file (nothing read), or a 'revised' (corrected) copy merged in. */
  kind: 'new' | 'unchanged' | 'revised';
  /** Data rows in the file. */
  rows: number;
  invalid: number;
  warnings: number;
  /** Total of the file's valid rows. */
  validTotalPaise: Paise;
  /** Total of every amount in the file that could be read, valid row or not (what control totals compare). */
  fileTotalPaise: Paise;
  revisionSummary?: RevisionSummary;
  /** Notes about the header: columns ignored, empty header cells. */
  headerNotes: string[];
  /** The first rows with errors or warnings (at most MAX_PROBLEMS), accounts masked. */
  problems: RowProblem[];
  /** Rows to send that pay an account the same amount as another recent batch did (the first 50; warnings before sending). */
  repeats: RepeatedPayment[];
  /** How many rows those are in all. */
  repeatCount: number;
  /** The look-back of that comparison, in days (--repeat-window). */
  repeatWindowDays: number;
  /** What the batch changes against the previous batch that paid the same payees (src/engine/plan.ts). */
  plan?: ChangePlan;
  /** Rows the batch has ready to send after this read, in total and per method (a dry run's preflight uses it). */
  ready: { count: number; paise: Paise; byMethod: { method: string; count: number; paise: Paise }[] };
  /** Nothing was stored (dry run). */
  dryRun: boolean;
}

export async function fileSha256(file: string): Promise<string> {
  const h = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const kind = isWorkbookPath(file) ? 'Excel' : 'CSV';
    if (code === 'ENOENT') throw new InputError(`${kind} file not found: ${file}: check the path`, { cause: err });
    throw new InputError(`cannot read the ${kind} file ${file}: ${(err as Error).message}`, { cause: err });
  }
  return h.digest('hex');
}

export { defaultBatchName } from '../batch/name.js';

/** The fields of a line that later code needs besides the validated ones (reference, original cells). */
type Line = IngestRow & { reference?: string | null; source?: string[] };

/** A dry run ends by rolling its transaction back; this carries the result out. */
class RollBack extends Error {
  constructor(readonly result: IngestResult) {
    super('dry run: rolled back');
  }
}

/**
 * Reads a CSV into the batch's rows, every row valid or not, in ONE transaction: a file that fails part-way,
 * a crash mid-read, a refused revision or a dry run leave nothing stored, and two runners reading the same
 * batch at once store each row once (the second waits on the batch's lock and then finds it read).
 *
 * The same file again changes nothing. A different file is a corrected copy, merged by payee (see revise.ts):
 * a row ever claimed is never deleted, a changed amount or account of a row that may have paid is a conflict
 * (refused unless accepted), and nothing already paid is paid again.
 */
export async function ingestFile(db: Knex, opts: IngestOptions): Promise<IngestResult> {
  const sha = await fileSha256(opts.csvPath);
  const source = path.resolve(opts.csvPath);
  const now = opts.now ?? (() => new Date());
  const quick = await getBatch(db, opts.batch);
  if (quick && quick.file_sha256 === sha && quick.ingest_complete) return unchanged(db, quick, opts.dryRun ?? false, opts.repeatWindowDays ?? 30);

  try {
    return await db.transaction(async (trx) => {
      const created = await createBatch(trx, {
        name: opts.batch,
        sourceFile: source,
        sha256: sha,
        defaultUserId: opts.defaultUserId ?? null,
        // A salt only where a person said this is a payment of its own (see identity.ts).
        identity: batchIdentity(now(), opts.allowDuplicateFile ? opts.batch : undefined),
        uploadedBy: opts.uploadedBy ?? null,
      });
      const b = (await lockBatch(trx, opts.batch))!;
      // The same bytes as a file another batch read: refused before reading (the same payments written
      // differently are refused when the read is complete, in finish()).
      if (!opts.allowDuplicateFile) await lockFileContent(trx, sha);
      if (created && !opts.allowDuplicateFile) await refuseDuplicateFile(trx, b.name, { sha256: sha });
      // One read at a time per payment scope: it derives its order_ids past those the others stored.
      if (derivesByPayment(b)) await lockPaymentScope(trx, b.identity!);
      // Another runner read this very file while we waited for the lock.
      if (b.file_sha256 === sha && b.ingest_complete) return unchanged(trx, b, opts.dryRun ?? false, opts.repeatWindowDays ?? 30);
      // Rows left by a partial read of an older version of this program (never claimable, never claimed).
      if (!b.ingest_complete) await deleteByMove(trx, MOVES.drop, { batch: b.name, revision: b.revision });

      const hasRows = (await countRowsOf(trx, b.name)) > 0;
      const read = hasRows ? await revise(trx, b, opts, sha) : await readNew(trx, b, opts, sha);
      const result = { ...read, ...(await repeatsOf(trx, b.name, opts.repeatWindowDays ?? 30)), plan: await changePlan(trx, b.name) };
      if (opts.dryRun) throw new RollBack(result);
      return result;
    });
  } catch (err) {
    if (err instanceof RollBack) return err.result;
    throw err;
  }
}

/**
 * Files paying the same payees the same amounts are the same payroll uploaded again only when they come
 * close together: a fixed salary paid every month (or a wage every week) is the same list of payments
 * each time, on purpose. Within this many days such a file is refused; later, its rows are listed as
 * repeats before the yes (--repeat-window). A byte-identical file is refused at any distance.
 */
export const SAME_PAYMENTS_DAYS = 5;

/**
 * A file another batch was read from (any revision), by its bytes or by what it pays, is the same payroll
 * again under a second name: refused unless allowed.
 */
async function refuseDuplicateFile(
  trx: Knex.Transaction,
  batch: string,
  f: { sha256: string; fingerprint?: string | null; fingerprintDays?: number; payments?: number },
): Promise<void> {
  const others = await earlierFilesLike(trx, f, batch);
  if (others.length === 0) return;
  const o = others[0]!;
  const names = [...new Set(others.map((x) => x.batch))];
  const earlier = await getBatch(trx, o.batch);
  const next = nextStep(earlier, o.batch, batch, 'a second payment of the same payroll');
  throw new RefusedError(
    `${sameAs(o, f.sha256, f.payments)} batch "${o.batch}"${o.revision > 1 ? ` (its revision ${o.revision})` : ''} on ${istDate(o.read_at)}` +
      `${names.length > 1 ? ` (and in ${names.length - 1} more batch${names.length > 2 ? 'es' : ''}: ${names.slice(1, 4).join(', ')}${names.length > 4 ? ', …' : ''})` : ''}: ` +
      `running it as "${batch}" would pay everyone in it again. ${next}`,
  );
}

/**
 * A near-copy: a file that is another recent batch's payroll with a few rows added, removed or changed. The
 * whole-file comparisons above miss it (one changed row changes the bytes and the fingerprint), so the rows
 * this batch would pay are compared one by one with the payments of batches made in the last
 * SAME_PAYMENTS_DAYS days (the same payee, by account and IFSC or by reference, and the same amount). When
 * at least NEAR_COPY_MIN of them and NEAR_COPY_SHARE of all of them repeat one batch, it is refused like a
 * duplicate; fewer are listed as repeats before the yes.
 */
export const NEAR_COPY_SHARE = 0.8;
export const NEAR_COPY_MIN = 5;

async function refuseNearCopy(trx: Knex.Transaction, batch: string): Promise<void> {
  const [top] = await nearCopies(trx, batch, SAME_PAYMENTS_DAYS, 1);
  if (!top || top.matched < NEAR_COPY_MIN || top.matched < NEAR_COPY_SHARE * top.of) return;
  const earlier = await getBatch(trx, top.batch);
  const files = await batchFilesOf(trx, top.batch);
  const read = files.length ? ` (${path.basename(files[files.length - 1]!.source_file)}, read on ${istDate(files[files.length - 1]!.read_at)})` : '';
  throw new RefusedError(
    `${top.matched} of the ${top.of} payments this file would make (${Math.floor((100 * top.matched) / top.of)} %) are payments batch "${top.batch}"${read} ` +
      `made or will make: the same payee (account and IFSC, or reference) and the same amount. It looks like a copy of that payroll with ` +
      `${top.of - top.matched === 0 ? 'its rows re-arranged' : `${top.of - top.matched} row${top.of - top.matched === 1 ? '' : 's'} changed or added`}; running it as "${batch}" would pay those ${top.matched} people again. ` +
      nextStep(earlier, top.batch, batch, 'a second payment of the same people'),
  );
}

/** What to do about an earlier batch a file repeats depends on what became of it. */
function nextStep(earlier: BatchRecord | undefined, other: string, batch: string, what: string): string {
  if (earlier?.cancelled_at) return `That batch was cancelled: if this payroll is to be paid now under "${batch}", pass --allow-duplicate-file`;
  if (earlier?.decision === 'declined') {
    return `That batch was declined at a prompt: to pay it, \`payouts approve ${other}\` and \`payouts resume ${other}\`; to pay this copy under "${batch}" instead, pass --allow-duplicate-file`;
  }
  return `To correct that batch, run this file with \`--batch ${other} --revise\`; to carry on with it: \`payouts resume ${other}\`. If this really is ${what}, pass --allow-duplicate-file`;
}

function sameAs(o: BatchFileRecord, sha: string, payments: number | undefined): string {
  if (o.file_sha256 === sha) return `this file (sha256 ${sha.slice(0, 12)}…) was already run as`;
  return (
    `this file pays the same ${payments ?? o.payments ?? ''} payments (the same accounts, the same amounts; written differently: ` +
    `re-saved, re-sorted or reformatted) as ${path.basename(o.source_file)}, read less than ${SAME_PAYMENTS_DAYS} days ago as`
  );
}

/** "2026-11-27" in India, where payroll dates are read. */
function istDate(d: Date): string {
  return localTime(d, DEFAULT_TIME_ZONE).slice(0, 10);
}

async function unchanged(db: Knex, b: BatchRecord, dryRun: boolean, repeatWindowDays: number): Promise<IngestResult> {
  const r = await fileRowTotals(db, b.name);
  return {
    batch: b.name,
    revision: b.revision,
    kind: 'unchanged',
    rows: r.rows,
    invalid: r.invalid,
    warnings: r.warnings,
    validTotalPaise: r.validTotalPaise,
    fileTotalPaise: r.fileTotalPaise,
    headerNotes: [],
    problems: [],
    ...(await repeatsOf(db, b.name, repeatWindowDays)),
    plan: await changePlan(db, b.name),
    ready: await readyOf(db, b.name),
    dryRun,
  };
}

async function repeatsOf(db: Knex, batch: string, days: number): Promise<Pick<IngestResult, 'repeats' | 'repeatCount' | 'repeatWindowDays'>> {
  const r = await repeatedPayments(db, batch, days);
  return { repeats: r.first, repeatCount: r.rows, repeatWindowDays: days };
}

async function readyOf(db: Knex, batch: string): Promise<IngestResult['ready']> {
  const byMethod = await readyByMethod(db, batch);
  return { count: byMethod.reduce((n, m) => n + m.count, 0), paise: byMethod.reduce((n, m) => n + m.paise, 0n), byMethod };
}

interface ReadPass {
  header: string[] | null;
  /** What the file pays, however it is written (duplicate uploads). */
  fingerprint: PayrollFingerprint;
  headerNotes: string[];
  problems: RowProblem[];
  referenceColumn: string | null;
  rows: number;
  invalid: number;
  warnings: number;
  validTotalPaise: Paise;
  /** Every readable amount, valid row or not. */
  fileTotalPaise: Paise;
}

/** Streams the file once; `onLine` sees every data row in order. */
async function readPass(b: BatchRecord, opts: IngestOptions, key: string, onLine: (line: Line) => Promise<void> | void): Promise<ReadPass> {
  const pass: ReadPass = { header: null, fingerprint: new PayrollFingerprint(), headerNotes: [], problems: [], referenceColumn: null, rows: 0, invalid: 0, warnings: 0, validTotalPaise: 0n, fileTotalPaise: 0n };
  for await (const line of readBatchRows(opts.csvPath, {
    batch: key,
    byPayment: derivesByPayment(b),
    ...(opts.defaultUserId ?? b.default_user_id ? { defaultUserId: (opts.defaultUserId ?? b.default_user_id)! } : {}),
    onHeader: (m: HeaderMapping) => {
      pass.header = m.source;
      pass.headerNotes = m.warnings;
      pass.referenceColumn = m.reference?.header ?? null;
    },
    // A last line without a line break is held back (a file still being written looks like that), and the
    // control totals refuse a file that does not match them: both before anything is stored.
    acceptUnterminated: opts.acceptUnterminated ?? false,
    expectRows: opts.expectRows,
    expectTotalPaise: opts.expectTotalPaise,
    sheet: opts.sheet,
    // A workbook's warning about account numbers typed as numbers is shown with the header's notes.
    onFileIssue: (i) => {
      if (i.code === 'account_number_cells') pass.headerNotes = [...pass.headerNotes, i.message];
    },
  })) {
    pass.rows++;
    pass.fileTotalPaise += line.amountPaise ?? 0n;
    pass.fingerprint.add(line);
    if ((line.errors.length || line.warnings.length) && pass.problems.length < MAX_PROBLEMS) {
      const mask = (m: string) => (line.accountNumber.length >= 5 ? m.split(line.accountNumber).join(maskAccount(line.accountNumber)) : m);
      pass.problems.push({ row: line.rowNo, errors: line.errors.map((e) => mask(e.message)), warnings: line.warnings.map((w) => mask(w.message)) });
    }
    if (pass.rows % 500 === 0) opts.onProgress?.(pass.rows);
    await onLine(line as Line);
  }
  opts.onProgress?.(pass.rows);
  return pass;
}

/**
 * Inserts lines in chunks. An order_id derived from the payment that this database already holds (the same
 * payee paid the same amount this month by another batch: next week's wage, a second bonus) moves on to the
 * next occurrence until it is free, so each payment has an id of its own while another database preparing
 * the same payment derives the first one (and the API refuses it). Any other order_id already used is an
 * error on its row.
 */
class RowWriter {
  private chunk: { row: NewRow; occurrence: number }[] = [];
  invalid = 0;
  warnings = 0;
  validTotalPaise = 0n;
  constructor(
    private readonly trx: Knex.Transaction,
    private readonly batch: string,
    private readonly revision: number,
    private readonly chunkSize: number,
    /** The batch's scope when its ids derive from the payment; null for the older derivation. */
    private readonly paymentScope: string | null,
  ) {}

  async add(line: Line, extraErrors: Issue[] = [], replaces: string | null = null): Promise<void> {
    this.chunk.push({ row: toNewRow(line, this.batch, this.revision, extraErrors, replaces), occurrence: line.occurrence });
    if (this.chunk.length >= this.chunkSize) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.chunk.length === 0) return;
    const entries = this.chunk;
    this.chunk = [];
    const rows = entries.map((e) => e.row);
    const taken = await existingOrderIds(
      this.trx,
      rows.filter((r) => r.order_id !== null).map((r) => r.order_id!),
    );
    if (this.paymentScope !== null) await this.moveOnFromTaken(entries, taken);
    for (const r of rows) {
      const other = r.order_id === null ? undefined : taken.get(r.order_id);
      if (other !== undefined) {
        r.errors.push({
          field: 'order_id',
          code: 'order_id_used',
          message:
            other === this.batch
              ? `order_id ${r.order_id} is already used by another row of this batch that was sent earlier: give this row its own order_id`
              : `order_id ${r.order_id} was already used in batch ${other}: order_ids must be unique across batches`,
        });
      }
      if (r.errors.length > 0 && r.state !== 'invalid') {
        r.state = 'invalid';
        r.order_id = null;
        r.order_id_source = null;
      }
      if (r.state === 'invalid') this.invalid++;
      else this.validTotalPaise += r.amount_paise ?? 0n;
      if (r.warnings.length) this.warnings++;
    }
    await insertRows(this.trx, rows);
  }

  /** Derived ids the database (or this chunk) already holds take the next occurrence until free; `taken` loses them. */
  private async moveOnFromTaken(entries: { row: NewRow; occurrence: number }[], taken: Map<string, string>): Promise<void> {
    const derived = entries.filter((e) => e.row.order_id_source === 'derived' && e.row.order_id !== null);
    // The ids this chunk keeps: an id moved on must not land on one of them.
    const kept = new Set(derived.filter((e) => !taken.has(e.row.order_id!)).map((e) => e.row.order_id!));
    let moving = derived.filter((e) => taken.has(e.row.order_id!));
    for (const e of moving) taken.delete(e.row.order_id!);
    while (moving.length > 0) {
      for (const e of moving) {
        const payment = { accountNumber: e.row.account_no!, ifsc: e.row.ifsc!, amountPaise: e.row.amount_paise! };
        do {
          e.occurrence++;
          e.row.order_id = derivePaymentOrderId(this.paymentScope!, payment, e.occurrence);
        } while (kept.has(e.row.order_id));
        kept.add(e.row.order_id);
      }
      const held = await existingOrderIds(this.trx, moving.map((e) => e.row.order_id!));
      moving = moving.filter((e) => held.has(e.row.order_id!));
      for (const e of moving) kept.delete(e.row.order_id!);
    }
  }
}

/** A new batch: every line becomes a row. */
async function readNew(trx: Knex.Transaction, b: BatchRecord, opts: IngestOptions, sha: string): Promise<Omit<IngestResult, 'repeats' | 'repeatCount' | 'repeatWindowDays'>> {
  const revision = b.revision;
  const writer = new RowWriter(trx, b.name, revision, opts.chunkSize ?? 1000, derivesByPayment(b) ? b.identity : null);
  const pass = await readPass(b, opts, batchKey(b, revision), (line) => writer.add(line));
  await writer.flush();
  await finish(trx, b, opts, sha, revision, pass);
  return {
    batch: b.name,
    revision,
    kind: 'new',
    rows: pass.rows,
    invalid: writer.invalid,
    warnings: writer.warnings,
    validTotalPaise: writer.validTotalPaise,
    fileTotalPaise: pass.fileTotalPaise,
    headerNotes: pass.headerNotes,
    problems: pass.problems,
    ready: await readyOf(trx, b.name),
    dryRun: opts.dryRun ?? false,
  };
}

/** A different file for a batch that has rows: matched by payee, in two passes over the file. */
async function revise(trx: Knex.Transaction, b: BatchRecord, opts: IngestOptions, sha: string): Promise<Omit<IngestResult, 'repeats' | 'repeatCount' | 'repeatWindowDays'>> {
  // Rows a corrected copy may not drop: ever claimed, or in review (the API holds a payout under its order_id).
  const claimed = await countRefusedByMove(trx, MOVES.drop, b.name);
  if (claimed > 0 && !opts.revise) {
    throw new RefusedError(
      `batch "${b.name}" was read from a different file and ${claimed} of its payouts may already exist at the API. ` +
        `For a new payroll use a new --batch name; to merge a corrected copy of this one, pass --revise ` +
        `(lines whose payee was already sent the same amount are not paid again; changed amounts are listed for a decision)`,
    );
  }
  const revision = b.revision + 1;
  const key = batchKey(b, revision);

  // Pass 1: who is in the new file.
  const lines: NewPayee[] = [];
  const first = await readPass(b, opts, key, (l) => {
    lines.push({
      rowNo: l.rowNo,
      account: l.accountNumber,
      ifsc: l.ifsc,
      amountPaise: l.amountPaise,
      reference: l.reference ?? null,
      name: l.name || null,
      email: l.email || null,
      mobile: l.mobile || null,
      identifiable: l.orderId !== null && l.amountPaise !== null && l.amountPaise > 0n && l.accountNumber !== '' && l.ifsc !== '',
      orderId: l.orderIdSource === 'csv' ? l.orderId : null,
    });
  });
  const stored = await lockPayees(trx, b.name);
  const plan = planRevision(
    stored.map((s) => ({
      id: String(s.id),
      rowNo: s.row_no,
      account: s.account_no,
      ifsc: s.ifsc,
      amountPaise: s.amount_paise === null ? null : BigInt(s.amount_paise),
      reference: s.reference,
      name: s.name,
      email: s.email,
      mobile: s.mobile,
      state: s.state,
      ...revisionStanding(s),
      orderId: s.order_id,
      transactionId: s.transaction_id,
    })),
    lines,
    // References are compared when both the batch's file and this one have a reference column: a cell
    // blanked or edited is then a difference. A file without the column at all is matched by the other keys.
    { acceptChanges: new Set(opts.acceptChanges ?? []), references: b.reference_column !== null && first.referenceColumn !== null },
  );
  if (plan.conflicts.length > 0) throw new RefusedError(conflictMessage(b.name, plan.conflicts));

  // Apply: rows never claimed go first (their explicit order_ids may be reused by their corrected lines).
  // A row ever claimed is never deleted: the move's guard is in the statement, so a plan that names one
  // (or a claim that slipped in) deletes nothing of it and the merge stops.
  const dropped = await deleteByMove(trx, MOVES.drop, { ids: plan.drop });
  if (dropped !== plan.drop.length) {
    throw new Error(`batch "${b.name}" changed while the corrected copy was merged (a row was claimed meanwhile): run the command again`);
  }
  await markNotInFile(trx, plan.keptNotInFile, revision);
  // Of those, the rows no request of which can have executed are never sent now.
  await applyMove(trx, MOVES.not_in_file, { ids: plan.keptNotInFile }, { state: 'cancelled', finalized_at: trx.fn.now(), last_error: "not in the batch's corrected file, and never sent: cancelled" });

  // Pass 2: write what the plan says, line by line.
  const inserting = new Set(plan.insert);
  const writer = new RowWriter(trx, b.name, revision, opts.chunkSize ?? 1000, derivesByPayment(b) ? b.identity : null);
  let validTotal = 0n;
  let invalid = 0;
  let warnings = 0;
  const pass = await readPass(b, opts, key, async (line) => {
    const keep = plan.keep.get(line.rowNo);
    if (keep !== undefined) {
      await keepForLine(trx, keep, { rowNo: line.rowNo, revision, source: line.source ?? null });
      if (line.errors.length === 0 && line.amountPaise) validTotal += line.amountPaise;
      else invalid++;
      if (line.warnings.length) warnings++;
      return;
    }
    if (!inserting.has(line.rowNo)) return;
    const extra: Issue[] = [];
    const zeros = plan.lostZeros.get(line.rowNo);
    if (zeros) {
      extra.push({
        field: 'beneficiary_acc_no',
        code: 'account_lost_zeros',
        message: `account ${maskAccount(line.accountNumber)} is the earlier copy's ${maskAccount(zeros.oldAccount)} without its leading zeros (spreadsheet damage?): write the account as text with every digit`,
      });
    }
    await writer.add(line, extra, plan.accepted.get(line.rowNo) ?? null);
  });
  await writer.flush();
  if (pass.rows !== lines.length || (await fileSha256(opts.csvPath)) !== sha) {
    throw new InputError(`${opts.csvPath} changed while it was being read (is it still being written?): wait until it is complete and run again`);
  }
  validTotal += writer.validTotalPaise;
  invalid += writer.invalid;
  warnings += writer.warnings;
  await finish(trx, b, opts, sha, revision, pass);
  return {
    batch: b.name,
    revision,
    kind: 'revised',
    rows: pass.rows,
    invalid,
    warnings,
    validTotalPaise: validTotal,
    fileTotalPaise: pass.fileTotalPaise,
    revisionSummary: summaryOf(plan, stored, plan.insert.length - writer.invalid),
    headerNotes: pass.headerNotes,
    problems: pass.problems,
    ready: await readyOf(trx, b.name),
    dryRun: opts.dryRun ?? false,
  };
}

async function finish(trx: Knex.Transaction, b: BatchRecord, opts: IngestOptions, sha: string, revision: number, pass: ReadPass): Promise<void> {
  if (revision === b.revision && (await fileSha256(opts.csvPath)) !== sha) {
    throw new InputError(`${opts.csvPath} changed while it was being read (is it still being written?): wait until it is complete and run again`);
  }
  const fingerprint = pass.fingerprint.digest();
  // A new batch, or a corrected copy: either way, a file another batch was read from is that payroll again.
  if (!opts.allowDuplicateFile) {
    if (fingerprint) await lockFileContent(trx, fingerprint);
    await refuseDuplicateFile(trx, b.name, { sha256: sha, fingerprint, fingerprintDays: SAME_PAYMENTS_DAYS, payments: pass.fingerprint.payments });
    await refuseNearCopy(trx, b.name);
  }
  await completeIngest(trx, b.name, {
    sourceFile: path.resolve(opts.csvPath),
    sha256: sha,
    revision,
    sourceHeader: pass.header,
    referenceColumn: pass.referenceColumn,
    fingerprint,
    payments: pass.fingerprint.payments,
    uploadedBy: opts.uploadedBy ?? null,
  });
}

function summaryOf(plan: RevisionPlan, stored: StoredPayee[], toPay: number): RevisionSummary {
  const byId = new Map(stored.map((s) => [String(s.id), s]));
  const removed = plan.removed.slice(0, MAX_REMOVED_LISTED).map((id) => {
    const s = byId.get(id)!;
    return { row: s.row_no, name: s.name, account: maskAccount(s.account_no ?? ''), amountPaise: s.amount_paise === null ? null : BigInt(s.amount_paise) };
  });
  return {
    kept: plan.keep.size,
    dropped: plan.drop.length,
    removedCount: plan.removed.length,
    removed,
    toPay,
    keptNotInFile: plan.keptNotInFile.length - plan.accepted.size,
    toInsert: plan.insert.length,
    accepted: plan.accepted.size,
    conflicts: plan.conflicts,
  };
}

function money(p: bigint | null): string {
  return p === null ? '(none)' : formatRupeesIndian(p);
}

/** One difference as a person reads it: accounts masked, amounts in rupees, a blank cell named. */
function describeDifference(d: Difference): string {
  const shown = (v: string | null) => (v === null || v.trim() === '' ? '(blank)' : JSON.stringify(v));
  switch (d.field) {
    case 'amount':
      return `amount ${money(d.old === null ? null : BigInt(d.old))} -> ${money(d.new === null ? null : BigInt(d.new))}`;
    case 'account':
      return `account ${maskAccount(d.old ?? '')} -> ${maskAccount(d.new ?? '')}`;
    case 'ifsc':
      return `IFSC ${d.old ?? '(blank)'} -> ${d.new ?? '(blank)'}`;
    case 'reference':
      return `reference ${shown(d.old)} -> ${shown(d.new)}`;
    case 'order_id':
      return `order_id ${shown(d.old)} -> ${shown(d.new)} (the row is in review: the API holds a payout under the old order_id that may have paid this payee; check it first)`;
    default:
      return `${d.field} changed`;
  }
}

const LINK_WORDS: Record<KeyKind, string> = {
  reference: 'reference',
  account: 'account and IFSC',
  account_no: 'account number',
  email: 'email',
  mobile: 'mobile number',
  name: 'name',
};

/** The refusal a person reads: each conflict with old and new values, and the ways out. */
export function conflictMessage(batch: string, conflicts: Conflict[]): string {
  const lines = conflicts.map((c) => {
    const changes = c.differences.map(describeDifference);
    const by = c.linkedBy.length ? `; the same payee by ${c.linkedBy.map((k) => LINK_WORDS[k]).join(', ')}` : '';
    return `  row ${c.newRowNo} (was row ${c.oldRowNo}, ${c.oldState}${c.oldTransactionId ? `, UTR ${c.oldTransactionId}` : ''}${by}): ${changes.join(', ')}`;
  });
  return (
    `the corrected copy changes ${conflicts.length} payout${conflicts.length > 1 ? 's' : ''} of batch "${batch}" that may already have been paid; nothing was stored or sent:\n` +
    lines.join('\n') +
    `\nEither put the old values back in the file (the earlier payout stands), pay the difference in a follow-up batch, ` +
    `or, if the line is a payment of its own, pay it in full in addition with --accept-change <row> (${conflicts.map((c) => `--accept-change ${c.newRowNo}`).join(' ')}).`
  );
}

function toNewRow(r: Line, batch: string, revision: number, extraErrors: Issue[], replaces: string | null): NewRow {
  const errors = [...r.errors, ...extraErrors];
  const valid = errors.length === 0 && r.orderId !== null;
  return {
    batch,
    revision,
    row_no: r.rowNo,
    // An invalid row is never sent; it holds no order_id so it can never block a valid row's.
    order_id: valid ? r.orderId : null,
    order_id_source: valid ? r.orderIdSource : null,
    state: valid ? 'ready' : 'invalid',
    name: r.name || null,
    email: r.email || null,
    mobile: r.mobile || null,
    address: r.address || null,
    method: r.method,
    account_no: r.accountNumber || null,
    bank_name: r.bankName || null,
    ifsc: r.ifsc || null,
    amount_paise: r.amountPaise !== null && r.amountPaise > 0n ? r.amountPaise : null,
    remarks: r.remarks,
    user_id: r.userId,
    errors,
    warnings: r.warnings,
    payee_key: r.accountNumber && r.ifsc ? payeeKey(r.accountNumber, r.ifsc) : null,
    ref_key: r.reference ? refKey(r.reference) : null,
    reference: r.reference ?? null,
    source: r.source ?? null,
    replaces_row_id: replaces,
  };
}
