import path from 'node:path';
import type { Policy } from '../engine/access.js';
import type { AuditRecord, Role } from '../db/access.js';
import { formatRupeesIndian, parseRupees } from '../money.js';
import { esc } from '../report/html.js';
import { localTime } from '../report/time.js';
import { REPORT_STATUSES, STATUS_LABELS } from '../states.js';
import type { ReportRow } from '../report/rows.js';
import type { BatchDetail, BatchOverview } from './actions.js';
import { MAY } from './actions.js';

/**
 * The console's pages: server-rendered HTML strings, every value escaped, nothing fetched from anywhere
 * (inline CSS and one small inline script for the live counts, both carrying the CSP nonce of the
 * response). Forms post to the JSON API's paths with the session's CSRF token in a hidden field.
 */
export interface PageCommon {
  user: { name: string; role: Role } | null;
  csrf: string;
  nonce: { script: string; style: string };
  flash?: { kind: 'ok' | 'error'; text: string } | undefined;
}

const CSS = `
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,"Segoe UI",Roboto,"Noto Sans",Arial,sans-serif;color:#1a1a1a;background:#f6f7f9;margin:0}
header{background:#1f2d3d;color:#fff;padding:10px 24px;display:flex;gap:18px;align-items:center}
header a{color:#fff;text-decoration:none}header .who{margin-left:auto}
header form{display:inline;margin:0}
main{max-width:1150px;margin:0 auto;padding:20px 24px}
h1{font-size:21px;margin:0 0 8px}h2{font-size:16px;margin:24px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;width:100%;background:#fff}th,td{border:1px solid #e1e4e8;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.flash{padding:10px 14px;border-radius:4px;margin:0 0 14px}.flash.ok{background:#e6f4ea;border:1px solid #9bd3ae}.flash.error{background:#fdecea;border:1px solid #f5a9a3}
.tiles{display:flex;flex-wrap:wrap;gap:10px}.tile{background:#fff;border:1px solid #dde;border-radius:6px;padding:8px 12px;min-width:150px}
.tile .k{color:#555;font-size:12px}.tile .c{font-size:20px;font-weight:600}.tile .a{font-variant-numeric:tabular-nums}
.warn{background:#fff4e5;border:1px solid #f0b46b;padding:8px 12px;border-radius:4px;margin:8px 0}
.danger{background:#fdecea;border:1px solid #e57373;padding:8px 12px;border-radius:4px;margin:8px 0}
.hidden{display:none}
form.inline{display:inline-block;margin:4px 8px 4px 0}
button{padding:5px 12px;border:1px solid #567;border-radius:4px;background:#fff;cursor:pointer}button.primary{background:#1f6feb;color:#fff;border-color:#1f6feb}
input,select{padding:4px 6px}label{margin-right:10px}
.muted{color:#666}
.login{max-width:360px;margin:60px auto;background:#fff;padding:24px;border:1px solid #dde;border-radius:6px}
.login label{display:block;margin:10px 0 4px}.login input{width:100%}
`;

function layout(c: PageCommon, title: string, body: string, script = ''): string {
  const nav = c.user
    ? `<header><strong>payouts console</strong><a href="/batches">Batches</a>${c.user.role === 'admin' ? '<a href="/users">Users &amp; policy</a>' : ''}` +
      `<span class="who" data-user="${esc(c.user.name)}">${esc(c.user.name)} (${esc(c.user.role)})</span>` +
      `<form method="post" action="/logout">${csrfField(c)}<button type="submit">Log out</button></form></header>`
    : '<header><strong>payouts console</strong></header>';
  const flash = c.flash ? `<div class="flash ${c.flash.kind}" data-flash="${c.flash.kind}" role="status">${esc(c.flash.text)}</div>` : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)}</title><style nonce="${esc(c.nonce.style)}">${CSS}</style></head>
<body>${nav}<main>${flash}${body}</main>${script ? `<script nonce="${esc(c.nonce.script)}">${script}</script>` : ''}</body></html>`;
}

function csrfField(c: PageCommon): string {
  return `<input type="hidden" name="_csrf" value="${esc(c.csrf)}">`;
}

function rupees(amount: string | bigint | null | undefined): string {
  if (amount === null || amount === undefined) return '';
  const p = typeof amount === 'bigint' ? amount : parseRupees(amount);
  return p === undefined ? String(amount) : formatRupeesIndian(p);
}

export function loginPage(c: PageCommon & { next: string; error?: string | undefined }): string {
  return layout(
    c,
    'Log in: payouts console',
    `<div class="login"><h1>Log in</h1>${c.error ? `<div class="flash error" data-flash="error" role="alert">${esc(c.error)}</div>` : ''}
<form method="post" action="/login"><input type="hidden" name="next" value="${esc(c.next)}">
<label for="username">User name</label><input id="username" name="username" autocomplete="username" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<p><button class="primary" type="submit">Log in</button></p></form></div>`,
  );
}

export function errorPage(c: PageCommon & { status: number; message: string }): string {
  return layout(c, `${c.status}: payouts console`, `<h1 data-status-code="${c.status}">${c.status === 401 ? 'Not logged in' : c.status === 403 ? 'Not allowed' : c.status === 404 ? 'Not found' : 'Error'} (${c.status})</h1>
<p class="danger" data-error>${esc(c.message)}</p><p><a href="${c.user ? '/batches' : '/login'}">${c.user ? 'Back to the batches' : 'Log in'}</a></p>`);
}

function may(c: PageCommon, roles: readonly string[]): boolean {
  return c.user !== null && roles.includes(c.user.role);
}

export function batchesPage(c: PageCommon & { batches: BatchOverview[] }): string {
  const uploadForm = may(c, MAY.upload)
    ? `<h2>Upload a payroll CSV</h2><form method="post" action="/api/batches" enctype="multipart/form-data" data-form="upload">${csrfField(c)}
<label>CSV file <input type="file" name="file" accept=".csv,text/csv" required></label>
<label>Batch name <input name="batch" placeholder="default: the file's name"></label>
<label>user_id <input name="user_id" placeholder="for rows without one"></label>
<label><input type="checkbox" name="revise"> a corrected copy of the batch</label>
<button class="primary" type="submit">Upload and check</button></form>
<p class="muted">Checked by the same code as <code>payouts validate</code>; stored with you as its uploader. Nothing is sent until it is approved.</p>`
    : '';
  const rows = c.batches
    .map((b) => {
      const s = b.summary;
      return `<tr data-batch-row="${esc(b.batch)}"><td><a href="/batches/${encodeURIComponent(b.batch)}">${esc(b.batch)}</a></td><td>${b.revision}</td><td data-state>${esc(b.state)}</td>
<td class="n">${s.rows}</td><td class="n">${esc(rupees(b.validTotalPaise))}</td><td class="n">${s.paid.count} · ${esc(rupees(s.paid.amount))}</td><td class="n">${s.not_paid.count}</td>
<td>${esc(b.uploadedBy ?? '')}</td><td>${b.approval.approvedBy.map(esc).join(', ')}${b.approval.rejectedBy.length ? ` rejected by ${b.approval.rejectedBy.map(esc).join(', ')}` : ''}</td>
<td><a href="/api/batches/${encodeURIComponent(b.batch)}/report.html">HTML</a> · <a href="/api/batches/${encodeURIComponent(b.batch)}/report.csv">CSV</a> · <a href="/api/batches/${encodeURIComponent(b.batch)}/report.json">JSON</a></td></tr>`;
    })
    .join('\n');
  return layout(
    c,
    'Batches: payouts console',
    `<h1>Batches</h1>${uploadForm}<h2>All batches</h2>
<table data-table="batches"><thead><tr><th>Batch</th><th>Rev</th><th>State</th><th class="n">Rows</th><th class="n">Valid total</th><th class="n">Paid</th><th class="n">Not paid</th><th>Uploaded by</th><th>Approved by</th><th>Report</th></tr></thead>
<tbody>${rows || '<tr><td colspan="10" class="muted">No batches yet.</td></tr>'}</tbody></table>`,
  );
}

function rowTable(rows: ReportRow[], withReason: boolean, attr: string): string {
  const body = rows
    .map(
      (r) =>
        `<tr><td class="n">${r.row}</td><td>${esc(r.beneficiary_name ?? '')}</td><td>${esc(r.account)}</td><td>${esc(r.ifsc ?? '')}</td><td>${esc(r.payment_method ?? '')}</td><td class="n">${esc(rupees(r.amount))}</td><td>${esc(r.status_label)}</td>` +
        `${withReason ? `<td>${esc(r.reason)}${r.warnings.length ? `<br><span class="muted">${r.warnings.map(esc).join('; ')}</span>` : ''}</td>` : `<td>${esc(r.utr ?? '')}</td>`}</tr>`,
    )
    .join('\n');
  return `<table data-table="${attr}"><thead><tr><th class="n">Row</th><th>Name</th><th>Account</th><th>IFSC</th><th>Method</th><th class="n">Amount</th><th>Status</th><th>${withReason ? 'Reason' : 'UTR'}</th></tr></thead><tbody>${body}</tbody></table>`;
}

function planSection(d: BatchDetail): string {
  const p = d.plan;
  if (p.skipped) return `<h2>Change plan</h2><p class="muted">${esc(p.skipped)}</p>`;
  const prev = p.previous ? `compared with batch <strong>${esc(p.previous.batch)}</strong>, the previous batch that paid these payees` : 'no earlier batch paid any of these payees: everyone is new';
  const changed = p.bankDetailsChanged
    .map(
      (ch) =>
        `<li data-plan="bank-changed"><strong>CHANGED BANK DETAILS:</strong> row ${ch.now.row} ${esc(ch.now.name ?? '')}: ` +
        ch.changes.map((x) => `${esc(x.field)} ${esc(x.old ?? '—')} → ${esc(x.new ?? '—')}`).join(', ') +
        ` <span class="muted">(the same payee by ${esc(ch.linkedBy.join(', '))})</span></li>`,
    )
    .join('');
  const amounts = p.amountChanged.map((a) => `<li>row ${a.now.row} ${esc(a.now.name ?? '')}: ${esc(rupees(a.before.amountPaise))} → ${esc(rupees(a.now.amountPaise))} (${a.deltaPct > 0 ? '+' : ''}${a.deltaPct} %)</li>`).join('');
  const list = (xs: { row: number; name: string | null; account: string; amountPaise: bigint | null }[]) =>
    xs.slice(0, 50).map((x) => `<li>row ${x.row} ${esc(x.name ?? '')} ${esc(x.account)} ${esc(rupees(x.amountPaise))}</li>`).join('') + (xs.length > 50 ? `<li class="muted">… and ${xs.length - 50} more</li>` : '');
  return `<h2>Change plan</h2><p>${prev}.</p>
${changed ? `<div class="danger"><ul>${changed}</ul></div>` : ''}
${amounts ? `<p>Amounts changed by more than ${p.thresholdPct} %:</p><ul>${amounts}</ul>` : ''}
${p.previous ? `<p>New payees: ${p.newPayees.length}; payees gone: ${p.gone.length}; unchanged: ${p.unchanged}.</p>` : ''}
${p.previous && p.newPayees.length ? `<details><summary>New payees</summary><ul>${list(p.newPayees)}</ul></details>` : ''}
${p.gone.length ? `<details><summary>Payees gone</summary><ul>${list(p.gone)}</ul></details>` : ''}`;
}

const LIVE = `
const root=document.querySelector('[data-live]');
function inr(a){const [w,f]=String(a).split('.');const neg=w.startsWith('-');let d=neg?w.slice(1):w;if(d.length>3){d=d.slice(0,-3).replace(/\\B(?=(\\d{2})+(?!\\d))/g,',')+','+d.slice(-3)}return (neg?'-':'')+'₹'+d+'.'+(f||'00')}
if(root&&window.EventSource){const es=new EventSource(root.dataset.live);
es.addEventListener('summary',function(e){const d=JSON.parse(e.data);
for(const k in d.totals){const t=document.querySelector('[data-status="'+k+'"]');if(!t)continue;t.querySelector('[data-count]').textContent=d.totals[k].count;t.querySelector('[data-amount]').textContent=inr(d.totals[k].amount)}
const s=document.querySelector('[data-batch-state]');if(s)s.textContent=d.state;
const ap=document.querySelector('[data-approved-by]');if(ap)ap.textContent=d.approval.approved_by.join(', ')||'nobody yet';});
const tr=document.querySelector('[data-trouble]');
es.addEventListener('api_trouble',function(e){tr.textContent='The API is in trouble: '+JSON.parse(e.data).message;tr.classList.remove('hidden')});
es.addEventListener('api_ok',function(){tr.textContent='';tr.classList.add('hidden')});
const ph=document.querySelector('[data-phase]');
es.addEventListener('phase',function(e){ph.textContent=JSON.parse(e.data).phase});
es.addEventListener('finished',function(e){const d=JSON.parse(e.data);const m=document.querySelector('[data-last-run]');m.textContent=d.what+' finished (exit '+d.exit_code+'): '+d.message;ph.textContent='done'});
es.addEventListener('failed',function(e){const d=JSON.parse(e.data);const m=document.querySelector('[data-last-run]');m.textContent=d.what+' failed: '+d.message;ph.textContent='failed'});
}`;

export function batchPage(c: PageCommon & { d: BatchDetail; timeZone: string }): string {
  const d = c.d;
  const s = d.summary;
  const b = encodeURIComponent(d.batch);
  const tiles = REPORT_STATUSES.map(
    (k) => `<div class="tile" data-status="${k}"><div class="k">${esc(STATUS_LABELS[k])}</div><div class="c" data-count>${s.totals[k].count}</div><div class="a" data-amount>${esc(rupees(s.totals[k].amount))}</div></div>`,
  ).join('');
  const a = d.approval;
  const isUploader = c.user !== null && d.uploaders.includes(c.user.name);
  const decide =
    c.user?.role === 'checker'
      ? isUploader
        ? `<p class="warn" data-cannot-approve>You uploaded this batch: another checker must approve or reject it.</p>`
        : `<form class="inline" method="post" action="/api/batches/${b}/approve" data-form="approve">${csrfField(c)}<input type="hidden" name="revision" value="${d.revision}"><input name="note" placeholder="note (optional)"> <button class="primary" type="submit">Approve revision ${d.revision}</button></form>
<form class="inline" method="post" action="/api/batches/${b}/reject" data-form="reject">${csrfField(c)}<input type="hidden" name="revision" value="${d.revision}"><input name="note" placeholder="why"> <button type="submit">Reject</button></form>`
      : `<p class="muted">Only a checker other than its uploader approves or rejects a batch${c.user ? `; you are a ${esc(c.user.role)}` : ''}.</p>`;
  const ops = may(c, MAY.operate)
    ? `<form class="inline" method="post" action="/api/batches/${b}/resume" data-form="resume">${csrfField(c)}<button type="submit">Resume</button></form>
<form class="inline" method="post" action="/api/batches/${b}/reconcile" data-form="reconcile">${csrfField(c)}<button type="submit">Reconcile</button></form>
${d.summary.counts.not_sent > 0 || d.summary.counts.sending + d.summary.counts.pending > 0 ? `<form class="inline" method="post" action="/api/batches/${b}/cancel" data-form="cancel">${csrfField(c)}<button type="submit">Cancel the batch</button></form>` : ''}`
    : '';
  const approvals = d.approvals
    .map((x) => `<tr><td>${x.revision}</td><td>${esc(x.decision)}</td><td>${esc(x.by_user)}</td><td>${esc(x.from_where ?? '')}</td><td>${esc(localTime(x.created_at, c.timeZone))}</td><td>${esc(x.note ?? '')}</td></tr>`)
    .join('');
  const audit = d.audit.map((r) => auditRow(r, c.timeZone)).join('');
  const repeats = d.repeats.rows
    ? `<div class="warn" data-repeats>${d.repeats.rows} rows pay a payee the same amount another batch paid in the last ${d.repeats.windowDays} days:<ul>${d.repeats.first
        .slice(0, 20)
        .map((r) => `<li>row ${r.row}: as row ${r.other_row} of batch ${esc(r.other_batch)} (${esc(r.other_state)}), ${esc(rupees(BigInt(r.amount_paise)))}</li>`)
        .join('')}</ul></div>`
    : `<p class="muted" data-repeats>No row pays a payee the same amount another batch paid in the last ${d.repeats.windowDays} days.</p>`;
  const bal =
    d.balance.paise === null
      ? `<p class="warn">The balance could not be read: ${esc(d.balance.error ?? '')}</p>`
      : `<p data-balance>Wallet balance <strong>${esc(rupees(d.balance.paise))}</strong>; after the ${s.counts.not_sent} rows not sent yet (${esc(rupees(s.totals.not_sent.amount))}): <strong data-balance-after>${esc(rupees(d.balance.afterPaise))}</strong>${(d.balance.afterPaise ?? 0n) < 0n ? ' — SHORT: a run would be refused' : ''}.</p>`;
  const last = d.lastRun ? `${d.lastRun.what} by ${d.lastRun.by} ended (exit ${d.lastRun.exitCode}): ${d.lastRun.message}` : '';
  return layout(
    c,
    `Batch ${d.batch}: payouts console`,
    `<div data-live="/api/batches/${b}/events"><h1>Batch ${esc(d.batch)} <span class="muted">revision ${d.revision}</span></h1>
<p>State: <strong data-batch-state>${esc(d.state)}</strong> · phase: <span data-phase>${esc(d.running ?? '—')}</span> · uploaded by <strong>${esc(d.uploadedBy ?? 'unknown')}</strong> from ${esc(path.basename(s.source_file ?? ''))} · ${s.rows} rows, valid total ${esc(rupees(d.validTotalPaise))}</p>
<p data-last-run>${esc(last)}</p>
<div class="danger ${d.trouble ? '' : 'hidden'}" data-trouble>${d.trouble ? `The API is in trouble: ${esc(d.trouble)}` : ''}</div>
<div class="tiles" data-tiles>${tiles}</div>
<h2>Approval</h2>
<p>${a.required ? `The policy asks for ${a.needed} approval${a.needed > 1 ? 's' : ''} by different checkers other than the uploader.` : 'The approval policy is off: an approval here is the yes that starts the batch.'} Approved by: <strong data-approved-by>${esc(a.approvedBy.join(', ') || 'nobody yet')}</strong>.
${a.missing ? `<br><span data-missing>${esc(a.missing)}</span>` : ''}</p>
${decide}
${approvals ? `<table data-table="approvals"><thead><tr><th>Rev</th><th>Decision</th><th>By</th><th>From</th><th>At</th><th>Note</th></tr></thead><tbody>${approvals}</tbody></table>` : ''}
<h2>Balance</h2>${bal}
${planSection(d)}
<h2>Duplicates and repeats</h2>${repeats}
<h2>Actions and reports</h2>${ops}
<p><a data-report="html" href="/api/batches/${b}/report.html">HTML report</a> · <a data-report="csv" href="/api/batches/${b}/report.csv">CSV</a> · <a data-report="json" href="/api/batches/${b}/report.json">JSON</a></p>
<h2>Invalid rows (${d.invalid.length}${d.invalid.length >= 500 ? '+' : ''}): not paid</h2>${d.invalid.length ? rowTable(d.invalid, true, 'invalid') : '<p class="muted">None.</p>'}
<h2>Valid rows (${d.rows.length}${d.rows.length >= 500 ? '+, the report has them all' : ''})</h2>${rowTable(d.rows, false, 'valid')}
<h2>Audit</h2><table data-table="audit"><thead><tr><th>When</th><th>Who</th><th>From</th><th>What</th><th>Detail</th></tr></thead><tbody>${audit}</tbody></table></div>`,
    LIVE,
  );
}

function auditRow(r: AuditRecord, tz: string): string {
  const note = r.detail && typeof r.detail['note'] === 'string' ? r.detail['note'] : r.detail && typeof r.detail['user'] === 'string' ? r.detail['user'] : '';
  return `<tr><td>${esc(localTime(r.at, tz))}</td><td>${esc(r.actor)}</td><td>${esc(r.from_where ?? '')}</td><td>${esc(r.action)}${r.batch ? ` ${esc(r.batch)}${r.revision ? ` rev ${r.revision}` : ''}` : ''}</td><td>${esc(note)}</td></tr>`;
}

export function usersPage(c: PageCommon & { users: { name: string; role: Role; created_at: Date; disabled_at: Date | null }[]; policy: Policy; audit: AuditRecord[]; timeZone: string }): string {
  const rows = c.users
    .map(
      (u) =>
        `<tr data-user-row="${esc(u.name)}"><td>${esc(u.name)}</td><td>${esc(u.role)}</td><td>${u.disabled_at ? `disabled ${esc(localTime(u.disabled_at, c.timeZone))}` : `since ${esc(localTime(u.created_at, c.timeZone))}`}</td>` +
        `<td>${u.disabled_at || u.name === c.user?.name ? '' : `<form class="inline" method="post" action="/api/users/${encodeURIComponent(u.name)}/disable">${csrfField(c)}<button type="submit">Disable</button></form>`}</td></tr>`,
    )
    .join('');
  const p = c.policy;
  return layout(
    c,
    'Users and policy: payouts console',
    `<h1>Users and the approval policy</h1>
<h2>Users</h2><table data-table="users"><thead><tr><th>Name</th><th>Role</th><th>Since / disabled</th><th></th></tr></thead><tbody>${rows}</tbody></table>
<h2>Add a user</h2><form method="post" action="/api/users" data-form="add-user">${csrfField(c)}
<label>Name <input name="name" required></label><label>Role <select name="role">${['maker', 'checker', 'admin', 'viewer'].map((r) => `<option>${r}</option>`).join('')}</select></label>
<label>Password <input name="password" type="password" minlength="10" required autocomplete="new-password"></label><button class="primary" type="submit">Add</button></form>
<h2>Approval policy</h2><p data-policy>${p.enabled ? `On: ${p.checkers} checker${p.checkers > 1 ? 's' : ''} other than the uploader${p.secondAbovePaise !== null ? `, a second above ${esc(formatRupeesIndian(p.secondAbovePaise))}` : ''}.` : 'Off: an approval (or resume) is the yes.'}</p>
<form method="post" action="/api/policy" data-form="policy">${csrfField(c)}<label>Checkers <input name="checkers" type="number" min="1" max="5" value="${p.checkers}"></label>
<label>Second checker above ₹ <input name="second_above" value="${p.secondAbovePaise !== null ? esc(String(p.secondAbovePaise / 100n)) : ''}" placeholder="e.g. 10,00,000"></label>
<label><input type="checkbox" name="off"> turn the policy off</label><button type="submit">Save the policy</button></form>
<h2>Recent audit</h2><table data-table="audit"><thead><tr><th>When</th><th>Who</th><th>From</th><th>What</th><th>Detail</th></tr></thead><tbody>${c.audit.map((r) => auditRow(r, c.timeZone)).join('')}</tbody></table>`,
  );
}
