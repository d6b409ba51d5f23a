import path from 'node:path';
import { formatRupeesIndian, parseRupees } from '../money.js';
import { REPORT_STATUSES, STATUS_LABELS, type ReportStatus } from '../states.js';
import type { BatchSummary, GroupSummary, Totals } from './summary.js';
import type { ReportRow } from './rows.js';
import { localTime } from './time.js';

/**
 * The HTML report: one self-contained file (inline CSS, an inline SVG chart, no script, no external
 * asset), so it opens offline and as an e-mail attachment. Every value from the data is escaped.
 */

/** Escapes text for HTML content and attribute values. */
export function esc(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** "1234.50" -> "₹1,234.50" */
export function rupeesText(amount: string | null | undefined): string {
  if (amount === null || amount === undefined) return '';
  const p = parseRupees(amount);
  return p === undefined ? amount : formatRupeesIndian(p);
}

/** "2026-11-27T14:05:09+05:30" -> "2026-11-27 14:05:09 +05:30" */
function timeText(iso: string | null): string {
  if (!iso) return '—';
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(.*)$/.exec(iso);
  return m ? `${m[1]} ${m[2]} ${m[3] === 'Z' ? '+00:00' : m[3]}` : iso;
}

function durationText(fromIso: string | null, toIso: string | null): string {
  if (!fromIso || !toIso) return '';
  const s = Math.max(0, Math.round((Date.parse(toIso) - Date.parse(fromIso)) / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h ? `${h} h ${m} min` : m ? `${m} min ${sec} s` : `${sec} s`;
}

const COLORS: Record<ReportStatus, string> = {
  approved: '#2e7d32',
  rejected: '#c62828',
  failed: '#e65100',
  invalid: '#6a1b9a',
  pending: '#1565c0',
  sending: '#4fc3f7',
  not_sent: '#9e9e9e',
  needs_review: '#f9a825',
  cancelled: '#5d4037',
};

const CSS = `
:root{color-scheme:light}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans Devanagari","Lohit Devanagari",Arial,sans-serif;color:#1a1a1a;background:#fff;margin:0;padding:24px}
main{max-width:1100px;margin:0 auto}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:16px;margin:28px 0 10px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#555;margin:0 0 4px}
.state{display:inline-block;padding:2px 8px;border-radius:10px;font-weight:600;font-size:12px}
.state.done{background:#e8f5e9;color:#1b5e20}.state.open{background:#fff3e0;color:#8a4b00}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:10px;margin-top:16px}
.tile{border:1px solid #ddd;border-left:6px solid #999;border-radius:6px;padding:10px 12px}
.tile .label{color:#555;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
.tile .count{font-size:24px;font-weight:700}
.tile .amount{font-variant-numeric:tabular-nums}
.tile.money{border-left-color:#37474f}
.warn{background:#fff8e1;border:1px solid #f9a825;border-radius:6px;padding:8px 12px;margin-top:12px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #e5e5e5;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5;font-weight:600}
td.n,th.n{text-align:right;white-space:nowrap}
td.reason{max-width:460px}
.chart{width:100%;max-width:1000px;height:auto}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;margin:6px 0 0;padding:0;list-style:none}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:5px;vertical-align:-1px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}
dt{color:#555}
footer{margin-top:28px;color:#777;font-size:12px}
@media print{body{padding:0}.tile{break-inside:avoid}}
`;

interface Tile {
  key: string;
  label: string;
  totals: Totals;
  color: string;
  note?: string;
}

function tileHtml(t: Tile): string {
  return (
    `<div class="tile" data-tile="${esc(t.key)}" style="border-left-color:${t.color}">` +
    `<div class="label">${esc(t.label)}</div>` +
    `<div class="count" data-count>${esc(t.totals.count)}</div>` +
    `<div class="amount" data-amount>${esc(rupeesText(t.totals.amount))}</div>` +
    (t.note ? `<div class="sub">${esc(t.note)}</div>` : '') +
    `</div>`
  );
}

function moneyTile(key: string, label: string, amount: string, note: string): string {
  return (
    `<div class="tile money" data-tile="${esc(key)}"><div class="label">${esc(label)}</div>` +
    `<div class="count" data-amount>${esc(rupeesText(amount))}</div><div class="sub">${esc(note)}</div></div>`
  );
}

/**
 * Two stacked bars, rows and rupees by status, with counts in their titles (hover) and a legend. Every
 * segment is labelled: inside when it is wide enough, otherwise under the bar in its own colour (a thin
 * "rejected" segment must not go unnamed).
 */
function chartSvg(s: BatchSummary): string {
  const W = 1000;
  const left = 90;
  const barW = W - left - 10;
  const present = REPORT_STATUSES.filter((st) => s.counts[st] > 0);
  const bar = (y: number, label: string, kind: 'rows' | 'amount') => {
    const values = present.map((st) => (kind === 'rows' ? BigInt(s.counts[st]) : (parseRupees(s.totals[st].amount) ?? 0n)));
    const total = values.reduce((a, b) => a + b, 0n);
    let x = left;
    let out = `<text x="0" y="${y + 22}" font-size="14" fill="#333">${esc(label)}</text>`;
    if (total === 0n) return out + `<rect x="${left}" y="${y}" width="${barW}" height="34" fill="#eee"/>`;
    let below = 0;
    present.forEach((st, i) => {
      // Widths in thousandths of the bar, from exact integers; no float sums of money.
      const w = Number((values[i]! * BigInt(barW) * 1000n) / total) / 1000;
      if (w <= 0) return;
      const shown = kind === 'rows' ? `${s.counts[st]} rows` : rupeesText(s.totals[st].amount);
      out +=
        `<rect x="${x.toFixed(2)}" y="${y}" width="${w.toFixed(2)}" height="34" fill="${COLORS[st]}" data-status="${st}" data-kind="${kind}" ` +
        `data-value="${esc(kind === 'rows' ? s.counts[st] : s.totals[st].amount)}"><title>${esc(`${STATUS_LABELS[st]}: ${shown}`)}</title></rect>`;
      const text = kind === 'rows' ? String(s.counts[st]) : rupeesText(s.totals[st].amount);
      const inside = text.length * 8 + 8 < w;
      if (inside) {
        out += `<text x="${(x + w / 2).toFixed(2)}" y="${y + 22}" font-size="13" fill="#fff" text-anchor="middle" data-label="${st}">${esc(text)}</text>`;
      } else {
        // Under the bar, left to right, so neighbouring small segments do not print over each other.
        const lx = Math.max(x + w / 2, left + below);
        const name = `${STATUS_LABELS[st]} ${text}`;
        out += `<text x="${lx.toFixed(2)}" y="${y + 48}" font-size="11" fill="${COLORS[st]}" data-label="${st}">${esc(name)}</text>`;
        below = lx - left + name.length * 6.2 + 10;
      }
      x += w;
    });
    return out;
  };
  const svg =
    `<svg class="chart" role="img" aria-label="Rows and rupees by status" viewBox="0 0 ${W} 132" xmlns="http://www.w3.org/2000/svg">` +
    bar(4, 'Rows', 'rows') +
    bar(72, 'Rupees', 'amount') +
    `</svg>`;
  const legend =
    `<ul class="legend">` +
    present.map((st) => `<li><i style="background:${COLORS[st]}"></i>${esc(STATUS_LABELS[st])}: ${esc(s.counts[st])} (${esc(rupeesText(s.totals[st].amount))})</li>`).join('') +
    `</ul>`;
  return svg + legend;
}

function groupCells(g: GroupSummary): string {
  const notPaid = g.counts.invalid + g.counts.rejected + g.counts.failed + g.counts.needs_review + g.counts.cancelled;
  const awaiting = g.counts.pending + g.counts.sending + g.counts.not_sent;
  return (
    `<td class="n">${esc(g.rows)}</td><td class="n">${esc(rupeesText(g.amount))}</td>` +
    `<td class="n">${esc(g.counts.approved)}</td><td class="n">${esc(rupeesText(g.totals.approved.amount))}</td>` +
    `<td class="n">${esc(g.counts.rejected)}</td><td class="n">${esc(notPaid - g.counts.rejected)}</td>` +
    `<td class="n">${esc(awaiting)}</td><td class="n">${esc(rupeesText(g.charges))}</td><td class="n">${esc(rupeesText(g.debited))}</td>`
  );
}

const GROUP_HEAD =
  '<th class="n">Rows</th><th class="n">Amount</th><th class="n">Paid</th><th class="n">Paid ₹</th><th class="n">Rejected</th>' +
  '<th class="n">Other not paid</th><th class="n">Not final</th><th class="n">Charges</th><th class="n">Debited</th>';

export interface HtmlInput {
  summary: BatchSummary;
  /** Rows not paid (every status but approved), in row order; at most a page of them. */
  notPaid: ReportRow[];
  /** How many rows not paid there are in all (more than notPaid.length when the list was cut). */
  notPaidTotal: number;
  /** Rows paid, in row order, with their UTRs; at most a page of them (the CSV has every one). */
  paid?: ReportRow[];
  /** Names of the sibling files (CSV, JSON) to point at. */
  csvName?: string;
}

function paidTable(input: HtmlInput, s: BatchSummary): string {
  const paid = input.paid ?? [];
  if (paid.length === 0) return '<p class="sub">No row paid yet.</p>';
  return (
    `<table data-table="paid"><thead><tr><th class="n">Row</th><th>${esc(s.reference_column ?? 'Reference')}</th><th>Beneficiary</th><th>Account</th><th class="n">Amount</th><th>UTR</th><th>Paid at</th></tr></thead><tbody>` +
    paid
      .map(
        (r) =>
          `<tr data-row="${esc(r.row)}"><td class="n">${esc(r.row)}</td><td>${esc(r.reference ?? '')}</td><td>${esc(r.beneficiary_name ?? '')}</td><td>${esc(r.account)}</td>` +
          `<td class="n">${esc(rupeesText(r.amount))}</td><td data-utr>${esc(r.utr ?? '')}</td><td>${esc(r.final_at ? localTime(r.final_at, s.time_zone) : '—')}</td></tr>`,
      )
      .join('') +
    `</tbody></table>` +
    (s.counts.approved > paid.length ? `<p class="sub">Showing the first ${esc(paid.length)} of ${esc(s.counts.approved)} rows paid; the CSV report${input.csvName ? ` (${esc(input.csvName)})` : ''} lists every row with its UTR.</p>` : '')
  );
}

export function renderHtml(input: HtmlInput): string {
  const s = input.summary;
  const unfinished = s.counts.pending + s.counts.sending + s.counts.not_sent;
  const finished = unfinished === 0 && s.finished_at !== null;
  const tiles: Tile[] = [
    { key: 'paid', label: 'Paid', totals: s.paid, color: COLORS.approved },
    { key: 'rejected', label: 'Rejected by the bank', totals: s.totals.rejected, color: COLORS.rejected, note: 'charges refunded' },
    { key: 'invalid', label: 'Invalid (not sent)', totals: s.totals.invalid, color: COLORS.invalid },
    { key: 'awaiting', label: 'Awaiting an outcome', totals: s.awaiting, color: COLORS.pending, note: `${s.counts.pending} at the bank, ${s.counts.sending} not known yet` },
  ];
  if (s.counts.not_sent) tiles.push({ key: 'not_sent', label: 'Not sent', totals: s.totals.not_sent, color: COLORS.not_sent });
  if (s.counts.failed) tiles.push({ key: 'failed', label: 'Refused by the API', totals: s.totals.failed, color: COLORS.failed });
  if (s.counts.needs_review) tiles.push({ key: 'needs_review', label: 'Needs review', totals: s.totals.needs_review, color: COLORS.needs_review });
  if (s.counts.cancelled) tiles.push({ key: 'cancelled', label: 'Cancelled', totals: s.totals.cancelled, color: COLORS.cancelled });
  const money = [
    moneyTile('charges', 'Charges', s.charges, 'kept by the API for paid and pending payouts'),
    moneyTile('debited', 'Debited', s.debited, 'paid and pending amounts plus charges'),
  ];
  if (s.possibly_debited.count > 0) {
    money.push(moneyTile('possibly_debited', 'Possibly debited', s.possibly_debited.amount, `${s.possibly_debited.count} payouts with an unknown outcome: never pay these by hand`));
  }

  const rowsTable = input.notPaid.length
    ? `<table data-table="not-paid"><thead><tr><th class="n">Row</th><th>${esc(s.reference_column ?? 'Reference')}</th><th>Beneficiary</th><th>Account</th><th class="n">Amount</th><th>Status</th><th>Reason</th></tr></thead><tbody>` +
      input.notPaid
        .map(
          (r) =>
            `<tr data-row="${esc(r.row)}" data-status="${esc(r.status)}"><td class="n">${esc(r.row)}</td><td>${esc(r.reference ?? '')}</td><td>${esc(r.beneficiary_name ?? '')}</td>` +
            `<td>${esc(r.account)}</td><td class="n">${esc(rupeesText(r.amount))}</td><td><span class="state" style="background:${COLORS[r.status]}22">${esc(r.status_label)}</span></td>` +
            `<td class="reason">${esc(r.reason)}${r.status_message ? `<div class="sub">API: ${esc(r.status_message)}</div>` : ''}</td></tr>`,
        )
        .join('') +
      `</tbody></table>` +
      (input.notPaidTotal > input.notPaid.length
        ? `<p class="sub">Showing the first ${esc(input.notPaid.length)} of ${esc(input.notPaidTotal)} rows not paid; the CSV report${input.csvName ? ` (${esc(input.csvName)})` : ''} lists every row.</p>`
        : '')
    : '<p>Every row was paid.</p>';

  const timings: [string, string | null][] = [
    ['Created', s.created_at],
    ['Started sending', s.started_at],
    ['First payout sent', s.first_sent_at],
    ['Last payout sent', s.last_sent_at],
    ['Last outcome', s.last_outcome_at],
    ['Finished', s.finished_at],
    ['Report generated', s.generated_at],
  ];
  const took = durationText(s.started_at, s.finished_at ?? s.last_outcome_at);

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(`Payout report: ${s.batch}`)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<h1>Payout report: ${esc(s.batch)}</h1>
<p class="sub">${s.source_file ? `File ${esc(path.basename(s.source_file))}` : 'No file recorded'}${s.revision && s.revision > 1 ? `, revision ${esc(s.revision)}` : ''} · ${esc(s.rows)} rows totalling ${esc(rupeesText(s.amount))} ·
<span class="state ${finished ? 'done' : 'open'}" data-finished="${finished}">${finished ? 'finished' : unfinished ? `not finished: ${esc(unfinished)} rows not final` : 'open'}</span></p>
<p class="sub" data-api>${s.api_host ? `Paid through the API at ${esc(s.api_host)}` : 'API not recorded'}${s.user_ids.length ? ` · merchant user_id ${s.user_ids.map(esc).join(', ')}` : ''}</p>
${s.decision === 'declined' ? `<div class="warn">This batch was declined at the confirmation prompt: its rows are not sent until a run is confirmed again.</div>` : ''}
${s.possibly_debited.count > 0 ? `<div class="warn">${esc(s.possibly_debited.count)} payouts (${esc(rupeesText(s.possibly_debited.amount))}) may have been paid but their outcome is not known yet. Do not pay them by hand: <code>payouts resume ${esc(s.batch)}</code> asks the API first.</div>` : ''}
<section>
<h2>Summary</h2>
<div class="tiles">${tiles.map(tileHtml).join('')}</div>
<div class="tiles">${money.join('')}</div>
</section>
<section>
<h2>Breakdown by status</h2>
${chartSvg(s)}
</section>
<section>
<h2>By payment method</h2>
<table data-table="method"><thead><tr><th>Method</th>${GROUP_HEAD}</tr></thead><tbody>
${s.by_method.map((g) => `<tr data-method="${esc(g.method ?? '')}"><td>${esc(g.method ?? 'unknown')}</td>${groupCells(g)}</tr>`).join('\n')}
</tbody></table>
</section>
<section>
<h2>By bank</h2>
<table data-table="bank"><thead><tr><th>Bank</th><th>Code</th>${GROUP_HEAD}</tr></thead><tbody>
${s.by_bank.map((g) => `<tr data-bank="${esc(g.bank_code ?? '')}"><td>${esc(g.bank_name ?? 'unknown')}</td><td>${esc(g.bank_code ?? '—')}</td>${groupCells(g)}</tr>`).join('\n')}
</tbody></table>
</section>
<section>
<h2>Rows not paid (${esc(input.notPaidTotal)})</h2>
${rowsTable}
</section>
<section>
<h2>Rows paid (${esc(s.counts.approved)})</h2>
${paidTable(input, s)}
</section>
<section>
<h2>Approvals</h2>
${s.approvals.length
    ? `<table data-table="approvals"><thead><tr><th class="n">Revision</th><th>Decision</th><th>By</th><th>When</th><th>File sha256</th><th>Note</th></tr></thead><tbody>` +
      s.approvals.map((a) => `<tr><td class="n">${esc(a.revision)}</td><td>${esc(a.decision)}</td><td>${esc(a.by)}</td><td>${esc(timeText(a.at))}</td><td><code>${esc(a.file_sha256.slice(0, 12))}…</code></td><td>${esc(a.note ?? '')}</td></tr>`).join('') +
      `</tbody></table>`
    : '<p class="sub">No recorded approval (a yes at the terminal or --yes is the yes of that run only).</p>'}
</section>
<section>
<h2>Timings (${esc(s.time_zone)})</h2>
<dl>${timings.map(([k, v]) => `<dt>${esc(k)}</dt><dd data-time="${esc(k)}">${esc(timeText(v))}</dd>`).join('')}${took ? `<dt>Sending to last outcome</dt><dd>${esc(took)}</dd>` : ''}</dl>
</section>
<footer>Accounts show their last 4 digits only. Amounts in rupees; charges of rejected payouts are refunded by the API and not counted.${input.csvName ? ` Every row: ${esc(input.csvName)}.` : ''}</footer>
</main>
</body>
</html>
`;
}
