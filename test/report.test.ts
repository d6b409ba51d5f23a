/**
 * The reports from stored rows: the summary's sums, the CSV a spreadsheet opens (bytes, and LibreOffice
 * itself when installed), the JSON with every row, the corrections file read back by the real CSV reader.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, freshDb, type TestDb } from './helpers/db.js';
import { tmpDir } from './helpers/env.js';
import { FIXTURE, FIXTURE_ACCOUNTS, insertFixture, SOURCE_HEADER } from './helpers/report-fixture.js';
import { reportPath, summarize, writeReport, writeReports } from '../src/report/report.js';
import { correctionsPath, writeCorrections } from '../src/report/corrections.js';
import { textSafeCell } from '../src/report/csv.js';
import { localTime, isoLocalTime } from '../src/report/time.js';
import { safeMessage } from '../src/report/rows.js';
import { readBatchRows } from '../src/batch/ingest.js';
import { parseRupees, formatRupees } from '../src/money.js';
import { UsageError } from '../src/errors.js';

/** RFC 4180 parser (quotes, CRLF), as a spreadsheet reads a CSV. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let q = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (q) {
      if (c === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (c === '"') q = false;
      else cell += c;
    } else if (c === '"') q = true;
    else if (c === ',') row.push(cell), (cell = '');
    else if (c === '\n') row.push(cell), rows.push(row), (row = []), (cell = '');
    else if (c !== '\r') cell += c;
  }
  if (cell !== '' || row.length) row.push(cell), rows.push(row);
  return rows;
}

function records(text: string): Record<string, string>[] {
  expect(text.charCodeAt(0)).toBe(0xfeff);
  const [head, ...body] = parseCsv(text.slice(1));
  return body.map((cells) => Object.fromEntries(head!.map((h, i) => [h, cells[i] ?? ''])));
}

function sum(values: string[]): string {
  return formatRupees(values.reduce((a, v) => a + (v === '' ? 0n : parseRupees(v)!), 0n));
}

describe('times and spreadsheet text', () => {
  it('writes times in IST with the offset, or in another zone when told', () => {
    const t = new Date('2026-11-27T08:35:09.900Z');
    expect(localTime(t, 'Asia/Kolkata')).toBe('2026-11-27 14:05:09 +05:30');
    expect(isoLocalTime(t, 'Asia/Kolkata')).toBe('2026-11-27T14:05:09+05:30');
    expect(localTime(t, 'UTC')).toBe('2026-11-27 08:35:09 +00:00');
    expect(localTime(t, 'America/New_York')).toBe('2026-11-27 03:35:09 -05:00');
    // The offset follows the zone's rules at that instant (summer time).
    expect(localTime(new Date('2026-07-01T12:00:00Z'), 'Europe/London')).toBe('2026-07-01 13:00:00 +01:00');
    expect(Date.parse(isoLocalTime(t, 'Asia/Kolkata')!)).toBe(Date.parse('2026-11-27T08:35:09Z'));
    expect(localTime(null, 'UTC')).toBe('');
  });

  it('agrees with Intl at every instant tried, across summer-time changes and odd offsets', () => {
    const zones = ['Asia/Kolkata', 'Asia/Kathmandu', 'Europe/London', 'America/New_York', 'Australia/Lord_Howe', 'America/St_Johns', 'UTC'];
    const fmt = (tz: string) =>
      new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'longOffset' });
    const expected = (d: Date, tz: string) => {
      const p = Object.fromEntries(fmt(tz).formatToParts(d).map((x) => [x.type, x.value]));
      const off = p['timeZoneName'] === 'GMT' ? '+00:00' : p['timeZoneName']!.replace('GMT', '');
      return `${p['year']}-${p['month']}-${p['day']} ${p['hour']}:${p['minute']}:${p['second']} ${off}`;
    };
    // Every 7 minutes 13 seconds through 2026 around the spring and autumn changes, plus random instants.
    const instants: Date[] = [];
    for (const start of ['2026-03-07T00:00:00Z', '2026-03-28T00:00:00Z', '2026-04-04T00:00:00Z', '2026-10-24T00:00:00Z', '2026-10-31T00:00:00Z']) {
      for (let i = 0; i < 400; i++) instants.push(new Date(Date.parse(start) + i * 433_000));
    }
    for (let i = 0; i < 300; i++) instants.push(new Date(Date.UTC(2020, 0, 1) + Math.floor(Math.random() * 10 * 365 * 86_400_000)));
    for (const tz of zones) for (const d of instants) expect(localTime(d, tz), `${tz} ${d.toISOString()}`).toBe(expected(d, tz));
  });

  it('keeps a number-looking value as text with every digit, and neutralises everything else', () => {
    expect(textSafeCell('779812345678')).toBe('"=""779812345678"""');
    expect(textSafeCell('000123')).toBe('"=""000123"""');
    expect(textSafeCell('1E5')).toBe('"=""1E5"""');
    expect(textSafeCell('AXISN12345678')).toBe('AXISN12345678');
    expect(textSafeCell('=cmd|"/c calc"!A0')).toBe(`"'=cmd|""/c calc""!A0"`);
    expect(textSafeCell('12"; =1+1')).toBe('"12""; =1+1"');
    expect(textSafeCell(null)).toBe('');
  });
});

describe('masking in messages', () => {
  it('masks the row\'s account and any account-like digit run, never an IFSC, an order id or an amount', () => {
    const row = { account_no: '123456789012', mobile: '9876543210' };
    expect(safeMessage(row, 'beneficiary_acc_no "123456789012" is blocked')).toBe('beneficiary_acc_no "XXXXXXXX9012" is blocked');
    expect(safeMessage(row, 'beneficiary_acc_no "1234 5678 9012 34" contains spaces')).toBe('beneficiary_acc_no "XXXXXXXXXX1234" contains spaces');
    expect(safeMessage(row, 'mobile 98765-43210 and +91 98765 43211')).toBe('mobile XXXXXX3210 and +XXXXXXXX3211');
    expect(safeMessage(row, 'ifsc SBIN0000691, order PO7DQ2345678901234, amount 100000000.00 and ₹1,00,00,000.00')).toBe(
      'ifsc SBIN0000691, order PO7DQ2345678901234, amount 100000000.00 and ₹1,00,00,000.00',
    );
    expect(safeMessage(row, 'amount 1500.50 is fine; 12345678 has 8 digits')).toBe('amount 1500.50 is fine; 12345678 has 8 digits');
    expect(safeMessage(row, 'the API holds it with amount 100000000 paise')).toBe('the API holds it with amount 100000000 paise');
  });

  it('the mobile an error is about is shown whole while it looks like a mobile; an account number in that column stays masked', () => {
    const msg = (mobile: string) => `beneficiary_mobile_no "${mobile}" has ${mobile.replace(/\D/g, '').length} digits; another row's 123456789012 is not shown`;
    const eleven = { account_no: '55550001', mobile: '98765432101' };
    expect(safeMessage(eleven, msg(eleven.mobile), { showMobile: true })).toBe('beneficiary_mobile_no "98765432101" has 11 digits; another row\'s XXXXXXXX9012 is not shown');
    const prefixed = { account_no: '55550001', mobile: '+91 98765432101' };
    expect(safeMessage(prefixed, msg(prefixed.mobile), { showMobile: true })).toContain('"+91 98765432101"');
    // 16 digits: an account number pasted into the mobile column.
    const account = { account_no: '55550001', mobile: '3124567890123456' };
    expect(safeMessage(account, msg(account.mobile), { showMobile: true })).toBe('beneficiary_mobile_no "XXXXXXXXXXXX3456" has 16 digits; another row\'s XXXXXXXX9012 is not shown');
  });
});

describe.each(BACKENDS)('reports on %s', (kind) => {
  let db: TestDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDb(kind);
    await insertFixture(db.knex, 'nov');
    await insertFixture(db.knex, 'old', { source: false });
    dir = tmpDir('payouts-report-');
  });
  afterAll(async () => db?.close());

  it('summarizes counts and rupees per status; debited counts approved and pending with their charges, never a refunded one', async () => {
    const s = await summarize(db.knex, 'nov');
    expect(s.schema_version).toBe(1);
    expect(s.rows).toBe(FIXTURE.length);
    expect(s.counts).toEqual({ approved: 3, rejected: 1, failed: 1, invalid: 1, pending: 1, sending: 1, not_sent: 2, needs_review: 1, cancelled: 1 });
    expect(s.totals.approved).toEqual({ count: 3, amount: '3510.50', charges: '12.80' });
    // The rejected payout's charge (5.90) was refunded by the API: not a cost.
    expect(s.totals.rejected).toEqual({ count: 1, amount: '300.00', charges: '0.00' });
    expect(s.totals.pending).toEqual({ count: 1, amount: '500.00', charges: '2.00' });
    expect(s.charges).toBe('14.80');
    expect(s.debited).toBe('4025.30'); // 3510.50 + 500 + 12.80 + 2.00
    // Sent with no known outcome (sending, and the needs_review row that was sent): maybe debited.
    expect(s.possibly_debited).toEqual({ count: 2, amount: '250700.00' });
    expect(s.paid).toEqual({ count: 3, amount: '3510.50' });
    expect(s.awaiting).toEqual({ count: 2, amount: '1200.00' });
    expect(s.not_paid).toEqual({ count: 5, amount: '251649.99' });
    expect(s.amount).toBe('256660.49');
    expect(s.reference_column).toBe('Employee ID');
    expect(s.time_zone).toBe('Asia/Kolkata');
    expect(s.started_at).toBe('2026-11-27T14:05:09+05:30');
    expect(s.first_sent_at).toBe('2026-11-27T14:05:11+05:30');
    expect(s.last_outcome_at).toBe('2026-11-27T14:06:22+05:30');
    expect(s.finished_at).toBeNull();
  });

  it('breaks the summary down by method and by bank, and the parts add up to the whole', async () => {
    const s = await summarize(db.knex, 'nov');
    expect(s.by_method.map((m) => m.method).sort()).toEqual(['IMPS', 'NEFT', 'RTGS', 'UPI']);
    expect(s.by_bank.map((b) => [b.bank_code, b.bank_name])).toEqual(
      expect.arrayContaining([['SBIN', 'State Bank of India'], ['HDFC', 'HDFC Bank'], ['ICIC', 'ICICI Bank'], ['UTIB', 'Axis Bank']]),
    );
    for (const groups of [s.by_method, s.by_bank]) {
      expect(groups.reduce((a, g) => a + g.rows, 0)).toBe(s.rows);
      expect(sum(groups.map((g) => g.amount))).toBe(s.amount);
      expect(sum(groups.map((g) => g.debited))).toBe(s.debited);
      expect(sum(groups.map((g) => g.charges))).toBe(s.charges);
      for (const st of Object.keys(s.counts) as (keyof typeof s.counts)[]) {
        expect(groups.reduce((a, g) => a + g.counts[st], 0)).toBe(s.counts[st]);
      }
    }
    const upi = s.by_method.find((m) => m.method === 'UPI')!;
    expect(upi.counts).toMatchObject({ approved: 1, failed: 1, cancelled: 1 });
    expect(upi.debited).toBe('11.00');
  });

  it('writes a CSV a spreadsheet reads whole: BOM, UTR and references as text, sums equal to the summary', async () => {
    const paths = await writeReports(db.knex, 'nov', dir);
    expect(statSync(paths.csv).mode & 0o777).toBe(0o600);
    const text = readFileSync(paths.csv, 'utf8');
    const bytes = readFileSync(paths.csv);
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    for (const acc of FIXTURE_ACCOUNTS) expect(text).not.toContain(acc);
    const rows = records(text);
    expect(rows).toHaveLength(FIXTURE.length);
    expect(Object.keys(rows[0]!)).toEqual([
      'row', 'order_id', 'Employee ID', 'beneficiary_name', 'account', 'ifsc', 'bank_name', 'payment_method', 'amount', 'charge', 'debited',
      'status', 'status_label', 'utr', 'reason', 'status_message', 'remarks', 'warnings', 'sent_at', 'final_at',
    ]);
    const by = (n: number) => rows.find((r) => r['row'] === String(n))!;
    // A 12-digit UTR with a leading zero, kept as text: ="079812345678" once unquoted.
    expect(by(2)['utr']).toBe('="079812345678"');
    expect(text).toContain(',"=""079812345678""",');
    expect(by(2)['Employee ID']).toBe('="000123"');
    expect(by(13)['utr']).toBe('AXISN12345678');
    expect(by(3)['beneficiary_name']).toBe('राजेश कुमार');
    expect(by(2)['remarks']).toBe('Nov salary');
    expect(by(2)['sent_at']).toBe('2026-11-27 14:05:11 +05:30');
    expect(by(2)['account']).toBe('XXXXXXXX5678');
    // Amounts, charges and debits are plain numbers that add up to the summary.
    const s = paths.summary;
    expect(sum(rows.map((r) => r['amount']!))).toBe(s.amount);
    expect(sum(rows.map((r) => r['debited']!))).toBe(s.debited);
    expect(sum(rows.map((r) => r['charge']!))).toBe(s.charges);
    expect(sum(rows.filter((r) => r['status'] === 'approved').map((r) => r['amount']!))).toBe(s.paid.amount);
    for (const r of rows) for (const k of ['amount', 'charge', 'debited']) expect(r[k]).toMatch(/^(\d+\.\d{2})?$/);
    expect(by(4)['charge']).toBe('0.00'); // rejected: refunded
    expect(by(8)['debited']).toBe(''); // sending: not known yet
    // One reason per row not paid, in words; the API's status message kept apart.
    expect(by(2)['reason']).toBe('');
    expect(by(4)['reason']).toMatch(/^Rejected by the bank: Beneficiary account is closed\. The charge was refunded/);
    expect(by(4)['status_message']).toBe('Beneficiary account is closed.');
    expect(by(5)['reason']).toMatch(/^Invalid, not sent: ifsc "SBIN060589" is not 11 characters.*XXXXXXXX9012/);
    expect(by(6)['reason']).toMatch(/^Refused by the API, not created: The beneficiary name field/);
    expect(by(6)['status_message']).toBe('');
    expect(by(7)['reason']).toMatch(/awaiting the bank/);
    expect(by(7)['status_message']).toBe('Payout has been processing.');
    expect(by(7)['warnings']).toBe('branch not in the list');
    expect(by(8)['reason']).toMatch(/outcome not known yet.*never pay it by hand/);
    expect(by(9)['reason']).toMatch(/^Not sent yet: payouts resume nov sends it/);
    expect(by(10)['reason']).toMatch(/^Not sent: the wallet balance ₹100\.00 is short/);
    expect(by(11)['reason']).toMatch(/^Needs review: .*payouts payout-status PONOV11/);
    expect(by(12)['reason']).toMatch(/^Cancelled/);
    for (const r of rows) if (r['status'] !== 'approved') expect(r['reason']!.length, `row ${r['row']}`).toBeGreaterThan(20);
    // Formula-looking names are defused; the only cells starting with = are the number-as-text form.
    expect(by(6)['beneficiary_name']!.startsWith(`'=HYPERLINK`)).toBe(true);
    expect(by(13)['beneficiary_name']).toBe(`'@Ravi <script>alert(1)</script>`);
    for (const r of rows) {
      for (const [k, v] of Object.entries(r)) {
        if (v.startsWith('=')) expect(v, k).toMatch(/^="[0-9A-Za-z.+-]+"$/);
        else expect(v, k).not.toMatch(/^[+@\t\r-]/);
      }
    }
  });

  it('writes a JSON report with the summary and every row, accounts masked', async () => {
    const paths = await writeReports(db.knex, 'nov', dir, { now: new Date('2026-11-27T10:00:00Z') });
    const text = readFileSync(paths.json, 'utf8');
    for (const acc of FIXTURE_ACCOUNTS) expect(text).not.toContain(acc);
    const j = JSON.parse(text) as { schema_version: number; summary: Record<string, unknown>; rows: Record<string, unknown>[] };
    expect(j.schema_version).toBe(1);
    expect(j.summary).toEqual(JSON.parse(JSON.stringify(await summarize(db.knex, 'nov', { now: new Date('2026-11-27T10:00:00Z') }))));
    expect(j.summary['generated_at']).toBe('2026-11-27T15:30:00+05:30');
    expect(j.rows).toHaveLength(FIXTURE.length);
    expect(j.rows.map((r) => r['row'])).toEqual(FIXTURE.map((_f, i) => i + 2));
    expect(j.rows[0]).toMatchObject({
      row: 2, reference: '000123', account: 'XXXXXXXX5678', amount: '1500.50', charge: '5.90', debited: '1506.40', status: 'approved',
      status_label: 'paid', utr: '079812345678', reason: '', sent_at: '2026-11-27T14:05:11+05:30', in_latest_file: true,
    });
    // snake_case keys only; amounts are rupee strings.
    for (const r of j.rows) for (const k of Object.keys(r)) expect(k).toMatch(/^[a-z_]+$/);
    expect(sum(j.rows.map((r) => (r['debited'] as string | null) ?? ''))).toBe(j.summary['debited']);
  });

  it('writes one format on request, in another time zone; an unknown zone is a usage error', async () => {
    const other = tmpDir('payouts-report-one-');
    const r = await writeReport(db.knex, 'nov', other, 'csv', { timeZone: 'UTC' });
    expect(readdirSync(other)).toEqual(['nov.csv']);
    expect(records(readFileSync(r.file, 'utf8'))[0]!['sent_at']).toBe('2026-11-27 08:35:11 +00:00');
    await expect(writeReport(db.knex, 'nov', other, 'json', { timeZone: 'Mars/Olympus' })).rejects.toBeInstanceOf(UsageError);
  });

  it('writes the corrections file in the input\'s own columns, which the CSV reader takes back', async () => {
    const file = correctionsPath(dir, 'nov');
    const r = await writeCorrections(db.knex, 'nov', file);
    expect(r).toMatchObject({ rows: 3, sourceColumns: true, columns: [...SOURCE_HEADER, 'reason'] });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    const rows = records(text);
    // Invalid, refused by the API, and rejected by the bank (a corrected account is a new payout).
    expect(rows.map((x) => x['Employee ID'])).toEqual(['E-3', 'E-4', 'E-5']);
    expect(rows[0]!['reason']).toMatch(/^Rejected by the bank: Beneficiary account is closed\..*a corrected account is a new payout \(a line left unchanged is not paid again\)\.$/);
    rows.shift();
    // The cells as the input had them (it is an input file: full account numbers, to be fixed and sent).
    expect(rows[0]).toMatchObject({ Name: 'Bad Ifsc <b>&amp;</b>', 'Account No': '423456789012', IFSC: 'SBIN060589', Amount: '300.00', Mode: 'IMPS' });
    expect(rows[0]!['reason']).toMatch(/^Invalid, not sent: ifsc "SBIN060589"/);
    expect(rows[0]!['reason']).not.toMatch(/--fixable/);
    expect(rows[1]!['reason']).toMatch(/^Refused by the API/);
    // A formula cell is defused, and the reason says so.
    expect(rows[1]!['Name']!.startsWith(`'=HYPERLINK`)).toBe(true);
    expect(rows[1]!['reason']).toMatch(/A ' was put before Name/);

    // Fix the IFSC, keep the rest: the real reader maps the header, ignores the reason column, and the
    // fixed row is valid.
    writeFileSync(file, text.replace('SBIN060589', 'SBIN0000691'));
    const back = [];
    for await (const row of readBatchRows(file, { batch: 'nov', defaultUserId: 'u-1' })) back.push(row);
    expect(back).toHaveLength(3);
    expect(back[1]!.errors).toEqual([]);
    expect(back[1]!.accountNumber).toBe('423456789012');
    expect(back[1]!.amountPaise).toBe(30000n);
  });

  it('falls back to the API\'s column names for a batch read before the input\'s cells were kept', async () => {
    const file = correctionsPath(dir, 'old');
    const r = await writeCorrections(db.knex, 'old', file);
    expect(r.sourceColumns).toBe(false);
    expect(r.columns).toEqual([
      'beneficiary_name', 'beneficiary_email', 'beneficiary_mobile_no', 'beneficiary_address', 'payment_method', 'beneficiary_acc_no', 'bank_name', 'ifsc', 'amount', 'remarks', 'user_id', 'reason',
    ]);
    const rows = records(readFileSync(file, 'utf8'));
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatchObject({ beneficiary_acc_no: '323456780000' });
    rows.shift();
    expect(rows[0]).toMatchObject({ beneficiary_acc_no: '423456789012', ifsc: 'SBIN060589', amount: '300.00', user_id: 'u-1' });
    const back = [];
    for await (const row of readBatchRows(file, { batch: 'old' })) back.push(row);
    expect(back).toHaveLength(3);
    expect(back[1]!.errors.map((e) => e.field)).toEqual(['ifsc']);
    // The reference column is "reference" when the input had none.
    const csv = await writeReport(db.knex, 'old', dir, 'csv');
    expect(readFileSync(csv.file, 'utf8').split('\r\n')[0]).toMatch(/^\uFEFFrow,order_id,reference,/);
  });
});

// ---------------------------------------------------------------------------------------------------------
// The far side: LibreOffice Calc opening the CSV (CI installs libreoffice-calc; skipped where it is missing).

const SOFFICE = ['/usr/bin/soffice', '/usr/bin/libreoffice'].find((p) => existsSync(p));
if (!SOFFICE && process.env['CI']) throw new Error('soffice is missing: .ci/run installs it (apt-get install -y libreoffice-calc)');

interface Cell {
  type: string;
  value: string;
  formula: string | null;
  text: string;
}

/** Opens a CSV in LibreOffice Calc (headless) with the given CSV filter options and reads back its cells. */
function openInCalc(csv: string, filterOptions: string): Cell[][] {
  const out = tmpDir('payouts-lo-out-');
  execFileSync(
    SOFFICE!,
    [`-env:UserInstallation=file://${tmpDir('payouts-lo-profile-')}`, '--headless', `--infilter=CSV:${filterOptions}`, '--convert-to', 'fods', '--outdir', out, csv],
    { stdio: 'pipe', timeout: 120_000 },
  );
  const xml = readFileSync(path.join(out, `${path.basename(csv, '.csv')}.fods`), 'utf8');
  const decode = (s: string) => s.replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  return [...xml.matchAll(/<table:table-row[^>]*>([\s\S]*?)<\/table:table-row>/g)].map((m) => {
    const row: Cell[] = [];
    for (const c of m[1]!.matchAll(/<table:table-cell([^>]*?)(?:\/>|>([\s\S]*?)<\/table:table-cell>)/g)) {
      const attrs = c[1]!;
      const rep = Number(/table:number-columns-repeated="(\d+)"/.exec(attrs)?.[1] ?? 1);
      const type = /office:value-type="([^"]+)"/.exec(attrs)?.[1] ?? 'empty';
      const value = decode(/office:(?:string-)?value="([^"]*)"/.exec(attrs)?.[1] ?? '');
      const formula = /table:formula="([^"]*)"/.exec(attrs)?.[1] ?? null;
      // The cell's paragraphs (the file is indented between elements, never inside a paragraph).
      const paragraphs = [...(c[2] ?? '').matchAll(/<text:p[^>]*>([\s\S]*?)<\/text:p>/g)].map((p) =>
        p[1]!.replace(/<text:s(?: text:c="(\d+)")?\/>/g, (_m, n: string | undefined) => ' '.repeat(Number(n ?? 1))).replace(/<text:tab\/>/g, '\t').replace(/<[^>]+>/g, ''),
      );
      const text = decode(paragraphs.join('\n'));
      for (let i = 0; i < Math.min(rep, 50); i++) row.push({ type, value, formula: formula && decode(formula), text });
    }
    return row;
  });
}

describe.skipIf(!SOFFICE)('the CSV report opened in LibreOffice Calc', () => {
  let db: TestDb;
  let cells: Cell[][];
  let plainText: Cell[][];

  beforeAll(async () => {
    db = await freshDb('pglite');
    await insertFixture(db.knex, 'nov');
    const csv = (await writeReports(db.knex, 'nov', tmpDir('payouts-lo-'))).csv;
    // UTF-8, as the import dialog picks for a file with a BOM; the rest LibreOffice's filter defaults.
    cells = openInCalc(csv, '44,34,76,1');
    // The same with "Evaluate formulas" off (token 13), the import dialog's default for CSV files.
    plainText = openInCalc(csv, '44,34,76,1,,0,false,false,false,false,false,0,false');
  }, 240_000);
  afterAll(async () => db?.close());

  const col = (name: string) => cells[0]!.findIndex((c) => c.text === name);

  it('reads the header without the BOM in the first cell, and the Hindi names intact', () => {
    expect(cells[0]![0]!.text).toBe('row');
    const names = cells.slice(1).map((r) => r[col('beneficiary_name')]!.text);
    expect(names).toContain('राजेश कुमार');
    expect(names).toContain('मोहन लाल & Sons');
  });

  it('keeps every digit of a 12-digit UTR (leading zero too) and of a numeric reference, as text', () => {
    const utr = cells.slice(1).map((r) => r[col('utr')]!);
    expect(utr[0]).toMatchObject({ type: 'string', text: '079812345678' });
    expect(utr[1]).toMatchObject({ type: 'string', text: '779812345678' });
    expect(cells[1]![col('Employee ID')]).toMatchObject({ type: 'string', text: '000123' });
    // Formulas not evaluated: the cell shows the wrapper, but it is text with every digit, never 7.79812E+11.
    expect(plainText[1]![col('utr')]).toMatchObject({ type: 'string', text: '="079812345678"' });
    expect(plainText[2]![col('utr')]).toMatchObject({ type: 'string', text: '="779812345678"' });
  });

  it('reads amounts as numbers that sum to the summary, and never runs a hostile name', () => {
    for (const sheet of [cells, plainText]) {
      const amount = sheet.slice(1).map((r) => r[col('amount')]!);
      for (const a of amount) expect(a.type).toBe('float');
      expect(amount.reduce((s, a) => s + Math.round(Number(a.value) * 100), 0)).toBe(25666049);
      const name = sheet.find((r) => r[col('row')]!.text === '6')![col('beneficiary_name')]!;
      expect(name.formula).toBeNull();
      expect(name.text).toBe(`'=HYPERLINK("http://evil.example","x")`);
    }
  });
});

describe('report paths', () => {
  it('names each format after the batch', () => {
    expect(reportPath('/r', 'nov-2026', 'html')).toBe(path.join('/r', 'nov-2026.html'));
    expect(correctionsPath('/r', 'nov-2026')).toBe(path.join('/r', 'nov-2026.corrections.csv'));
  });
});
