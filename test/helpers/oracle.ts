import { writeFileSync } from 'node:fs';
import type { Knex } from 'knex';
import type { Sandbox } from '../../src/sandbox/server.js';
import { rowsOfBatch, type PayoutRow } from '../../src/db/rows.js';
import { payeeKey, refKey } from '../../src/batch/payee.js';

const HEADER =
  'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount,remarks';
const IFSCS = ['SBIN0000691', 'HDFC0000001', 'ICIC0000001', 'UTIB0000001'];

/**
 * A payroll file for chaos schedules: `n` rows, every 7th invalid (bad IFSC), every 5th rejected by the
 * sandbox's bank (account ends 0000), and the last row an exact copy of the first (a flagged duplicate
 * that is still paid: two payouts with distinct order ids).
 */
export function writeChaosCsv(file: string, n: number, seed: number): number {
  const lines = [HEADER];
  for (let i = 0; i < n - 1; i++) {
    const acc = i % 5 === 4 ? `${700000 + seed}${i}0000` : `${900000 + seed}${String(i).padStart(4, '0')}`;
    const ifsc = i % 7 === 6 ? 'SBIN060589' : IFSCS[i % IFSCS.length];
    const amount = `${100 + ((seed * 31 + i * 17) % 900)}.${String((i * 13) % 100).padStart(2, '0')}`;
    lines.push(`Person ${i},p${i}@example.com,98765${String(10000 + i).slice(-5)},"${i}/2 Road, City",IMPS,${acc},Bank,${ifsc},${amount},row ${i}`);
  }
  lines.push(lines[1]!);
  writeFileSync(file, lines.join('\n') + '\n');
  return n;
}

export interface OracleReport {
  doublePaid: string[];
  lost: number[];
  /** Valid rows that did not end approved or rejected once the faults stopped (liveness). */
  notFinal: { row: number; state: string; why?: string }[];
  /** Rows left needs_review that `reviewAllowed` accepted. */
  reviewAllowedRows: number;
  disagreements: string[];
  /** Payees (account and IFSC, or reference) paid more than the file asks for (`asked`). */
  overpaid: string[];
}

export interface OracleOptions {
  /** Rows that may end needs_review (an order_id another database paid: its fate is not this database's to know). */
  reviewAllowed?: (row: PayoutRow) => boolean;
  /**
   * Payouts another database of the same batch made (the lost-database schedule). A row here may hold one
   * (adopted after a send of its own that may have executed, the API refusing the repeat) or end
   * needs_review as a collision; either way it is the same payout, never a second one.
   */
  foreign?: ReadonlySet<string>;
  /** The file's row numbers when they are not 2..inputRows+1 (a revised copy). */
  rowNumbers?: number[];
  /** What the file(s) ask to pay: no payee may be paid more (the payee check). Default: not checked. */
  asked?: readonly AskedPayment[];
  /** Rows of other databases holding payouts of these payees (their references). */
  otherRows?: readonly PayoutRow[];
}

/**
 * The invariants, checked against the sandbox's ledger (the oracle):
 * - safety: no order_id executed more than once, and every payout the API made belongs to a row;
 * - no row lost: every input row is in the database;
 * - liveness: every valid row ends approved or rejected (needs_review only where the schedule allows it);
 * - the database and the ledger agree row by row (status, amount), and an approved row's UTR is that of a
 *   payout the API made for this row in this batch (created after the row was first claimed here).
 */
export async function checkInvariants(db: Knex, sb: Sandbox, batch: string, inputRows: number, o: OracleOptions = {}): Promise<OracleReport> {
  const rows = await rowsOfBatch(db, batch);
  const ledger = sb.ledger();
  const byOrder = new Map<string, typeof ledger>();
  for (const e of ledger) byOrder.set(e.orderId, [...(byOrder.get(e.orderId) ?? []), e]);
  const doublePaid = [...byOrder.entries()].filter(([id, es]) => es.length > 1 || sb.executions(id) > 1).map(([id]) => id);

  const rowNos = new Set(rows.filter((r) => r.in_file).map((r) => r.row_no));
  const lost: number[] = [];
  const expected = o.rowNumbers ?? Array.from({ length: inputRows }, (_, i) => i + 2);
  for (const n of expected) if (!rowNos.has(n)) lost.push(n);

  const reviewAllowedRows = rows.filter((r) => r.state === 'needs_review' && o.reviewAllowed?.(r)).length;
  const notFinal = rows
    .filter((r) => r.state !== 'invalid' && r.state !== 'approved' && r.state !== 'rejected')
    .filter((r) => !(r.state === 'needs_review' && o.reviewAllowed?.(r)))
    // A row a corrected copy removed, never sent: cancelled is its end.
    .filter((r) => !(r.state === 'cancelled' && !r.in_file))
    .map((r) => ({ row: r.row_no, state: r.state, ...(r.last_error ? { why: r.last_error } : {}) }));

  const disagreements: string[] = [];
  const ours = new Set<string>();
  for (const r of rows) {
    if (!r.order_id) continue;
    ours.add(r.order_id);
    const es = byOrder.get(r.order_id) ?? [];
    const e = es[es.length - 1];
    if (r.state === 'approved' || r.state === 'rejected') {
      if (!e) disagreements.push(`row ${r.row_no} ${r.state} but the API never executed ${r.order_id}`);
      else {
        if (e.status.toLowerCase() !== r.state) disagreements.push(`row ${r.row_no}: db ${r.state}, ledger ${e.status}`);
        if (e.amountPaise !== BigInt(r.amount_paise!)) disagreements.push(`row ${r.row_no}: amount differs`);
        if (r.state === 'approved' && e.transactionId !== r.transaction_id) disagreements.push(`row ${r.row_no}: UTR differs`);
        const claimed = r.first_claimed_at ? new Date(r.first_claimed_at).getTime() : NaN;
        // The sandbox stamps created_at to the second.
        if (!o.foreign?.has(r.order_id) && !(Date.parse(e.createdAt) >= claimed - 2000)) {
          disagreements.push(`row ${r.row_no} reports a payout created before it was first claimed (${e.createdAt})`);
        }
      }
    } else if (r.state === 'failed' || r.state === 'invalid' || r.state === 'skipped' || r.state === 'ready' || r.state === 'cancelled') {
      if (e && !o.foreign?.has(r.order_id)) disagreements.push(`row ${r.row_no} is ${r.state} but the API executed ${r.order_id}`);
    }
  }
  for (const id of byOrder.keys()) if (!ours.has(id) && !o.foreign?.has(id)) disagreements.push(`ledger payout ${id} belongs to no row`);
  const overpaid = o.asked ? overpaidPayees(ledger, o.asked, [...rows, ...(o.otherRows ?? [])]) : [];
  return { doublePaid, lost, notFinal, reviewAllowedRows, disagreements, overpaid };
}

/** The payments a chaos CSV (writeChaosCsv, or any file with its columns) asks for. */
export function askedOf(csvText: string): AskedPayment[] {
  return csvText
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.replace(/"[^"]*"/g, 'Q').split(','))
    .map((c) => ({ account: c[5]!, ifsc: c[7]!, amountPaise: BigInt(Math.round(Number(c[8]!) * 100)) }));
}

/**
 * What a file and its corrected copy together ask for: for each payee and amount, the larger count of the
 * two (an unchanged row is one payment, not two; a removed row that was paid, and an accepted change's old
 * and new amounts, are each one).
 */
export function askedAcross(...files: AskedPayment[][]): AskedPayment[] {
  const most = new Map<string, { p: AskedPayment; n: number }>();
  for (const f of files) {
    const here = new Map<string, { p: AskedPayment; n: number }>();
    for (const p of f) {
      const k = `${payeeKey({ accountNumber: p.account, ifsc: p.ifsc })}|${p.amountPaise}|${refKey(p.reference ?? null) ?? ''}`;
      const e = here.get(k) ?? { p, n: 0 };
      e.n++;
      here.set(k, e);
    }
    for (const [k, e] of here) if ((most.get(k)?.n ?? 0) < e.n) most.set(k, e);
  }
  return [...most.values()].flatMap((e) => Array<AskedPayment>(e.n).fill(e.p));
}

/** A payment a file asks for: its payee (account and IFSC, a reference) and amount. */
export interface AskedPayment {
  account: string;
  ifsc: string;
  reference?: string | null;
  amountPaise: bigint;
}

/**
 * The payee check (issue 17): no person is paid more than the file asks for, across revisions,
 * near-copies and databases. The money the API moved (its ledger, approved or pending: a rejected payout
 * moved none) is grouped by payee, by account and IFSC (normalised as for matching) and, through the rows
 * of every database given that hold its order_id, by reference; each payee's payouts, counted per amount,
 * must not exceed what `asked` holds for that payee. Returns the payees paid more, in words.
 */
export function overpaidPayees(ledger: ReturnType<Sandbox['ledger']>, asked: readonly AskedPayment[], rows: readonly PayoutRow[] = []): string[] {
  const count = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  const want = new Map<string, number>();
  for (const a of asked) {
    count(want, `acc:${payeeKey({ accountNumber: a.account, ifsc: a.ifsc })}|${a.amountPaise}`);
    const ref = refKey(a.reference ?? null);
    if (ref) count(want, `ref:${ref}|${a.amountPaise}`);
  }
  const refOf = new Map<string, string>();
  for (const r of rows) if (r.order_id && r.ref_key) refOf.set(r.order_id, r.ref_key);
  const got = new Map<string, number>();
  for (const e of ledger) {
    if (e.status === 'Rejected') continue;
    count(got, `acc:${payeeKey({ accountNumber: e.accountNo, ifsc: e.ifsc })}|${e.amountPaise}`);
    const ref = refOf.get(e.orderId);
    if (ref) count(got, `ref:${ref}|${e.amountPaise}`);
  }
  const out: string[] = [];
  for (const [k, n] of got) if (n > (want.get(k) ?? 0)) out.push(`${k} paid ${n}, asked ${want.get(k) ?? 0}`);
  return out;
}
