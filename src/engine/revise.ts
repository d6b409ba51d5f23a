import type { RowState } from '../states.js';
import { allows, MOVES, maySent } from './machine.js';
import { accountKey as batchAccountKey, payeeKey as batchPayeeKey, refKey as batchRefKey } from '../batch/payee.js';
import { isPaymentDifference, matchPayees, type Difference, type KeyKind } from '../batch/payeeIdentity.js';

/**
 * How a corrected copy of a batch's file is merged: a pure plan, matched by payee, never by order_id.
 *
 * Rows are matched by payee identity (src/batch/payeeIdentity.ts: any shared key of reference, account and
 * IFSC, account number, email, mobile or name links a line to a row; the identical payment pairs first, a
 * row that was claimed before one that was not). For each pair:
 * - the old row was never claimed: it is replaced by the new line (nothing of it can exist at the API);
 * - the old row was claimed and the payment is identical (account and IFSC, amount, reference): the old row
 *   stands for the line (its payout, state and order_id are kept; the line is not paid again);
 * - the old row was claimed, a payment field differs (the reference, blanked or edited, the account, the
 *   IFSC or the amount) and the money may have moved (anything but rejected or failed): a conflict, never
 *   paid automatically; `acceptChanges` (the new file's row numbers) pays the new line as a payout of its
 *   own, in addition;
 * - the old row was rejected or failed, or none of its requests can have executed (no money moved): the new
 *   line is paid, the old row is kept as history and never sent.
 * Old rows without a line: kept if ever claimed ("kept: already sent"), dropped otherwise (listed as
 * "removed": a payee no longer in the file, never paid). New lines without an old row are new payees.
 */

export interface OldPayee {
  id: string;
  rowNo: number;
  account: string | null;
  ifsc: string | null;
  amountPaise: bigint | null;
  reference: string | null;
  name: string | null;
  email: string | null;
  mobile: string | null;
  state: RowState;
  /** first_claimed_at is set: the row was claimed at least once (it is never deleted). */
  claimed: boolean;
  /** send_deadline is set: a request for it may have executed, so money may have moved. */
  maySent: boolean;
  orderId: string | null;
  transactionId: string | null;
}

export interface NewPayee {
  rowNo: number;
  account: string;
  ifsc: string;
  amountPaise: bigint | null;
  reference: string | null;
  name: string | null;
  email: string | null;
  mobile: string | null;
  /** Account, IFSC and amount are well formed (the line can be a payout). */
  identifiable: boolean;
  /** The order_id the file gives the line (its order_id column), or null when the program derives it. */
  orderId?: string | null;
}

export interface Conflict {
  oldId: string;
  oldRowNo: number;
  newRowNo: number;
  oldState: RowState;
  oldAccount: string | null;
  newAccount: string;
  oldIfsc: string | null;
  newIfsc: string;
  oldAmountPaise: bigint | null;
  newAmountPaise: bigint | null;
  oldTransactionId: string | null;
  /** What links the line to the row (reference, account, email…). */
  linkedBy: KeyKind[];
  /** Every difference, old and new values as written (payment fields first). */
  differences: Difference[];
}

export interface RevisionPlan {
  /** New line -> the old (claimed) row that stands for it: the line is not inserted. */
  keep: Map<number, string>;
  /** Old rows never claimed: deleted (replaced by their new line, or no longer in the file). */
  drop: string[];
  /** Of `drop`: valid rows no line of the new file stands for (payees no longer in the file, never sent). */
  removed: string[];
  /** Old claimed rows that no line of the new file stands for: kept, marked not in the file. */
  keptNotInFile: string[];
  /** New lines paid although a claimed row of the same payee differs (accepted changes), -> that old row. */
  accepted: Map<number, string>;
  /** Money differs from a row that may have paid: refused unless accepted. */
  conflicts: Conflict[];
  /** New lines to insert (new payees, replacements, accepted changes, payees whose old payout failed). */
  insert: number[];
  /** New lines whose account equals their old row's only up to leading zeros (spreadsheet damage). */
  lostZeros: Map<number, { oldAccount: string }>;
}

/** What spreadsheets do to account numbers (spaces, hyphens, leading zeros) does not make another payee. */
export function accountKey(account: string | null): string {
  return batchAccountKey(account ?? '');
}

/** A payee reference for matching ("EMP 0042" and "emp0042" are one person); '' when there is none. */
export function refKey(reference: string | null): string {
  return batchRefKey(reference) ?? '';
}

export function payeeKey(account: string | null, ifsc: string | null): string {
  return batchPayeeKey({ accountNumber: account ?? '', ifsc: ifsc ?? '' }) ?? `|${ifsc ?? ''}`;
}

/** States in which no money moved (or it came back): a different line for the payee is simply paid. */
const NO_MONEY_MOVED: readonly RowState[] = ['rejected', 'failed', 'invalid', 'cancelled'];

/**
 * How a stored row stands in a revision, decided once from the move table. A row the `drop` move may not
 * delete is kept (`claimed`): one ever claimed, and one in needs_review, which a person is looking at
 * (a never-sent row lands there when the API holds a payout under its order_id that is not ours). Money may
 * have moved (`maySent`) when a request of ours may have executed, and for a needs_review row: the payout
 * the API holds under its order_id may have paid this payee, so a changed line for it is a conflict.
 */
export function revisionStanding(row: { state: RowState; send_deadline: Date | string | null; first_claimed_at: Date | string | null }): { claimed: boolean; maySent: boolean } {
  const review = row.state === 'needs_review';
  return { claimed: !allows(MOVES.drop, row), maySent: maySent(row) || review };
}

export interface PlanOptions {
  /** Lines (the new file's row numbers) whose changed payment is paid in addition. */
  acceptChanges?: ReadonlySet<number>;
  /** Both files have a reference column: references are compared (a blanked one is a difference). */
  references?: boolean;
}


export function planRevision(old: OldPayee[], lines: NewPayee[], opts: PlanOptions = {}): RevisionPlan {
  const acceptChanges = opts.acceptChanges ?? new Set<number>();
  const references = opts.references ?? (old.some((o) => refKey(o.reference) !== '') && lines.some((n) => refKey(n.reference) !== ''));
  const plan: RevisionPlan = {
    keep: new Map(),
    drop: [],
    removed: [],
    keptNotInFile: [],
    accepted: new Map(),
    conflicts: [],
    insert: [],
    lostZeros: new Map(),
  };

  // Nothing to match on an invalid row never claimed: it is simply replaced (or dropped).
  const candidates: OldPayee[] = [];
  for (const o of old) {
    if (o.state === 'invalid' && !o.claimed) {
      plan.drop.push(o.id);
      continue;
    }
    candidates.push(o);
  }
  const matchable: NewPayee[] = [];
  for (const n of lines) {
    if (n.identifiable) matchable.push(n);
    else plan.insert.push(n.rowNo);
  }
  const m = matchPayees(candidates, matchable, { references, priority: (o) => (o.maySent ? 2 : o.claimed ? 1 : 0) });

  for (const { old: o, line: n, identical, differences, linkedBy } of m.pairs) {
    if (!o.claimed) {
      plan.drop.push(o.id);
      plan.insert.push(n.rowNo);
      if (accountKey(o.account) === accountKey(n.account) && (o.account ?? '') !== n.account && (o.account ?? '').length > n.account.length) {
        plan.lostZeros.set(n.rowNo, { oldAccount: o.account ?? '' });
      }
      continue;
    }
    // A row in review whose line now names another order_id: the person gave it a new one (the collision's
    // advice). The payout the API holds under the old one may still be this payee's, so it is a decision.
    const newOrderId = o.state === 'needs_review' && n.orderId && n.orderId !== o.orderId ? { field: 'order_id' as const, old: o.orderId, new: n.orderId } : null;
    if (identical && !newOrderId) {
      plan.keep.set(n.rowNo, o.id);
      continue;
    }
    plan.keptNotInFile.push(o.id);
    if (!o.maySent || NO_MONEY_MOVED.includes(o.state)) {
      plan.insert.push(n.rowNo);
      continue;
    }
    if (acceptChanges.has(n.rowNo)) {
      plan.accepted.set(n.rowNo, o.id);
      plan.insert.push(n.rowNo);
      continue;
    }
    plan.conflicts.push({
      oldId: o.id,
      oldRowNo: o.rowNo,
      newRowNo: n.rowNo,
      oldState: o.state,
      oldAccount: o.account,
      newAccount: n.account,
      oldIfsc: o.ifsc,
      newIfsc: n.ifsc,
      oldAmountPaise: o.amountPaise,
      newAmountPaise: n.amountPaise,
      oldTransactionId: o.transactionId,
      linkedBy,
      differences: [...differences.filter(isPaymentDifference), ...(newOrderId ? [newOrderId] : [])],
    });
  }
  for (const n of m.unmatchedNew) plan.insert.push(n.rowNo);
  for (const o of m.unmatchedOld) {
    if (o.claimed) plan.keptNotInFile.push(o.id);
    else {
      plan.drop.push(o.id);
      // An invalid row never paid anyone; its corrected line (another account, say) is inserted as new.
      if (o.state !== 'invalid') plan.removed.push(o.id);
    }
  }
  plan.insert.sort((a, b) => a - b);
  plan.conflicts.sort((a, b) => a.newRowNo - b.newRowNo);
  return plan;
}
