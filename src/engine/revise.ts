import type { RowState } from '../states.js';
import { accountKey as batchAccountKey, payeeKey as batchPayeeKey, refKey as batchRefKey } from '../batch/payee.js';

/**
 * How a corrected copy of a batch's file is merged: a pure plan, matched by payee, never by order_id.
 *
 * Rows are matched by payee identity: the reference column (an employee id) when both the batch and the new
 * file have one, else the account (spreadsheet damage normalised: spaces, hyphens, leading zeros) and IFSC.
 * Within one payee, lines with the same money pair first (a row that was sent before one that was not),
 * then the rest in file order. For each pair:
 * - the old row was never claimed: it is replaced by the new line (nothing of it can exist at the API);
 * - the old row was claimed and the money is the same: the old row stands for the line (its payout, state
 *   and order_id are kept; the line is not paid again);
 * - the old row was claimed, the money differs and the money may have moved (anything but rejected or
 *   failed): a conflict, never paid automatically; `acceptChanges` (the new file's row numbers) pays the
 *   new line as a payout of its own, in addition;
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
  /** Account, IFSC and amount are well formed (the line can be a payout). */
  identifiable: boolean;
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

function sameMoney(o: OldPayee, n: NewPayee): boolean {
  return o.amountPaise === n.amountPaise && payeeKey(o.account, o.ifsc) === payeeKey(n.account, n.ifsc);
}

export function planRevision(old: OldPayee[], lines: NewPayee[], acceptChanges: ReadonlySet<number> = new Set()): RevisionPlan {
  const byRef = old.some((o) => refKey(o.reference) !== '') && lines.some((n) => refKey(n.reference) !== '');
  const keyOfOld = (o: OldPayee) => (byRef && refKey(o.reference) ? `ref:${refKey(o.reference)}` : `acc:${payeeKey(o.account, o.ifsc)}`);
  const keyOfNew = (n: NewPayee) => (byRef && refKey(n.reference) ? `ref:${refKey(n.reference)}` : `acc:${payeeKey(n.account, n.ifsc)}`);

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

  // Old rows by payee, the ones that may have paid first (they must be matched before an unsent twin).
  const oldByKey = new Map<string, OldPayee[]>();
  for (const o of [...old].sort((a, b) => Number(b.claimed) - Number(a.claimed) || a.rowNo - b.rowNo)) {
    if (o.state === 'invalid' && !o.claimed) continue; // nothing to match: an invalid row is simply replaced
    const k = keyOfOld(o);
    oldByKey.set(k, [...(oldByKey.get(k) ?? []), o]);
  }
  const linesByKey = new Map<string, NewPayee[]>();
  for (const n of lines) {
    if (!n.identifiable) {
      plan.insert.push(n.rowNo);
      continue;
    }
    const k = keyOfNew(n);
    linesByKey.set(k, [...(linesByKey.get(k) ?? []), n]);
  }

  const matched = new Set<string>();
  const pair = (o: OldPayee, n: NewPayee) => {
    matched.add(o.id);
    if (!o.claimed) {
      plan.drop.push(o.id);
      plan.insert.push(n.rowNo);
      if (accountKey(o.account) === accountKey(n.account) && (o.account ?? '') !== n.account && (o.account ?? '').length > n.account.length) {
        plan.lostZeros.set(n.rowNo, { oldAccount: o.account ?? '' });
      }
      return;
    }
    if (sameMoney(o, n)) {
      plan.keep.set(n.rowNo, o.id);
      return;
    }
    if (!o.maySent || NO_MONEY_MOVED.includes(o.state)) {
      plan.keptNotInFile.push(o.id);
      plan.insert.push(n.rowNo);
      return;
    }
    if (acceptChanges.has(n.rowNo)) {
      plan.keptNotInFile.push(o.id);
      plan.accepted.set(n.rowNo, o.id);
      plan.insert.push(n.rowNo);
      return;
    }
    plan.keptNotInFile.push(o.id);
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
    });
  };

  for (const [k, group] of linesByKey) {
    const candidates = [...(oldByKey.get(k) ?? [])];
    const rest: NewPayee[] = [];
    // Same money first: the row that may have paid stands for the line.
    for (const n of group) {
      const i = candidates.findIndex((o) => sameMoney(o, n));
      if (i === -1) rest.push(n);
      else pair(candidates.splice(i, 1)[0]!, n);
    }
    // Then the rest in order: a changed amount or account.
    for (const n of rest) {
      const o = candidates.shift();
      if (o) pair(o, n);
      else plan.insert.push(n.rowNo);
    }
  }
  for (const o of old) {
    if (matched.has(o.id)) continue;
    if (o.claimed) plan.keptNotInFile.push(o.id);
    else {
      plan.drop.push(o.id);
      // An invalid row never paid anyone; its corrected line (another account, say) is inserted as new.
      if (o.state !== 'invalid') plan.removed.push(o.id);
    }
  }
  plan.insert.sort((a, b) => a - b);
  return plan;
}
