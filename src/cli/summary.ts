import { formatRupees, formatRupeesIndian, parseRupees, type Paise } from '../money.js';
import { STATUS_LABELS, type ReportStatus } from '../states.js';

/**
 * How a batch's statuses are printed, in text and JSON: the one place (run, resume, status, cancel,
 * `status --follow` all use it). It reads only `counts` and `totals` (and `charges`/`debited`) of the
 * report's summary, so a reworked `summarize` merges here and nowhere else.
 *
 * What a person must never confuse is kept apart: rows not sent; rows sent whose outcome is not known
 * yet; rows sent and awaiting the bank; and each final state. Each with its rupees.
 */
export interface StatusTotalsLike {
  counts: Record<ReportStatus, number>;
  totals: Record<ReportStatus, { count: number; amount: string }>;
  charges?: string;
  debited?: string;
  /** Payouts whose outcome is not known (sent, and needs_review rows that were sent): they may be debited too. */
  possibly_debited?: { count: number; amount: string };
}

/** The order a payout moves through: not sent, in flight, final, never payable. */
export const STATUS_ORDER: readonly ReportStatus[] = ['not_sent', 'sending', 'pending', 'approved', 'rejected', 'failed', 'needs_review', 'invalid', 'cancelled'];

/** Statuses in which a payout may exist at the API: never pay these rows again by hand. */
export const MAY_EXIST: readonly ReportStatus[] = ['sending', 'pending', 'approved', 'rejected', 'needs_review'];

export function paiseOf(s: StatusTotalsLike, status: ReportStatus): Paise {
  return parseRupees(s.totals[status]?.amount ?? '0') ?? 0n;
}

function group(s: StatusTotalsLike, statuses: readonly ReportStatus[]): { rows: number; paise: Paise } {
  let rows = 0;
  let paise = 0n;
  for (const st of statuses) {
    rows += s.counts[st] ?? 0;
    paise += paiseOf(s, st);
  }
  return { rows, paise };
}

/** The table: every status, its rows, its rupees and what it means. */
export function statusLines(s: StatusTotalsLike, o: { onlyNonZero?: boolean } = {}): string[] {
  const lines = [`  ${'status'.padEnd(13)} ${'rows'.padStart(7)}  ${'rupees'.padStart(18)}  meaning`];
  for (const st of STATUS_ORDER) {
    if (o.onlyNonZero && !(s.counts[st] ?? 0)) continue;
    lines.push(`  ${st.padEnd(13)} ${String(s.counts[st] ?? 0).padStart(7)}  ${formatRupeesIndian(paiseOf(s, st)).padStart(18)}  ${STATUS_LABELS[st]}`);
  }
  if (s.debited === undefined) {
    const inFlight = group(s, ['sending', 'pending']);
    if (inFlight.rows > 0) lines.push(`  and ${inFlight.rows} sent, not final yet: ${formatRupeesIndian(inFlight.paise)}`);
    return lines;
  }
  // What the wallet has paid out, with its parts, so that it adds up: the API debits a payout (amount and
  // charge) when it takes it, so rows awaiting the bank are in it; a rejected one is refunded.
  const parts = [`paid ${formatRupeesIndian(paiseOf(s, 'approved'))}`];
  if ((s.counts.pending ?? 0) > 0) parts.push(`awaiting the bank ${formatRupeesIndian(paiseOf(s, 'pending'))}`);
  parts.push(`charges ${formatRupeesIndian(parseRupees(s.charges ?? '0') ?? 0n)}`);
  lines.push(`  debited by the API: ${formatRupeesIndian(parseRupees(s.debited) ?? 0n)} (${parts.join(' + ')})`);
  const unknown = s.possibly_debited ?? { count: s.counts.sending ?? 0, amount: s.totals.sending?.amount ?? '0' };
  if (unknown.count > 0) {
    lines.push(`  possibly debited too: ${unknown.count} payout${unknown.count === 1 ? '' : 's'}, ${formatRupeesIndian(parseRupees(unknown.amount) ?? 0n)}, outcome not known yet (never pay these by hand)`);
  }
  return lines;
}

/**
 * The sentences after an interrupted or unfinished run: what was sent (never pay it by hand) and what was
 * not (resume sends it). Empty when every row is final.
 */
export function unfinishedLines(s: StatusTotalsLike, batch: string, o: { refused?: boolean } = {}): string[] {
  const sent = group(s, MAY_EXIST);
  const notSent = group(s, ['not_sent']);
  const open = group(s, ['not_sent', 'sending', 'pending']);
  if (open.rows === 0) return [];
  const first = `Sent: ${sent.rows} rows, ${formatRupeesIndian(sent.paise)} (do not pay these again by hand). Not sent: ${notSent.rows} rows, ${formatRupeesIndian(notSent.paise)}.`;
  // A refused run says why on its own; "resume" would not get past the same refusal.
  if (o.refused) return [first];
  return [first, `\`payouts resume ${batch}\` finishes the sent rows by status and sends the rest.`];
}

/** The same facts for `--json`: the summary as it is, plus the groups a script acts on. */
export function summaryJson<T extends StatusTotalsLike>(s: T): T & { groups: Record<string, { rows: number; amount: string; amount_paise: string }> } {
  const g = (statuses: readonly ReportStatus[]) => {
    const x = group(s, statuses);
    return { rows: x.rows, amount: formatRupees(x.paise), amount_paise: x.paise.toString() };
  };
  return {
    ...s,
    groups: {
      not_sent: g(['not_sent']),
      sent_outcome_unknown: g(['sending']),
      sent_awaiting_bank: g(['pending']),
      paid: g(['approved']),
      may_exist_at_api: g(MAY_EXIST),
      not_paid: g(['rejected', 'failed', 'needs_review', 'invalid', 'cancelled']),
    },
  };
}
