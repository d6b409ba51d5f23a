/**
 * The `payouts` command line as a user meets it: the built dist/src/main.js in a child process, against
 * the sandbox started in this process (port 0), every scenario with its own data and report directories.
 *
 * A fresh PGlite directory costs ~4 s to initialise, so one is made (by `payouts migrate`) in beforeAll and
 * copied for each scenario that needs a database.
 */
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from './helpers/cli.js';
import { KEYS, sandbox, tmpDir as makeTmpDir } from './helpers/env.js';
import type { Sandbox } from '../src/sandbox/server.js';

// ---------------------------------------------------------------------------------------------------------
// Fixtures

const HEADER =
  'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount,remarks';

/** Spreadsheet rows (header = row 1). */
const ROW = {
  asha: 'Asha Rao,asha@example.com,9876500001,"1 MG Road, Pune",IMPS,123456789012,SBI,SBIN0000691,1500.50,Salary',
  bala: 'Bala Krishnan,bala@example.com,9876500002,"2 Park St, Kolkata",NEFT,223344556677,HDFC Bank,HDFC0000001,2000,Salary',
  /** Invalid: formula text in the name (the validator refuses it). */
  formula: '"=HYPERLINK(""http://x.example/"",""click"")",evil@example.com,9876500003,"3 Main Rd, Delhi",IMPS,334455667788,ICICI Bank,ICIC0000001,100,Salary',
  /** Invalid: a 10-character IFSC. */
  badIfsc: 'Chitra Das,chitra@example.com,9876500004,"4 Lake Rd, Chennai",IMPS,445566778899,SBI,SBIN060589,300,Salary',
  /** Valid, but the sandbox's bank rejects accounts ending 0000. */
  rejected: 'Dev Patel,dev@example.com,9876500005,"5 Hill Rd, Surat",IMPS,998877660000,Axis Bank,UTIB0000001,250,Salary',
  /** Valid, approved; its name looks like a formula to a spreadsheet (@). */
  atName: '@Ravi Kumar,ravi@example.com,9876500006,"6 Fort Rd, Mumbai",IMPS,556677889900,Axis Bank,UTIB0000001,120,Salary',
};
const MIXED = [HEADER, ROW.asha, ROW.bala, ROW.formula, ROW.badIfsc, ROW.rejected, ROW.atName];
const ALL_VALID = [HEADER, ROW.asha, ROW.bala];
/** Every full account number that appears in the fixtures: none may reach a log or a report. */
const ACCOUNTS = ['123456789012', '223344556677', '334455667788', '445566778899', '998877660000', '556677889900'];

const FAST = ['--rate', '100', '--poll-interval', '100ms', '--ambiguous-grace', '1s', '--yes', '--user-id', 'M123'];

function writeCsv(dir: string, name: string, lines: string[]): string {
  const file = path.join(dir, name);
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

function apiEnv(sb: { url: string }, keys: { accessKey: string; secretKey: string } = KEYS): Record<string, string> {
  return { ALLIANCE_BASE_URL: sb.url, ALLIANCE_ACCESS_KEY: keys.accessKey, ALLIANCE_SECRET_KEY: keys.secretKey };
}

/** Lines of stderr that are not pino JSON. */
function plainLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.trim() !== '' && !isJsonLine(l));
}
function isJsonLine(l: string): boolean {
  if (!l.trim().startsWith('{')) return false;
  try {
    JSON.parse(l);
    return true;
  } catch {
    return false;
  }
}
const STACK = /^\s+at\s.+[(:]/m;

function show(r: CliResult): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** Parses our report CSV (RFC 4180 quoting, CRLF). */
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

function readReport(file: string): Record<string, string>[] {
  const text = readFileSync(file, 'utf8');
  // The report starts with a UTF-8 BOM (so a spreadsheet reads names as UTF-8).
  expect(text.charCodeAt(0)).toBe(0xfeff);
  const [head, ...body] = parseCsv(text.slice(1));
  return body.map((cells) => Object.fromEntries(head!.map((h, i) => [h, cells[i] ?? ''])));
}

/** A throwaway local HTTP server answering every request with `handler`. */
async function tinyServer(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; server: Server; hits: () => number }> {
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    handler!(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, hits: () => hits };
}

async function closedPortUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

// ---------------------------------------------------------------------------------------------------------

/** Every temp dir this file makes, removed at the end (each database copy is ~40 MB). */
const made: string[] = [];
function tmpDir(prefix?: string): string {
  const d = makeTmpDir(prefix);
  made.push(d);
  return d;
}

let template: string;
let migrated: CliResult;
const servers: Server[] = [];
const sandboxes: Sandbox[] = [];

async function sb(over: Parameters<typeof sandbox>[0] = {}): Promise<Sandbox> {
  const s = await sandbox(over);
  sandboxes.push(s);
  return s;
}

/** A scenario's own directories: a copy of the migrated database, an empty report dir, a work dir. */
function scenario(): { dataDir: string; reportDir: string; work: string; dirArgs: string[] } {
  const dataDir = tmpDir('payouts-cli-data-');
  cpSync(template, dataDir, { recursive: true });
  const reportDir = path.join(tmpDir('payouts-cli-reports-'), 'out');
  const work = tmpDir('payouts-cli-work-');
  return { dataDir, reportDir, work, dirArgs: ['--data-dir', dataDir, '--report-dir', reportDir] };
}

beforeAll(async () => {
  template = tmpDir('payouts-cli-template-');
  migrated = await runCli(['migrate', '--data-dir', template], { cwd: tmpDir() });
});

afterAll(async () => {
  for (const s of sandboxes) await s.close();
  for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------

describe('payouts migrate', () => {
  it('creates and migrates a fresh embedded database, exit 0; again is a no-op, exit 0', async () => {
    expect(migrated.code, show(migrated)).toBe(0);
    expect(migrated.stdout).toMatch(/up to date \(\d+ migrations?\)/);
    expect(existsSync(path.join(template, 'pgdata'))).toBe(true);
    const d = tmpDir('payouts-cli-data-');
    cpSync(template, d, { recursive: true });
    const again = await runCli(['migrate', '--data-dir', d, '--json']);
    expect(again.code, show(again)).toBe(0);
    const j = JSON.parse(again.stdout) as { database: string; migrations: number };
    expect(j.database).toContain(d);
    expect(j.migrations).toBeGreaterThan(0);
  });
});

describe('help', () => {
  const SECRET = 'SECRET-sk-9f8e7d6c5b4a39281706';
  const ACCESS = 'ACCESS-ak-1a2b3c4d5e6f';
  const env = { ALLIANCE_BASE_URL: 'http://127.0.0.1:9', ALLIANCE_ACCESS_KEY: ACCESS, ALLIANCE_SECRET_KEY: SECRET };
  const REQUIRED = ['run', 'resume', 'validate', 'status', 'report', 'migrate', 'demo', 'balance', 'payout-status', 'payin-status', 'sandbox'];

  it('payouts --help lists every command, exit 0, no secrets', async () => {
    const r = await runCli(['--help'], { env });
    expect(r.code, show(r)).toBe(0);
    for (const c of REQUIRED) expect(r.stdout).toMatch(new RegExp(`payouts ${c}\\b`));
    expect(r.stdout + r.stderr).not.toContain(SECRET);
    expect(r.stdout + r.stderr).not.toContain(ACCESS);
  });

  it('every command has --help (run and balance -h too), exit 0, never printing the keys set in the environment', async () => {
    const top = await runCli(['--help'], { env });
    // Commands the help lists (others may add some) plus the ones the issues name.
    const listed = [...top.stdout.matchAll(/^\s+payouts ([a-z][a-z-]*)/gm)].map((m) => m[1]!);
    const commands = [...new Set([...REQUIRED, ...listed])];
    const results = await Promise.all(
      [...commands.map((c) => [c, '--help']), ['run', '-h'], ['balance', '-h']].map(([c, flag]) => runCli([c!, flag!], { env }).then((r) => ({ c: c!, r }))),
    );
    for (const { c, r } of results) {
      expect(r.code, `${c} --help\n${show(r)}`).toBe(0);
      expect(r.stdout, c).toMatch(new RegExp(`payouts ${c}`));
      expect(r.stdout, c).toMatch(/--help/);
      expect(r.stdout + r.stderr, c).not.toContain(SECRET);
      expect(r.stdout + r.stderr, c).not.toContain(ACCESS);
    }
  });

  it('--help with the keys also passed as flags does not echo them', async () => {
    const r = await runCli(['balance', '--access-key', ACCESS, '--secret-key', SECRET, '--help'], { env });
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(SECRET);
    expect(r.stdout + r.stderr).not.toContain(ACCESS);
  });
});

describe('usage errors', () => {
  it('an unknown command exits 2 with a message, no stack', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toMatch(/frobnicate/);
    expect(r.stderr).not.toMatch(STACK);
  });

  it('an unknown flag exits 2 naming it', async () => {
    const r = await runCli(['status', '--bogus-flag', '--data-dir', tmpDir()]);
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toMatch(/bogus-flag/);
    expect(r.stderr).not.toMatch(STACK);
  });

  it('no command at all exits 2 and points at --help', async () => {
    const r = await runCli([]);
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toMatch(/--help/);
  });

  it('a missing positional argument exits 2', async () => {
    const r = await runCli(['payout-status']);
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).not.toMatch(STACK);
  });

  it('a malformed duration exits 2 naming the flag', async () => {
    const s = scenario();
    const csv = writeCsv(s.work, 'p.csv', ALL_VALID);
    const r = await runCli(['run', csv, ...s.dirArgs, ...FAST, '--poll-timeout', 'soon'], { env: apiEnv({ url: 'http://127.0.0.1:9' }) });
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toMatch(/--poll-timeout/);
  });
});

describe('configuration and connection problems', () => {
  it('no ALLIANCE_BASE_URL: exit 2, the message names the environment variables', async () => {
    const r = await runCli(['balance'], { env: { ALLIANCE_ACCESS_KEY: KEYS.accessKey, ALLIANCE_SECRET_KEY: KEYS.secretKey } });
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toContain('ALLIANCE_BASE_URL');
    expect(r.stderr).not.toContain(KEYS.secretKey);
    expect(r.stderr).not.toMatch(STACK);
  });

  it('no configuration at all: exit 2 naming all three variables, for run too', async () => {
    const s = scenario();
    const csv = writeCsv(s.work, 'p.csv', ALL_VALID);
    const r = await runCli(['run', csv, ...s.dirArgs, ...FAST]);
    expect(r.code, show(r)).toBe(2);
    for (const v of ['ALLIANCE_BASE_URL', 'ALLIANCE_ACCESS_KEY', 'ALLIANCE_SECRET_KEY']) expect(r.stderr).toContain(v);
    expect(r.stderr).not.toMatch(STACK);
  });

  it('wrong keys: one line naming keys, IP and clock; exit 6 (credentials refused); no stack; secrets not echoed', async () => {
    const s = await sb();
    const wrong = { accessKey: 'wrong-access-key-xyz', secretKey: 'wrong-secret-key-abcdef012345' };
    const r = await runCli(['balance'], { env: apiEnv(s, wrong) });
    expect(r.code, show(r)).toBe(6);
    const lines = plainLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^payouts: /);
    expect(lines[0]).toMatch(/401|403/);
    expect(lines[0]).toMatch(/ALLIANCE_ACCESS_KEY|key/i);
    expect(lines[0]).toMatch(/\bIP\b/);
    expect(lines[0]).toMatch(/clock/i);
    expect(r.stderr).not.toMatch(STACK);
    expect(r.stdout + r.stderr).not.toContain(wrong.secretKey);
    expect(r.stdout + r.stderr).not.toContain(wrong.accessKey);
  });

  it('wrong keys on run: exit 6 and nothing sent', async () => {
    const s = await sb();
    const d = scenario();
    const csv = writeCsv(d.work, 'p.csv', ALL_VALID);
    const r = await runCli(['run', csv, ...d.dirArgs, ...FAST], { env: apiEnv(s, { ...KEYS, secretKey: 'not-the-secret-000000' }) });
    expect(r.code, show(r)).toBe(6);
    expect(plainLines(r.stderr).join('\n')).toMatch(/ALLIANCE_ACCESS_KEY|key/i);
    expect(r.stderr).not.toMatch(STACK);
    expect(s.ledger()).toHaveLength(0);
  });

  it('a server clock 10 minutes ahead: the message names the clock skew', async () => {
    const t = await tinyServer((_req, res) => {
      res.setHeader('Date', new Date(Date.now() + 10 * 60_000).toUTCString());
      res.setHeader('content-type', 'application/json');
      res.statusCode = 401;
      res.end(JSON.stringify({ status: false, message: 'Invalid timestamp' }));
    });
    servers.push(t.server);
    const r = await runCli(['balance'], { env: apiEnv(t) });
    expect(t.hits()).toBeGreaterThan(0);
    expect(r.code, show(r)).toBe(6);
    const lines = plainLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/clock/i);
    // 600 s (give or take a second) and which way.
    expect(lines[0]).toMatch(/\b(59[89]|60[0-2])\s?s\b|10 min/);
    expect(lines[0]).toMatch(/behind/);
    expect(r.stderr).not.toMatch(STACK);
  });

  it('an unreachable URL: a clear error naming ALLIANCE_BASE_URL, exit non-zero, stack only with --verbose', async () => {
    const url = await closedPortUrl();
    const r = await runCli(['balance'], { env: apiEnv({ url }) });
    expect(r.code, show(r)).not.toBe(0);
    expect(r.code).not.toBeNull();
    const lines = plainLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toContain('ALLIANCE_BASE_URL');
    expect(lines[0]).toContain(url);
    expect(r.stderr).not.toMatch(STACK);

    const v = await runCli(['balance', '--verbose'], { env: apiEnv({ url }) });
    expect(v.code, show(v)).toBe(r.code);
    expect(v.stderr).toContain('ALLIANCE_BASE_URL');
    expect(v.stderr).toMatch(STACK);
    expect(v.stderr).not.toContain(KEYS.secretKey);
  });

  it('a 200 reply that is not JSON: a clear error, exit non-zero, no stack', async () => {
    const t = await tinyServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end('<html><body>Welcome to nginx!</body></html>');
    });
    servers.push(t.server);
    const r = await runCli(['balance'], { env: apiEnv(t) });
    expect(t.hits()).toBeGreaterThan(0);
    expect(r.code, show(r)).not.toBe(0);
    expect(r.code).not.toBeNull();
    const lines = plainLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/not JSON/i);
    expect(lines[0]).toMatch(/text\/html/);
    expect(r.stderr).not.toMatch(STACK);
    expect(r.stdout).not.toMatch(/balance/i);
  });
});

describe('balance and payout-status against the sandbox', () => {
  let s: Sandbox;
  beforeAll(async () => {
    s = await sb({ balancePaise: 12_34_567_89n });
  });

  it('balance prints the wallet balance, exit 0', async () => {
    const r = await runCli(['balance'], { env: apiEnv(s) });
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/12,34,567\.89/);
    expect(r.stderr.trim()).toBe('');
  });

  it('balance --json prints the balance as JSON, exit 0', async () => {
    const r = await runCli(['balance', '--json'], { env: apiEnv(s) });
    expect(r.code, show(r)).toBe(0);
    const j = JSON.parse(r.stdout) as { balance: string; balance_paise: string };
    expect(j.balance).toBe('1234567.89');
    expect(j.balance_paise).toBe('123456789');
  });

  it('payout-status of an unknown order id: exit 2 (no such payout; the API is up, not 6), one clear line saying 404, no stack', async () => {
    const r = await runCli(['payout-status', 'NO-SUCH-ORDER-42'], { env: apiEnv(s) });
    expect(r.code, show(r)).toBe(2);
    const lines = plainLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/404|not found/i);
    expect(lines[0]).toContain('NO-SUCH-ORDER-42');
    expect(r.stderr).not.toMatch(STACK);
    expect(r.stdout.trim()).toBe('');
    const payin = await runCli(['payin-status', 'NO-SUCH-PAYIN-42'], { env: { ...apiEnv(s), PAYOUTS_DATA_DIR: tmpDir('payouts-payin-404-') } });
    expect(payin.code, show(payin)).toBe(2);
    expect(payin.stderr).toMatch(/no payin with order_id NO-SUCH-PAYIN-42 \(404\)/);
  });
});

describe('payouts run: a mixed file (valid, invalid, rejected, formula-looking names)', () => {
  let s: Sandbox;
  let d: ReturnType<typeof scenario>;
  let csv: string;
  let first: CliResult;
  let env: Record<string, string>;
  const reportCsv = () => path.join(d.reportDir, 'payroll.csv');
  const reportJson = () => path.join(d.reportDir, 'payroll.json');

  beforeAll(async () => {
    s = await sb();
    d = scenario();
    csv = writeCsv(d.work, 'payroll.csv', MIXED);
    env = apiEnv(s);
    first = await runCli(['run', csv, ...d.dirArgs, ...FAST], { env, cwd: d.work });
  });

  it('exits 1 (rows not paid) and names the report on stdout', () => {
    expect(first.code, show(first)).toBe(1);
    expect(first.stdout).toContain(reportCsv());
    expect(first.stdout).toMatch(/3 paid/);
    expect(first.stdout).toMatch(/2 invalid/);
    expect(first.stdout).toMatch(/1 rejected/);
    expect(first.stderr).not.toMatch(STACK);
  });

  it('paid each valid row exactly once at the API', () => {
    const ledger = s.ledger();
    expect(ledger).toHaveLength(4);
    for (const e of ledger) expect(s.executions(e.orderId)).toBe(1);
    expect(ledger.filter((e) => e.status === 'Rejected').map((e) => e.accountNo)).toEqual(['998877660000']);
  });

  it('writes a 0600 report with one line per input row, accounts masked, formula-looking cells defused', () => {
    const st = statSync(reportCsv());
    expect(st.mode & 0o777).toBe(0o600);
    expect(statSync(reportJson()).mode & 0o777).toBe(0o600);
    const text = readFileSync(reportCsv(), 'utf8');
    for (const acc of ACCOUNTS) expect(text).not.toContain(acc);
    const rows = readReport(reportCsv());
    expect(rows).toHaveLength(MIXED.length - 1);
    expect(rows.map((r) => r['row'])).toEqual(['2', '3', '4', '5', '6', '7']);
    const by = (n: number) => rows.find((r) => r['row'] === String(n))!;
    expect(by(2)['account']).toBe('XXXXXXXX9012');
    expect(by(6)['account']).toBe('XXXXXXXX0000');
    expect(by(2)['status']).toBe('approved');
    // The UTR as spreadsheet text (="…"): every digit kept.
    expect(by(2)['utr']).toMatch(/^="\d{10,12}"$/);
    expect(by(2)['remarks']).toBe('Salary');
    expect(by(2)['sent_at']).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \+05:30$/);
    expect(by(3)['status']).toBe('approved');
    expect(by(4)['status']).toBe('invalid');
    expect(by(4)['reason']).toMatch(/formula/i);
    // A spreadsheet must not run these: the cell starts with an apostrophe.
    expect(by(4)['beneficiary_name']!.startsWith("'=")).toBe(true);
    expect(by(7)['beneficiary_name']).toBe("'@Ravi Kumar");
    expect(by(7)['status']).toBe('approved');
    expect(by(5)['status']).toBe('invalid');
    expect(by(5)['reason']).toMatch(/ifsc/i);
    expect(by(6)['status']).toBe('rejected');
    // A rejected payout's charge is refunded: 0, and the reason is in words.
    expect(by(6)['charge']).toBe('0.00');
    expect(by(6)['reason']).toMatch(/^Rejected by the bank: .+ The charge was refunded/);
    // No other cell starts with a formula character unescaped; the only = cells are digits kept as text.
    for (const r of rows) {
      for (const [k, v] of Object.entries(r)) {
        if (k === 'utr' || k === 'order_id' || k === 'reference') expect(v).toMatch(/^(="[0-9A-Za-z]+"|[^=+@\t\r-].*)?$/);
        else expect(v).not.toMatch(/^[=+@\t\r]/);
      }
    }
  });

  it('writes a JSON report with the summary and every row', () => {
    const text = readFileSync(reportJson(), 'utf8');
    for (const acc of ACCOUNTS) expect(text).not.toContain(acc);
    const j = JSON.parse(text) as {
      summary: { rows: number; counts: Record<string, number>; totals: Record<string, { amount: string }>; debited: string };
      rows: { row: number; account: string; utr: string | null }[];
    };
    expect(j.summary.rows).toBe(6);
    expect(j.summary.counts).toMatchObject({ approved: 3, rejected: 1, invalid: 2, failed: 0, pending: 0 });
    expect(j.summary.totals['approved']!.amount).toBe('3620.50');
    expect(j.rows.map((r) => r.row)).toEqual([2, 3, 4, 5, 6, 7]);
    expect(j.rows[0]!.account).toBe('XXXXXXXX9012');
    expect(j.rows[0]!.utr).toMatch(/^\d{10,12}$/);
    expect(statSync(path.join(d.reportDir, 'payroll.html')).mode & 0o777).toBe(0o600);
  });

  it('the JSON summary of the run that finished the batch records finished_at', () => {
    const j = JSON.parse(readFileSync(reportJson(), 'utf8')) as { summary: { started_at: string | null; finished_at: string | null } };
    expect(j.summary.started_at).toMatch(/\+05:30$/);
    expect(j.summary.finished_at).toMatch(/\+05:30$/);
  });

  it('the same command again: exit 1, sends nothing, same counts', async () => {
    const before = s.requestCount();
    const ledgerBefore = s.ledger().length;
    const again = await runCli(['run', csv, ...d.dirArgs, ...FAST], { env, cwd: d.work });
    expect(again.code, show(again)).toBe(1);
    expect(s.requestCount()).toBe(before);
    expect(s.ledger()).toHaveLength(ledgerBefore);
    for (const e of s.ledger()) expect(s.executions(e.orderId)).toBe(1);
    expect(again.stdout).toMatch(/already read/);
    expect(again.stdout).toContain(reportCsv());
    const j = JSON.parse(readFileSync(reportJson(), 'utf8')) as { summary: { counts: Record<string, number> } };
    expect(j.summary.counts).toMatchObject({ approved: 3, rejected: 1, invalid: 2, failed: 0, pending: 0 });
    expect(readReport(reportCsv())).toHaveLength(6);
  });

  it('run --json prints a parseable result', async () => {
    const before = s.requestCount();
    const r = await runCli(['run', csv, ...d.dirArgs, ...FAST, '--json'], { env, cwd: d.work });
    expect(r.code, show(r)).toBe(1);
    expect(s.requestCount()).toBe(before);
    const j = JSON.parse(r.stdout) as { batch: string; exit_code: number; summary: { counts: Record<string, number> }; report: { csv: string } };
    expect(j.batch).toBe('payroll');
    expect(j.exit_code).toBe(1);
    expect(j.summary.counts).toMatchObject({ approved: 3, rejected: 1, invalid: 2 });
    expect(j.report.csv).toBe(reportCsv());
  });

  it('payout-status <order_id> shows Approved with the UTR', async () => {
    const row = readReport(reportCsv()).find((r) => r['row'] === '2')!;
    const entry = s.ledger().find((e) => e.orderId === row['order_id'])!;
    expect(entry.status).toBe('Approved');
    const r = await runCli(['payout-status', row['order_id']!], { env });
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain(row['order_id']!);
    expect(r.stdout).toMatch(/Approved/);
    expect(r.stdout).toContain(entry.transactionId!);
    expect(row['utr']).toBe(`="${entry.transactionId}"`);
    const j = await runCli(['payout-status', row['order_id']!, '--json'], { env });
    expect(j.code, show(j)).toBe(0);
    expect(JSON.parse(j.stdout)).toMatchObject({ order_id: row['order_id'], status: 'Approved', transaction_id: entry.transactionId, amount: '1500.50' });
  });

  it('status <batch> shows the counts from the database without calling the API', async () => {
    const before = s.requestCount();
    const r = await runCli(['status', 'payroll', '--data-dir', d.dataDir, '--json'], { cwd: d.work });
    expect(r.code, show(r)).toBe(0);
    const j = JSON.parse(r.stdout) as { rows: number; counts: Record<string, number> };
    expect(j.rows).toBe(6);
    expect(j.counts).toMatchObject({ approved: 3, rejected: 1, invalid: 2 });
    const h = await runCli(['status', 'payroll', '--data-dir', d.dataDir], { cwd: d.work });
    expect(h.code, show(h)).toBe(0);
    expect(h.stdout).toMatch(/payroll/);
    expect(h.stdout).toMatch(/approved\s+3/);
    expect(h.stdout).toMatch(/rejected\s+1/);
    expect(h.stdout).toMatch(/invalid\s+2/);
    expect(s.requestCount()).toBe(before);
  });

  it('status without a name lists the batches; status of an unknown batch exits 2', async () => {
    const r = await runCli(['status', '--data-dir', d.dataDir], { cwd: d.work });
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/^payroll\b.*finished/m);
    const none = await runCli(['status', 'nope', '--data-dir', d.dataDir], { cwd: d.work });
    expect(none.code, show(none)).toBe(2);
    expect(none.stderr).toMatch(/nope/);
  });

  it('report <batch> writes the report files again', async () => {
    const other = path.join(d.work, 'again');
    const r = await runCli(['report', 'payroll', '--data-dir', d.dataDir, '--report-dir', other], { cwd: d.work });
    expect(r.code, show(r)).toBe(0);
    const file = path.join(other, 'payroll.csv');
    expect(r.stdout).toContain(file);
    expect(r.stdout).toContain(path.join(other, 'payroll.html'));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).toBe(readFileSync(reportCsv(), 'utf8'));
    expect(readdirSync(other).sort()).toEqual(['payroll.csv', 'payroll.html', 'payroll.json', 'payroll.xlsx']);
    const missing = await runCli(['report', 'nope', '--data-dir', d.dataDir, '--report-dir', other], { cwd: d.work });
    expect(missing.code, show(missing)).toBe(2);
  });

  it('report <batch> --format html writes only that report; --time-zone changes the times; a bad zone exits 2', async () => {
    const one = path.join(d.work, 'one');
    const r = await runCli(['report', 'payroll', '--format', 'html', '--data-dir', d.dataDir, '--report-dir', one, '--json'], { cwd: d.work });
    expect(r.code, show(r)).toBe(0);
    expect(readdirSync(one)).toEqual(['payroll.html']);
    const j = JSON.parse(r.stdout) as { files: Record<string, string>; summary: { counts: Record<string, number> } };
    expect(j.files).toEqual({ html: path.join(one, 'payroll.html') });
    expect(j.summary.counts).toMatchObject({ approved: 3, rejected: 1, invalid: 2 });
    const utc = await runCli(['report', 'payroll', '--format', 'csv', '--time-zone', 'UTC', '--data-dir', d.dataDir, '--report-dir', one], { cwd: d.work });
    expect(utc.code, show(utc)).toBe(0);
    expect(readReport(path.join(one, 'payroll.csv'))[0]!['sent_at']).toMatch(/ \+00:00$/);
    const bad = await runCli(['report', 'payroll', '--time-zone', 'Mars/Base', '--data-dir', d.dataDir, '--report-dir', one], { cwd: d.work });
    expect(bad.code, show(bad)).toBe(2);
    expect(bad.stderr).toMatch(/time zone/);
  });

  it('report <batch> --fixable writes the invalid and bank-rejected rows in the input\'s columns with a reason, ready for --revise', async () => {
    const fix = path.join(d.work, 'fix');
    const r = await runCli(['report', 'payroll', '--fixable', '--data-dir', d.dataDir, '--report-dir', fix], { cwd: d.work });
    expect(r.code, show(r)).toBe(0);
    const file = path.join(fix, 'payroll.corrections.csv');
    expect(r.stdout).toContain(file);
    expect(r.stdout).toContain(`payouts run ${file} --batch payroll --revise`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const rows = readReport(file);
    // The two invalid rows and the one the bank rejected (a corrected account is a new payout).
    expect(rows).toHaveLength(3);
    expect(rows.filter((x) => /^Rejected by the bank/.test(x['reason'] ?? ''))).toHaveLength(1);
    // The input's own columns (here the API's names, so the same either way: the file's header once
    // ingest keeps it, the canonical fallback before), then the reason.
    const cols = Object.keys(rows[0]!);
    expect(cols.slice(0, 10)).toEqual(HEADER.split(','));
    expect(cols.at(-1)).toBe('reason');
    const formula = rows.find((x) => x['beneficiary_acc_no'] === '334455667788')!;
    expect(formula['beneficiary_name']!.startsWith(`'=HYPERLINK`)).toBe(true);
    const bad = rows.find((x) => x['ifsc'] === 'SBIN060589')!;
    expect(bad['beneficiary_name']).toBe('Chitra Das');
    expect(bad['beneficiary_acc_no']).toBe('445566778899');
    expect(bad['reason']).toMatch(/ifsc/i);
  });
});

describe('payouts run: outcomes', () => {
  it('all rows valid and approved: exit 0; without a terminal it pays only with --yes', async () => {
    const s = await sb();
    const d = scenario();
    const csv = writeCsv(d.work, 'ok.csv', ALL_VALID);
    // Without --yes and without a terminal (cron, CI, a pipe): nobody can say yes, so nothing is sent (exit 3), nothing hangs.
    const refused = await runCli(['run', csv, ...d.dirArgs, ...FAST.filter((a) => a !== '--yes')], { env: apiEnv(s), cwd: d.work });
    expect(refused.code, show(refused)).toBe(3);
    expect(refused.stdout + refused.stderr).toMatch(/--yes/);
    expect(s.ledger()).toHaveLength(0);
    const r = await runCli(['run', csv, ...d.dirArgs, ...FAST], { env: apiEnv(s), cwd: d.work });
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/all 2 rows paid/);
    expect(s.ledger().map((e) => e.status)).toEqual(['Approved', 'Approved']);
    expect(existsSync(path.join(d.reportDir, 'ok.csv'))).toBe(true);
  });

  it('short balance: exit 3 with total, balance and shortfall; nothing sent', async () => {
    const s = await sb({ balancePaise: 1000_00n });
    const d = scenario();
    const csv = writeCsv(d.work, 'short.csv', ALL_VALID);
    const r = await runCli(['run', csv, ...d.dirArgs, ...FAST], { env: apiEnv(s), cwd: d.work });
    expect(r.code, show(r)).toBe(3);
    const all = r.stdout + r.stderr;
    expect(all).toMatch(/3,500\.50/); // needed
    expect(all).toMatch(/1,000\.00/); // balance
    expect(all).toMatch(/2,500\.50/); // shortfall
    expect(s.ledger()).toHaveLength(0);
    expect(s.balancePaise()).toBe(1000_00n);
  });

  it('--dry-run: validation and balance only, nothing sent', async () => {
    const s = await sb();
    const d = scenario();
    const csv = writeCsv(d.work, 'dry.csv', ALL_VALID);
    const r = await runCli(['run', csv, ...d.dirArgs, ...FAST, '--dry-run'], { env: apiEnv(s), cwd: d.work });
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/dry run/i);
    expect(r.stdout).toMatch(/2 payouts/);
    expect(s.ledger()).toHaveLength(0);
  });

  it('poll timeout: exit 4 naming `payouts resume <batch>`; resume after settlement finishes, nobody paid twice', async () => {
    const s = await sb({ settleMs: 60_000 });
    const d = scenario();
    const csv = writeCsv(d.work, 'slow.csv', MIXED);
    const r = await runCli(['run', csv, ...d.dirArgs, ...FAST, '--poll-timeout', '1s'], { env: apiEnv(s), cwd: d.work });
    expect(r.code, show(r)).toBe(4);
    expect(r.stdout + r.stderr).toContain('payouts resume slow');
    expect(s.ledger()).toHaveLength(4);
    expect(s.ledger().every((e) => e.status === 'Pending')).toBe(true);
    const pending = JSON.parse(readFileSync(path.join(d.reportDir, 'slow.json'), 'utf8')) as {
      summary: { counts: Record<string, number>; debited: string; awaiting: { count: number } };
    };
    expect(pending.summary.counts).toMatchObject({ pending: 4, invalid: 2 });
    // Sent and awaiting the bank: the money has left the wallet, and the summary says so.
    expect(pending.summary.awaiting.count).toBe(4);
    expect(pending.summary.debited).not.toBe('0.00');

    s.settleAll();
    const res = await runCli(['resume', 'slow', ...d.dirArgs, ...FAST], {
      env: apiEnv(s),
      cwd: d.work,
    });
    expect([0, 1], show(res)).toContain(res.code);
    expect(res.code).toBe(1); // the invalid and rejected rows
    expect(s.ledger()).toHaveLength(4);
    for (const e of s.ledger()) expect(s.executions(e.orderId)).toBeLessThanOrEqual(1);
    const done = JSON.parse(readFileSync(path.join(d.reportDir, 'slow.json'), 'utf8')) as { summary: { counts: Record<string, number>; finished_at: string | null } };
    expect(done.summary.counts).toMatchObject({ approved: 3, rejected: 1, invalid: 2, pending: 0 });
    expect(res.stdout).toMatch(/finished: 3 paid/);
  });

  it('resume of a batch that does not exist: exit 2', async () => {
    const s = await sb();
    const d = scenario();
    const r = await runCli(['resume', 'ghost', ...d.dirArgs], { env: apiEnv(s), cwd: d.work });
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toMatch(/ghost/);
    expect(s.requestCount()).toBe(0);
  });
});

describe('payouts validate and bad input', () => {
  it('lists every row error naming row, field and fix; exit 1; nothing stored or sent', async () => {
    const work = tmpDir('payouts-cli-work-');
    const data = tmpDir('payouts-cli-data-');
    const csv = writeCsv(work, 'v.csv', MIXED);
    // validate has no --data-dir (it opens no database); the data directory the environment names stays empty.
    const r = await runCli(['validate', csv, '--user-id', 'M1'], { cwd: work, env: { PAYOUTS_DATA_DIR: data, XDG_DATA_HOME: data } });
    expect(r.code, show(r)).toBe(1);
    const errs = r.stdout.split('\n').filter((l) => /error/.test(l));
    expect(errs).toHaveLength(2);
    expect(errs.find((l) => l.startsWith('row 4:'))).toMatch(/beneficiary_name.*formula.*re-export/);
    expect(errs.find((l) => l.startsWith('row 5:'))).toMatch(/ifsc.*SBIN060589.*check/);
    expect(r.stdout).toMatch(/6 rows: 4 valid.*2 invalid/);
    for (const acc of ACCOUNTS) expect(r.stdout + r.stderr).not.toContain(acc);
    expect(readdirSync(data)).toEqual([]);
    expect(readdirSync(work)).toEqual(['v.csv']);
  });

  it('validate --json gives the same problems', async () => {
    const work = tmpDir('payouts-cli-work-');
    const csv = writeCsv(work, 'v.csv', MIXED);
    const r = await runCli(['validate', csv, '--user-id', 'M1', '--json'], { cwd: work });
    expect(r.code, show(r)).toBe(1);
    const j = JSON.parse(r.stdout) as { rows: number; valid: number; invalid: number; problems: { row: number; errors: string[] }[] };
    expect(j).toMatchObject({ rows: 6, valid: 4, invalid: 2 });
    expect(j.problems.filter((p) => p.errors.length).map((p) => p.row)).toEqual([4, 5]);
  });

  it('a file with every row valid: exit 0', async () => {
    const work = tmpDir('payouts-cli-work-');
    const csv = writeCsv(work, 'v.csv', ALL_VALID);
    const r = await runCli(['validate', csv, '--user-id', 'M1'], { cwd: work });
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/2 rows: 2 valid.*0 invalid/);
  });

  it('a missing file: exit 2 with a clear message (validate and run)', async () => {
    const work = tmpDir('payouts-cli-work-');
    const v = await runCli(['validate', 'missing.csv'], { cwd: work });
    expect(v.code, show(v)).toBe(2);
    expect(v.stderr).toMatch(/not found.*missing\.csv|missing\.csv.*not found/i);
    expect(v.stderr).not.toMatch(STACK);

    const s = await sb();
    const d = scenario();
    const r = await runCli(['run', 'missing.csv', ...d.dirArgs, ...FAST], { env: apiEnv(s), cwd: d.work });
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toMatch(/missing\.csv/);
    expect(r.stderr).not.toMatch(STACK);
    expect(s.ledger()).toHaveLength(0);
  });

  it('a file missing a required column: exit 2 naming the column (validate and run)', async () => {
    const work = tmpDir('payouts-cli-work-');
    const header = HEADER.split(',').filter((h) => h !== 'ifsc');
    const rows = ALL_VALID.slice(1).map((l) => {
      const cells = parseCsv(l)[0]!;
      cells.splice(7, 1);
      return cells.map((c) => (/[,"]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c)).join(',');
    });
    const csv = writeCsv(work, 'noifsc.csv', [header.join(','), ...rows]);
    const v = await runCli(['validate', csv, '--user-id', 'M1'], { cwd: work });
    expect(v.code, show(v)).toBe(2);
    expect(v.stderr).toMatch(/column.*\bifsc\b/i);
    expect(v.stderr).not.toMatch(STACK);

    const s = await sb();
    const d = scenario();
    const r = await runCli(['run', csv, ...d.dirArgs, ...FAST], { env: apiEnv(s), cwd: d.work });
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toMatch(/column.*\bifsc\b/i);
    expect(s.ledger()).toHaveLength(0);
  });
});

describe('payouts demo', () => {
  it('runs end to end in a temp dir, exit 0, prints where the report is, and the report exists', async () => {
    const work = tmpDir('payouts-cli-demo-');
    const data = tmpDir('payouts-cli-data-');
    cpSync(template, data, { recursive: true });
    const reports = path.join(tmpDir('payouts-cli-reports-'), 'out');
    const r = await runCli(['demo', '--data-dir', data, '--report-dir', reports], { cwd: work, timeoutMs: 90_000 });
    expect(r.code, show(r)).toBe(0);
    const m = /Report: (\S+\.csv), (\S+\.json) and (\S+\.html)/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    const [, csvPath, jsonPath, htmlPath] = m!;
    expect(path.dirname(csvPath!)).toBe(reports);
    expect(existsSync(csvPath!)).toBe(true);
    expect(existsSync(jsonPath!)).toBe(true);
    expect(existsSync(htmlPath!)).toBe(true);
    expect(statSync(csvPath!).mode & 0o777).toBe(0o600);
    const rows = readReport(csvPath!);
    expect(rows).toHaveLength(50);
    const j = JSON.parse(readFileSync(jsonPath!, 'utf8')) as { summary: { counts: Record<string, number> }; rows: unknown[] };
    expect(j.summary.counts).toMatchObject({ invalid: 4, rejected: 3, pending: 0 });
    expect(j.rows).toHaveLength(50);
    // Nothing was written into the working directory (the database and reports went where they were told).
    expect(readdirSync(work)).toEqual([]);
    // The README's main command works again and again: the second demo pays the sample once more, in the
    // same database, without being refused as a duplicate upload or warned about as repeats.
    const again = await runCli(['demo', '--data-dir', data, '--report-dir', reports], { cwd: work, timeoutMs: 90_000 });
    expect(again.code, show(again)).toBe(0);
    expect(again.stdout + again.stderr).not.toMatch(/already run|WARNING/);
    expect(again.stdout).toMatch(/finished: 43 paid, 7 not paid/);
  }, 180_000);
});

describe('logs', () => {
  it('--log-level debug: JSON log lines never carry the keys or a full account number', async () => {
    const s = await sb();
    const d = scenario();
    const csv = writeCsv(d.work, 'logs.csv', MIXED);
    const r = await runCli(['run', csv, ...d.dirArgs, ...FAST, '--log-level', 'debug'], { env: apiEnv(s), cwd: d.work });
    expect(r.code, show(r)).toBe(1);
    const jsonLines = r.stderr.split('\n').filter(isJsonLine);
    // There are debug logs to check (the test would be empty otherwise).
    expect(jsonLines.length).toBeGreaterThan(5);
    for (const l of jsonLines) {
      expect(l).not.toContain(KEYS.secretKey);
      expect(l).not.toContain(KEYS.accessKey);
      for (const acc of ACCOUNTS) expect(l).not.toContain(acc);
    }
    // And neither does anything else the command printed.
    for (const acc of ACCOUNTS) expect(r.stdout + r.stderr).not.toContain(acc);
    expect(r.stdout + r.stderr).not.toContain(KEYS.secretKey);
  });

  it('--verbose on a failing API call does not leak the keys', async () => {
    const s = await sb();
    const wrong = { accessKey: 'wrong-access-key-xyz', secretKey: 'wrong-secret-key-abcdef012345' };
    const r = await runCli(['balance', '--verbose'], { env: apiEnv(s, wrong) });
    expect(r.code, show(r)).toBe(6);
    expect(r.stdout + r.stderr).not.toContain(wrong.secretKey);
    expect(r.stdout + r.stderr).not.toContain(wrong.accessKey);
  });
});
