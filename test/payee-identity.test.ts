/**
 * Payee identity (issue 17): "is this line the same person as that row?", decided in one module
 * (src/batch/payeeIdentity.ts) and applied by the revision plan (src/engine/revise.ts). One table, every case.
 */
import { describe, expect, it } from 'vitest';
import { matchPayees, type PayeeRecord } from '../src/batch/payeeIdentity.js';
import { planRevision, revisionStanding, type NewPayee, type OldPayee } from '../src/engine/revise.js';
import type { RowState } from '../src/states.js';

interface P {
  ref?: string | null;
  acc: string;
  ifsc?: string;
  email?: string;
  mobile?: string;
  name: string;
  amount: number;
}

function line(rowNo: number, p: P): NewPayee {
  return {
    rowNo,
    account: p.acc,
    ifsc: p.ifsc ?? 'SBIN0000691',
    amountPaise: BigInt(p.amount) * 100n,
    reference: p.ref ?? null,
    name: p.name,
    email: p.email ?? `${p.name.toLowerCase().replace(/\W+/g, '.')}@example.com`,
    mobile: p.mobile ?? `9${String(100000000 + [...p.name].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 900000000, 7)).slice(-9)}`,
    identifiable: true,
  };
}

/**
 * An earlier row: `paid` (approved, sent), `unsent` (never claimed), `refused` (claimed, never executed),
 * `rejected`, `review` (never sent, in needs_review: the API holds a payout under its order_id). Its standing
 * in the revision comes from the program's own derivation (revisionStanding) where the stored row says it.
 */
function row(id: string, l: NewPayee, how: 'paid' | 'unsent' | 'refused' | 'rejected' | 'review' = 'paid'): OldPayee {
  if (how === 'review') {
    return { ...row(id, l, 'unsent'), state: 'needs_review', ...revisionStanding({ state: 'needs_review', send_deadline: null, first_claimed_at: null }) };
  }
  const state: RowState = how === 'paid' ? 'approved' : how === 'unsent' ? 'ready' : how === 'refused' ? 'ready' : 'rejected';
  return {
    id,
    rowNo: l.rowNo,
    account: l.account,
    ifsc: l.ifsc,
    amountPaise: l.amountPaise,
    reference: l.reference,
    name: l.name,
    email: l.email,
    mobile: l.mobile,
    state,
    claimed: how !== 'unsent',
    maySent: how === 'paid' || how === 'rejected',
    orderId: `PO${id}`,
    transactionId: how === 'paid' ? `UTR${id}` : null,
  };
}

const ASHA: P = { ref: 'E1', acc: '84231885284', name: 'Asha Rao', amount: 76553 };
const BALA: P = { ref: 'E2', acc: '22345678901', name: 'Bala K', amount: 2000 };
const CHITRA: P = { ref: 'E3', acc: '32345678901', name: 'Chitra S', amount: 3000 };
const DEV: P = { ref: 'E4', acc: '42345678901', name: 'Dev M', amount: 4000 };

/** A plan in words, for the table: what happens to each line and each earlier row. */
function verdicts(old: OldPayee[], lines: NewPayee[], opts: Parameters<typeof planRevision>[2] = {}) {
  const plan = planRevision(old, lines, opts);
  return {
    keep: [...plan.keep.entries()].map(([n, o]) => `${n}=${o}`),
    conflicts: plan.conflicts.map((c) => `${c.newRowNo}~${c.oldId}: ${c.differences.map((d) => d.field).join('+')} by ${c.linkedBy.join('+')}`),
    insert: plan.insert,
    keptNotInFile: plan.keptNotInFile,
    drop: plan.drop,
    removed: plan.removed,
    accepted: [...plan.accepted.entries()].map(([n, o]) => `${n}=${o}`),
  };
}

const noRef = (p: P): P => ({ ...p, ref: null });

describe('payee identity: a line matches an earlier row when any key matches; a difference on a row that may have been paid is a conflict', () => {
  const cases: { name: string; old: OldPayee[]; lines: NewPayee[]; refs?: boolean; accept?: number[]; expect: Partial<ReturnType<typeof verdicts>> }[] = [
    {
      name: 'the same file again: every paid row stands for its line',
      old: [row('a', line(2, ASHA)), row('b', line(3, BALA))],
      lines: [line(2, ASHA), line(3, BALA)],
      expect: { keep: ['2=a', '3=b'], conflicts: [], insert: [] },
    },
    {
      name: 'issue 17.1: a paid payee\'s account changed, no reference column: the same payee by email, mobile and name',
      old: [row('a', line(2, noRef(ASHA))), row('b', line(3, noRef(BALA)))],
      lines: [line(2, { ...noRef(ASHA), acc: '12345678' }), line(3, noRef(BALA))],
      refs: false,
      expect: { keep: ['3=b'], conflicts: ['2~a: account by email+mobile+name'], insert: [] },
    },
    {
      name: 'issue 17.1: only the IFSC changed on a paid row: the same payee by account number',
      old: [row('a', line(2, noRef(ASHA)))],
      lines: [line(2, { ...noRef(ASHA), ifsc: 'HDFC0000001', email: 'new@example.com', mobile: '9000000001' })],
      refs: false,
      expect: { conflicts: ['2~a: ifsc by account_no+name'], insert: [] },
    },
    {
      name: 'issue 17.2: a blanked employee id is a difference, not a new payee',
      old: [row('a', line(2, ASHA)), row('c', line(4, CHITRA))],
      lines: [line(2, ASHA), line(4, { ...CHITRA, ref: null })],
      refs: true,
      expect: { keep: ['2=a'], conflicts: ['4~c: reference by account+account_no+email+mobile+name'], insert: [] },
    },
    {
      name: 'issue 17.2: an edited employee id (E4 -> E4A) on the same account is a conflict',
      old: [row('d', line(5, DEV))],
      lines: [line(5, { ...DEV, ref: 'E4A' })],
      refs: true,
      expect: { conflicts: ['5~d: reference by account+account_no+email+mobile+name'], insert: [] },
    },
    {
      name: 'the same reference with a new account is a conflict',
      old: [row('a', line(2, ASHA))],
      lines: [line(2, { ...ASHA, acc: '99999999999', email: 'x@example.com', mobile: '9111111111' })],
      refs: true,
      expect: { conflicts: ['2~a: account by reference+name'] },
    },
    {
      name: 'the same email with a new IFSC and a new account is a conflict',
      old: [row('a', line(2, noRef(ASHA)))],
      lines: [line(2, { ...noRef(ASHA), acc: '55555555555', ifsc: 'ICIC0000001', mobile: '9222222222', name: 'A. Rao', email: 'asha.rao@example.com' })],
      refs: false,
      expect: { conflicts: ['2~a: account+ifsc by email'] },
    },
    {
      name: 'a changed amount is a conflict; --accept-change pays the new line in addition',
      old: [row('a', line(2, ASHA))],
      lines: [line(2, { ...ASHA, amount: 80000 })],
      refs: true,
      accept: [2],
      expect: { conflicts: [], accepted: ['2=a'], insert: [2], keptNotInFile: ['a'] },
    },
    {
      name: 'a placeholder email and mobile shared by different people link nobody: one payee gone, another new',
      old: [
        row('a', line(2, { ...noRef(ASHA), email: 'hr@company.in', mobile: '9876543210' })),
        row('b', line(3, { ...noRef(BALA), email: 'hr@company.in', mobile: '9876543210' })),
      ],
      lines: [
        line(2, { ...noRef(ASHA), email: 'hr@company.in', mobile: '9876543210' }),
        line(3, { ...noRef(CHITRA), email: 'hr@company.in', mobile: '9876543210' }),
      ],
      refs: false,
      expect: { keep: ['2=a'], conflicts: [], insert: [3], keptNotInFile: ['b'] },
    },
    {
      name: 'two people of one name on a side: the name links neither',
      old: [
        row('a', line(2, { ...noRef(ASHA), name: 'Rahul Kumar', email: 'r1@example.com', mobile: '9000000011' })),
        row('b', line(3, { ...noRef(BALA), name: 'Rahul Kumar', email: 'r2@example.com', mobile: '9000000012' })),
      ],
      lines: [
        line(2, { ...noRef(ASHA), name: 'Rahul Kumar', email: 'r1@example.com', mobile: '9000000011' }),
        line(3, { ...noRef(CHITRA), name: 'Rahul Kumar', email: 'r3@example.com', mobile: '9000000013' }),
      ],
      refs: false,
      expect: { keep: ['2=a'], conflicts: [], insert: [3], keptNotInFile: ['b'] },
    },
    {
      name: 'a salary and a reimbursement of one payee: both stand',
      old: [row('a', line(2, ASHA)), row('a2', line(3, { ...ASHA, amount: 500 }))],
      lines: [line(2, ASHA), line(3, { ...ASHA, amount: 500 })],
      refs: true,
      expect: { keep: ['2=a', '3=a2'], conflicts: [], insert: [] },
    },
    {
      name: 'a line added for a known payee (a reimbursement) is paid; the salary stands',
      old: [row('a', line(2, ASHA))],
      lines: [line(2, ASHA), line(3, { ...ASHA, amount: 500 })],
      refs: true,
      expect: { keep: ['2=a'], conflicts: [], insert: [3] },
    },
    {
      name: 'a row never sent is replaced by its corrected line',
      old: [row('a', line(2, ASHA), 'unsent')],
      lines: [line(2, { ...ASHA, acc: '11111111111' })],
      refs: true,
      expect: { conflicts: [], drop: ['a'], insert: [2], removed: [] },
    },
    {
      name: 'a row the bank rejected: the corrected account is simply paid, the rejected row kept as history',
      old: [row('a', line(2, ASHA), 'rejected')],
      lines: [line(2, { ...ASHA, acc: '11111111111' })],
      refs: true,
      expect: { conflicts: [], insert: [2], keptNotInFile: ['a'] },
    },
    {
      name: 'a row claimed but never executed (refused, 429): no money moved, the new line is paid',
      old: [row('a', line(2, ASHA), 'refused')],
      lines: [line(2, { ...ASHA, amount: 1 })],
      refs: true,
      expect: { conflicts: [], insert: [2], keptNotInFile: ['a'] },
    },
    {
      name: 'an account whose leading zeros a spreadsheet dropped is the same payee, the same payment',
      old: [row('a', line(2, { ...ASHA, acc: '0084231885284' }))],
      lines: [line(2, { ...ASHA, acc: '84231885284' })],
      refs: true,
      expect: { keep: ['2=a'], conflicts: [] },
    },
    {
      name: 'a copy without the reference column at all is matched by the other keys, references not compared',
      old: [row('a', line(2, ASHA)), row('b', line(3, BALA))],
      lines: [line(2, noRef(ASHA)), line(3, noRef(BALA))],
      refs: false,
      expect: { keep: ['2=a', '3=b'], conflicts: [] },
    },
    {
      name: 'no key shared: a payee gone (kept, it was paid) and a new payee paid',
      old: [row('a', line(2, ASHA))],
      lines: [line(2, DEV)],
      refs: true,
      expect: { keep: [], conflicts: [], insert: [2], keptNotInFile: ['a'] },
    },
    {
      name: 'a payee never sent and no longer in the file is removed (named to the person)',
      old: [row('a', line(2, ASHA)), row('b', line(3, BALA), 'unsent')],
      lines: [line(2, ASHA)],
      refs: true,
      expect: { keep: ['2=a'], drop: ['b'], removed: ['b'] },
    },
    {
      name: 'two identical rows, one paid and one never sent: the paid one stands for the first line',
      old: [row('u', line(2, ASHA), 'unsent'), row('p', line(3, ASHA))],
      lines: [line(2, ASHA)],
      refs: true,
      expect: { keep: ['2=p'], drop: ['u'], removed: ['u'] },
    },
    {
      name: 'a row in review (never sent, the API holds a payout under its order_id), the same line: it stands, still with the person',
      old: [row('a', line(2, ASHA), 'review')],
      lines: [line(2, ASHA)],
      refs: true,
      expect: { keep: ['2=a'], conflicts: [], drop: [], insert: [] },
    },
    {
      name: 'a row in review no longer in the file is kept, never deleted',
      old: [row('a', line(2, ASHA), 'review'), row('b', line(3, BALA))],
      lines: [line(3, BALA)],
      refs: true,
      expect: { keep: ['3=b'], drop: [], removed: [], keptNotInFile: ['a'] },
    },
    {
      name: "a row in review with a changed account is a conflict: the API's payout may have paid this payee",
      old: [row('a', line(2, ASHA), 'review')],
      lines: [line(2, { ...ASHA, acc: '11111111111' })],
      refs: true,
      expect: { keep: [], conflicts: ['2~a: account by reference+email+mobile+name'], drop: [], insert: [] },
    },
    {
      name: 'a row in review given a new order_id in the file is a conflict naming both order_ids; --accept-change pays it',
      old: [row('a', { ...line(2, ASHA), orderId: 'ORD-A-1' }, 'review')].map((o) => ({ ...o, orderId: 'ORD-A-1' })),
      lines: [{ ...line(2, ASHA), orderId: 'ORD-A-2' }],
      refs: true,
      expect: { keep: [], conflicts: ['2~a: order_id by reference+account+account_no+email+mobile+name'], drop: [], insert: [] },
    },
    {
      name: 'the same, accepted: the new line is paid, the row in review kept',
      old: [row('a', line(2, ASHA), 'review')].map((o) => ({ ...o, orderId: 'ORD-A-1' })),
      lines: [{ ...line(2, ASHA), orderId: 'ORD-A-2' }],
      refs: true,
      accept: [2],
      expect: { keep: [], conflicts: [], accepted: ['2=a'], insert: [2], keptNotInFile: ['a'], drop: [] },
    },
    {
      name: 'a paid row given a new order_id in the file: its payout stands for the line (nothing paid again)',
      old: [row('a', line(2, ASHA))].map((o) => ({ ...o, orderId: 'ORD-A-1' })),
      lines: [{ ...line(2, ASHA), orderId: 'ORD-A-2' }],
      refs: true,
      expect: { keep: ['2=a'], conflicts: [], insert: [] },
    },
  ];
  it.each(cases)('$name', (c) => {
    const v = verdicts(c.old, c.lines, { references: c.refs ?? true, acceptChanges: new Set(c.accept ?? []) });
    expect(v).toMatchObject(c.expect);
    // Every line is accounted for exactly once: kept, inserted or in conflict.
    const handled = [...v.keep.map((k) => Number(k.split('=')[0])), ...v.insert, ...v.conflicts.map((k) => Number(k.split('~')[0]))];
    expect(handled.sort()).toEqual(c.lines.map((l) => l.rowNo).sort());
  });
});

describe('revisionStanding: how a stored row counts in a revision, from the move table', () => {
  const at = new Date('2026-11-27T06:00:00Z');
  it.each([
    { state: 'ready', first_claimed_at: null, send_deadline: null, claimed: false, maySent: false },
    { state: 'invalid', first_claimed_at: null, send_deadline: null, claimed: false, maySent: false },
    { state: 'ready', first_claimed_at: at, send_deadline: null, claimed: true, maySent: false },
    { state: 'ready', first_claimed_at: at, send_deadline: at, claimed: true, maySent: true },
    { state: 'approved', first_claimed_at: at, send_deadline: at, claimed: true, maySent: true },
    { state: 'needs_review', first_claimed_at: null, send_deadline: null, claimed: true, maySent: true },
    { state: 'needs_review', first_claimed_at: at, send_deadline: at, claimed: true, maySent: true },
  ] as const)('$state, claimed at $first_claimed_at, deadline $send_deadline', (r) => {
    expect(revisionStanding(r)).toEqual({ claimed: r.claimed, maySent: r.maySent });
  });
});

describe('matchPayees', () => {
  const rec = (rowNo: number, p: Partial<PayeeRecord>): PayeeRecord => ({
    rowNo,
    reference: null,
    account: null,
    ifsc: null,
    email: null,
    mobile: null,
    name: null,
    amountPaise: 100n,
    ...p,
  });

  it('every row and every line ends in exactly one place, deterministically', () => {
    const old = [rec(2, { account: '11111111', ifsc: 'SBIN0000691', name: 'A' }), rec(3, { email: 'b@x.in', name: 'B' }), rec(4, { name: 'C' })];
    const lines = [rec(2, { email: 'b@x.in', name: 'B', account: '22222222', ifsc: 'SBIN0000691' }), rec(3, { account: '11111111', ifsc: 'SBIN0000691', name: 'A' })];
    const a = matchPayees(old, lines, { references: false });
    const b = matchPayees(old, lines, { references: false });
    expect(a).toEqual(b);
    expect(a.pairs.map((p) => [p.line.rowNo, p.old.rowNo, p.identical])).toEqual([
      [2, 3, false],
      [3, 2, true],
    ]);
    expect(a.unmatchedOld.map((o) => o.rowNo)).toEqual([4]);
    expect(a.unmatchedNew).toEqual([]);
  });

  it('the strongest link wins when a line could be either of two rows', () => {
    // Line 5 shares the email with row 2 and the reference and account with row 3.
    const old = [rec(2, { email: 'x@x.in', name: 'X', reference: 'E1' }), rec(3, { reference: 'E9', account: '33333333', ifsc: 'SBIN0000691', name: 'Y' })];
    const lines = [rec(5, { email: 'x@x.in', reference: 'E9', account: '33333333', ifsc: 'SBIN0000691', name: 'Z', amountPaise: 999n })];
    const m = matchPayees(old, lines, { references: true });
    expect(m.pairs.map((p) => [p.line.rowNo, p.old.rowNo, p.linkedBy])).toEqual([[5, 3, ['reference', 'account', 'account_no']]]);
  });
});
