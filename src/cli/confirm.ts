import { formatRupeesIndian, type Paise } from '../money.js';
import type { Preflight } from '../engine/events.js';
import type { IngestResult, RowProblem } from '../engine/ingest.js';
import type { StatusTotalsLike } from './summary.js';
import { DEFAULT_TIME_ZONE, localTime } from '../report/time.js';
import type { ChangePlan } from '../engine/plan.js';
import { planLines } from './plan.js';

/**
 * The confirmation a person answers before money moves: which API (live or a sandbox), how many payouts
 * and rupees per method, fees, the balance before and after, what will not be sent and why, and what a
 * corrected copy changed. Pure text, tested on its own; the question itself is asked by src/cli/ask.ts.
 */
export interface ConfirmFacts {
  batch: { name: string; revision: number };
  preflight: Preflight;
  baseUrl: string;
  /** The file just read (run); absent on resume. */
  ingest?: IngestResult | undefined;
  /** The batch's statuses before sending (rows not to be sent: invalid, failed, needs review…). */
  statuses?: StatusTotalsLike | undefined;
  /** Problems of rows from the database when there was no file read now (resume). */
  problems?: RowProblem[] | undefined;
  /** The control totals given (--expect-rows, --expect-total), already checked against the file. */
  control?: { rows?: number | undefined; totalPaise?: Paise | undefined } | undefined;
  /** What changed since the previous batch (the file's, or the stored batch's on resume). */
  plan?: ChangePlan | undefined;
  /** The run's --rate: what the expected duration is worked out from. */
  rate?: number | undefined;
}

/**
 * How long sending takes at least: every payout needs its initiate and at least one status check, and both
 * share the one rate budget (--rate), so about two requests per payout; the bank's settling comes on top.
 */
export function expectedDuration(toSend: number, rate: number): string {
  const seconds = Math.ceil((toSend * 2) / Math.max(0.1, rate));
  if (seconds < 90) return `about ${seconds} s`;
  const minutes = Math.round(seconds / 60);
  return minutes < 90 ? `about ${minutes} min` : `about ${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export interface ApiTarget {
  host: string;
  live: boolean;
  /** "LIVE API api.example.com — real money" or "SANDBOX 127.0.0.1:4010". */
  label: string;
}

const TEST_HOST = /(^|[.-])(sandbox|uat|test|testing|staging|stage|dev|demo|preprod)([.-]|$)/i;

/** Live or a sandbox, from the base URL's host: local addresses and hosts named like a test system are sandboxes. */
export function apiTarget(baseUrl: string): ApiTarget {
  let host = baseUrl;
  try {
    host = new URL(baseUrl).host;
  } catch {
    // The client refuses a malformed URL before this is shown.
  }
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const local = name === 'localhost' || name.endsWith('.localhost') || /^127\./.test(name) || name === '::1' || name === '0.0.0.0';
  const live = !local && !TEST_HOST.test(name);
  return { host, live, label: live ? `LIVE API ${host} — real money` : `SANDBOX ${host} (${local ? 'this machine' : 'a test system'})` };
}

/** "y" or "yes", any case: anything else (an empty line included) declines. */
export function isYes(answer: string): boolean {
  return /^y(es)?$/i.test(answer.trim());
}

const MAX_PROBLEMS_SHOWN = 5;

export function confirmLines(f: ConfirmFacts): string[] {
  const pf = f.preflight;
  const target = apiTarget(f.baseUrl);
  const r = (p: Paise) => formatRupeesIndian(p);
  const lines: string[] = [];
  lines.push(`About to pay batch "${f.batch.name}" (revision ${f.batch.revision}) through the ${target.label}`);
  // A known payee's changed bank account first: the commonest payroll fraud, easy to miss in a table.
  const plan = planLines(f.plan ?? f.ingest?.plan, MAX_PROBLEMS_SHOWN);
  // The file as a whole, to compare with the payroll sheet: every data row and every readable amount.
  if (f.ingest) {
    const c = f.control ?? {};
    const checked = [
      ...(c.rows !== undefined ? [`--expect-rows ${c.rows}`] : []),
      ...(c.totalPaise !== undefined ? [`--expect-total ${r(c.totalPaise)}`] : []),
    ];
    lines.push(
      `  the file: ${f.ingest.rows} data rows, amounts adding up to ${r(f.ingest.fileTotalPaise)} ` +
        (checked.length ? `(matches ${checked.join(' and ')})` : `(compare with the payroll sheet; --expect-rows and --expect-total check it)`),
    );
  }
  const width = Math.max(6, ...pf.byMethod.map((m) => m.method.length));
  for (const m of pf.byMethod) lines.push(`  ${m.method.padEnd(width)} ${String(m.count).padStart(7)} payouts  ${r(m.amountPaise).padStart(18)}`);
  lines.push(`  ${'total'.padEnd(width)} ${String(pf.toSend).padStart(7)} payouts  ${r(pf.amountPaise).padStart(18)}`);
  lines.push(`  fees (estimate, --fee-per-payout): ${r(pf.feesPaise)}; needed ${r(pf.needPaise)}`);
  if (f.rate !== undefined && pf.toSend > 0) {
    lines.push(`  sending takes ${expectedDuration(pf.toSend, f.rate)} at --rate ${f.rate} (an initiate and a status check per payout share it), then the bank settles`);
  }
  if (pf.balancePaise !== null) lines.push(`  wallet balance ${r(pf.balancePaise)} now, about ${r(pf.balancePaise - pf.needPaise)} after`);

  // What will not be sent, and why.
  const s = f.statuses;
  const notSent: string[] = [];
  const invalid = f.ingest?.invalid ?? s?.counts.invalid ?? 0;
  if (invalid) notSent.push(`${invalid} invalid`);
  if (s?.counts.failed) notSent.push(`${s.counts.failed} refused by the API earlier (resend with --retry-failed)`);
  if (s?.counts.needs_review) notSent.push(`${s.counts.needs_review} needing review (resend with --retry-review)`);
  if (s?.counts.cancelled) notSent.push(`${s.counts.cancelled} cancelled`);
  const already = (s?.counts.approved ?? 0) + (s?.counts.pending ?? 0) + (s?.counts.rejected ?? 0);
  if (already) notSent.push(`${already} sent by an earlier run (not sent again)`);
  if (s?.counts.sending) notSent.push(`${s.counts.sending} with an unknown outcome from an earlier run (asked about first, never sent blindly)`);
  if (notSent.length) lines.push(`  not sent now: ${notSent.join('; ')}`);
  const problems = (f.ingest?.problems ?? f.problems ?? []).filter((p) => p.errors.length > 0);
  const shown = Math.min(problems.length, MAX_PROBLEMS_SHOWN);
  for (const p of problems.slice(0, shown)) lines.push(`    row ${p.row}: ${p.errors.join('; ')}`);
  if (invalid > shown) {
    lines.push(`    ${shown ? `… ${invalid - shown} more invalid rows` : `the invalid rows`}: the report (\`payouts report ${f.batch.name}\`) lists every one with its reason`);
  }
  for (const n of f.ingest?.headerNotes ?? []) lines.push(`  note: ${n}`);
  lines.push(...plan);

  if (f.ingest) lines.push(...revisionLines(f.ingest, MAX_PROBLEMS_SHOWN), ...repeatLines(f.ingest, MAX_PROBLEMS_SHOWN, 'before answering y'));
  return lines;
}

/** What a corrected copy changes, in words a person checks: above all, payees it no longer has. */
export function revisionLines(i: IngestResult, max: number): string[] {
  const rs = i.revisionSummary;
  if (!rs) return [];
  const invalid = rs.toInsert - rs.toPay;
  const lines = [
    `  corrected copy: ${rs.kept} rows already sent and kept (not paid again); ${rs.toInsert} new, corrected or not yet sent lines` +
      (invalid > 0 ? `, ${rs.toPay} of them to pay (${invalid} invalid)` : ', all to pay'),
  ];
  if (rs.keptNotInFile > 0 || rs.accepted > 0) {
    lines.push(`  sent rows no longer in the file, kept with their payouts: ${rs.keptNotInFile}; changes accepted (paid in addition): ${rs.accepted}`);
  }
  if (rs.removedCount > 0) {
    lines.push(`  REMOVED: ${rs.removedCount} payees of the earlier copy are not in this file; never sent, they are not paid by this batch${i.dryRun ? ' (if it is run)' : ''}:`);
    for (const p of rs.removed.slice(0, max)) {
      lines.push(`    row ${p.row}: ${p.name ?? '(no name)'}, account ${p.account}, ${p.amountPaise === null ? '(no amount)' : formatRupeesIndian(p.amountPaise)}`);
    }
    if (rs.removedCount > max) lines.push(`    … and ${rs.removedCount - max} more (\`--dry-run --json\` lists ${rs.removed.length === rs.removedCount ? 'every one' : `the first ${rs.removed.length}`})`);
  }
  return lines;
}

/** Rows paying an account what another recent batch paid it: perhaps the same payroll again. */
export function repeatLines(i: IngestResult, max: number, before: string): string[] {
  if (i.repeatCount === 0) return [];
  const days = i.repeatWindowDays === 1 ? 'day' : `${i.repeatWindowDays} days`;
  const lines = [`  WARNING: ${i.repeatCount} rows pay an account the same amount another batch paid (or is paying) in the last ${days}:`];
  for (const x of i.repeats.slice(0, max)) {
    lines.push(`    row ${x.row}: ${formatRupeesIndian(BigInt(x.amount_paise))}, like row ${x.other_row} of batch "${x.other_batch}" (${x.other_state}, ${localTime(x.created_at, DEFAULT_TIME_ZONE).slice(0, 10)})`);
  }
  if (i.repeatCount > Math.min(max, i.repeats.length)) lines.push(`    … and ${i.repeatCount - Math.min(max, i.repeats.length)} more`);
  lines.push(`    check these are not paid twice${before ? ` ${before}` : ''}`);
  return lines;
}

/** The question under the facts. */
export function confirmQuestion(pf: Preflight): string {
  return `Send ${pf.toSend} payouts totalling ${formatRupeesIndian(pf.amountPaise)}? Type y to send, anything else (or Ctrl-C) declines: `;
}
