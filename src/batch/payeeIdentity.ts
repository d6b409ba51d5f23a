import { accountKey, emailKey, ifscKey, mobileKey, nameKey, payeeKey, refKey } from './payee.js';

/**
 * Payee identity: "is this line the same person as that row?", decided here and nowhere else. A corrected
 * copy of a batch's file is merged with it (src/engine/revise.ts), and the change plan compares a batch with
 * the previous one, by this one matcher. Pure functions.
 *
 * A line and a row are the same payee when they share a key:
 * - `reference`: the payee reference (employee id), when both files have a reference column;
 * - `account`: account number and IFSC, normalised (spaces, hyphens, case, leading zeros: src/batch/payee.ts);
 * - `account_no`: the account number alone (an IFSC corrected, or changed by a bank merger);
 * - `email`, `mobile`: the payee's contact details;
 * - `name`: the payee's name, letters and digits only, linking only what no other key links.
 *
 * Reference and account are strong: they link whatever carries them. The others are only as good as they
 * are distinctive: an email or a mobile number that rows of different names share (a placeholder such as
 * hr@company.in, an agency's or a family's number) links nobody, nor does an account number that rows of
 * different names share, nor a name that rows paying different accounts share (two Rahul Kumars). That is
 * decided on each side on its own: on the earlier rows, and on the new lines.
 *
 * Pairing: first every line with an earlier row holding the identical payment (same account and IFSC, same
 * amount, same reference), the row with the highest `priority` first (a row that may have been paid before
 * one that was not); then what is left, by the keys they share, the strongest link first. A pair that is
 * not identical carries its differences, old and new, for a person to decide: whether a difference on a row
 * that may have been paid is a conflict is the caller's rule (revise.ts), not this module's.
 */

export type KeyKind = 'reference' | 'account' | 'account_no' | 'email' | 'mobile' | 'name';

/**
 * The fields a difference can be on. Reference, account, IFSC and amount decide a payment; the rest are
 * contact details. order_id is never compared here: a revision adds it for a row in review given a new one.
 */
export type Field = 'reference' | 'account' | 'ifsc' | 'amount' | 'name' | 'email' | 'mobile' | 'order_id';
export const PAYMENT_FIELDS: readonly Field[] = ['reference', 'account', 'ifsc', 'amount'];

export interface PayeeRecord {
  rowNo: number;
  reference: string | null;
  account: string | null;
  ifsc: string | null;
  email: string | null;
  mobile: string | null;
  name: string | null;
  amountPaise: bigint | null;
}

export interface Difference {
  field: Field;
  /** The values as written (callers mask accounts before showing them). */
  old: string | null;
  new: string | null;
}

export interface PayeeMatch<O, N> {
  old: O;
  line: N;
  /** The keys the two share (empty never: a pair always shares one). */
  linkedBy: KeyKind[];
  /** The same payment: account and IFSC, amount and (when compared) reference equal. */
  identical: boolean;
  /** Every field that differs: payment fields first, then contact details. */
  differences: Difference[];
}

export interface MatchResult<O, N> {
  pairs: PayeeMatch<O, N>[];
  unmatchedOld: O[];
  unmatchedNew: N[];
}

export interface MatchOptions<O> {
  /** Compare references: both files have a reference column. A blanked cell is then a difference. */
  references: boolean;
  /** Which earlier row stands for an identical line first (higher first): e.g. 1 for a row that may have been paid. */
  priority?: (o: O) => number;
}

/** How strongly a shared key links (a pair's score is the sum over the keys it shares). */
const WEIGHT: Record<KeyKind, number> = { reference: 16, account: 16, account_no: 8, email: 4, mobile: 4, name: 2 };
const KINDS = Object.keys(WEIGHT) as KeyKind[];

function keyOf(kind: KeyKind, r: PayeeRecord, references: boolean): string | null {
  switch (kind) {
    case 'reference':
      return references ? refKey(r.reference) : null;
    case 'account':
      return payeeKey({ accountNumber: r.account ?? '', ifsc: r.ifsc ?? '' });
    case 'account_no': {
      const k = accountKey(r.account ?? '');
      // "0" or "12": too short to tell anyone apart.
      return k.length >= 6 ? k : null;
    }
    case 'email':
      return emailKey(r.email);
    case 'mobile':
      return mobileKey(r.mobile);
    case 'name':
      return nameKey(r.name);
  }
}

/** What makes two of one kind the "same holder": rows sharing a contact or an account number must share a name; rows sharing a name, an account. */
function holderOf(kind: KeyKind, r: PayeeRecord): string {
  if (kind === 'name') return payeeKey({ accountNumber: r.account ?? '', ifsc: r.ifsc ?? '' }) ?? `row:${r.rowNo}`;
  return nameKey(r.name) ?? `row:${r.rowNo}`;
}

/** The key values of one side that link: strong kinds always, the others when every row carrying them has one holder. */
function usableKeys(side: readonly PayeeRecord[], references: boolean): Map<KeyKind, Set<string>> {
  const out = new Map<KeyKind, Set<string>>();
  for (const kind of KINDS) {
    const holders = new Map<string, string | null>();
    for (const r of side) {
      const k = keyOf(kind, r, references);
      if (k === null) continue;
      const h = kind === 'reference' || kind === 'account' ? '' : holderOf(kind, r);
      const seen = holders.get(k);
      if (seen === undefined) holders.set(k, h);
      else if (seen !== h) holders.set(k, null);
    }
    out.set(kind, new Set([...holders].filter(([, h]) => h !== null).map(([k]) => k)));
  }
  return out;
}

function identityOf(r: PayeeRecord, references: boolean): string | null {
  const p = payeeKey({ accountNumber: r.account ?? '', ifsc: r.ifsc ?? '' });
  if (p === null || r.amountPaise === null) return null;
  return `${p}|${r.amountPaise}|${references ? (refKey(r.reference) ?? '') : ''}`;
}

/** Every field on which the line differs from the row, payment fields first. */
export function differencesOf(o: PayeeRecord, n: PayeeRecord, references: boolean): Difference[] {
  const out: Difference[] = [];
  const add = (field: Field, same: boolean, a: string | null, b: string | null) => {
    if (!same) out.push({ field, old: a, new: b });
  };
  if (references) add('reference', refKey(o.reference) === refKey(n.reference), o.reference, n.reference);
  add('account', accountKey(o.account ?? '') === accountKey(n.account ?? ''), o.account, n.account);
  add('ifsc', ifscKey(o.ifsc ?? '') === ifscKey(n.ifsc ?? ''), o.ifsc, n.ifsc);
  add('amount', o.amountPaise === n.amountPaise, o.amountPaise?.toString() ?? null, n.amountPaise?.toString() ?? null);
  add('name', nameKey(o.name) === nameKey(n.name), o.name, n.name);
  add('email', emailKey(o.email) === emailKey(n.email), o.email, n.email);
  add('mobile', mobileKey(o.mobile) === mobileKey(n.mobile), o.mobile, n.mobile);
  return out;
}

/** True when a difference decides a payment (reference, account, IFSC, amount). */
export function isPaymentDifference(d: Difference): boolean {
  return PAYMENT_FIELDS.includes(d.field);
}

/**
 * Matches the lines of a new file to earlier rows (see the module comment). Every row and every line ends
 * in exactly one of `pairs`, `unmatchedOld`, `unmatchedNew`; the result is deterministic (file order and
 * row numbers break ties).
 */
export function matchPayees<O extends PayeeRecord, N extends PayeeRecord>(old: readonly O[], lines: readonly N[], opts: MatchOptions<O>): MatchResult<O, N> {
  const refs = opts.references;
  const prio = opts.priority ?? (() => 0);
  const byPriority = (a: O, b: O) => prio(b) - prio(a) || a.rowNo - b.rowNo;
  const pairs: PayeeMatch<O, N>[] = [];
  const oldLeft = new Set<O>(old);
  const newLeft: N[] = [];

  // 1. The identical payment: the row that may have paid stands for the line.
  const identical = new Map<string, O[]>();
  for (const o of [...old].sort(byPriority)) {
    const k = identityOf(o, refs);
    if (k === null) continue;
    const list = identical.get(k);
    if (list) list.push(o);
    else identical.set(k, [o]);
  }
  for (const n of lines) {
    const k = identityOf(n, refs);
    const o = k === null ? undefined : identical.get(k)?.shift();
    if (o === undefined) {
      newLeft.push(n);
      continue;
    }
    oldLeft.delete(o);
    pairs.push({ old: o, line: n, linkedBy: linksOf(o, n, refs, null, null), identical: true, differences: differencesOf(o, n, refs) });
  }

  // 2. The rest, by the keys they share: the strongest link first.
  // Whether a key is distinctive is decided on each whole side, not on what is left of it: a placeholder
  // email of two payees is no key even once one of them has been paired.
  const restOld = old.filter((o) => oldLeft.has(o));
  const usableOld = usableKeys(old, refs);
  const usableNew = usableKeys(lines, refs);
  const index = new Map<string, O[]>();
  for (const o of restOld) {
    for (const kind of KINDS) {
      const k = keyOf(kind, o, refs);
      if (k === null || !usableOld.get(kind)!.has(k) || !usableNew.get(kind)!.has(k)) continue;
      const ik = `${kind}\u0000${k}`;
      const list = index.get(ik);
      if (list) list.push(o);
      else index.set(ik, [o]);
    }
  }
  const edges: { o: O; n: N; ni: number; score: number; linkedBy: KeyKind[] }[] = [];
  newLeft.forEach((n, ni) => {
    const candidates = new Set<O>();
    for (const kind of KINDS) {
      const k = keyOf(kind, n, refs);
      if (k === null) continue;
      for (const o of index.get(`${kind}\u0000${k}`) ?? []) candidates.add(o);
    }
    for (const o of candidates) {
      const linkedBy = linksOf(o, n, refs, usableOld, usableNew);
      const score = linkedBy.reduce((s, kind) => s + WEIGHT[kind], 0) + (o.amountPaise === n.amountPaise ? 1 : 0);
      edges.push({ o, n, ni, score, linkedBy });
    }
  });
  edges.sort((a, b) => b.score - a.score || byPriority(a.o, b.o) || a.ni - b.ni);
  const taken = new Set<N>();
  for (const e of edges) {
    if (!oldLeft.has(e.o) || taken.has(e.n)) continue;
    oldLeft.delete(e.o);
    taken.add(e.n);
    pairs.push({ old: e.o, line: e.n, linkedBy: e.linkedBy, identical: false, differences: differencesOf(e.o, e.n, refs) });
  }
  pairs.sort((a, b) => a.line.rowNo - b.line.rowNo);
  return { pairs, unmatchedOld: old.filter((o) => oldLeft.has(o)), unmatchedNew: newLeft.filter((n) => !taken.has(n)) };
}

/** The keys two records share (only usable ones when the usable sets are given). */
function linksOf(o: PayeeRecord, n: PayeeRecord, refs: boolean, usableOld: Map<KeyKind, Set<string>> | null, usableNew: Map<KeyKind, Set<string>> | null): KeyKind[] {
  const out: KeyKind[] = [];
  for (const kind of KINDS) {
    const a = keyOf(kind, o, refs);
    if (a === null || a !== keyOf(kind, n, refs)) continue;
    if (usableOld && usableNew && (!usableOld.get(kind)!.has(a) || !usableNew.get(kind)!.has(a))) continue;
    out.push(kind);
  }
  return out;
}
