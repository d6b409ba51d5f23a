/**
 * The command as operations run it (issue 9): one exit code per meaning, each tested through the built
 * command; errors as JSON in --json mode; SIGTERM (what `timeout`, systemd and `kill` send) to the real
 * command; `status --follow` from another terminal on both databases; a per-user default data directory;
 * help with examples, exit codes, and options only where they apply.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN, runCli, testDataHome, type CliResult } from './helpers/cli.js';
import { BACKENDS, freshDb, type TestDb } from './helpers/db.js';
import { KEYS, sandbox, tmpDir as makeTmpDir } from './helpers/env.js';
import { waitFor } from './helpers/proc.js';
import { isAlive, PROCESS_ID } from '../src/proc.js';
import type { Sandbox } from '../src/sandbox/server.js';

const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount,remarks';

function payroll(file: string, n: number, invalid = 0, accountBase = 7000000000): string {
  const lines = [HEADER];
  for (let i = 0; i < n; i++) lines.push(`Payee ${i},p${i}@example.com,9876500001,"${i} MG Road",IMPS,${accountBase + i}1,SBI,SBIN0000691,${100 + i}.50,Salary`);
  for (let i = 0; i < invalid; i++) lines.push(`Bad ${i},b${i}@example.com,9876500000,"x",IMPS,${6000000000 + i}1,SBI,SBIN060589,10,Salary`);
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

const made: string[] = [];
function tmpDir(prefix: string): string {
  const d = makeTmpDir(prefix);
  made.push(d);
  return d;
}
const sandboxes: Sandbox[] = [];
async function sb(over: Parameters<typeof sandbox>[0] = {}): Promise<Sandbox> {
  const s = await sandbox(over);
  sandboxes.push(s);
  return s;
}
const children: ChildProcess[] = [];
function apiEnv(s: { url: string }, keys = KEYS): Record<string, string> {
  return { ALLIANCE_BASE_URL: s.url, ALLIANCE_ACCESS_KEY: keys.accessKey, ALLIANCE_SECRET_KEY: keys.secretKey };
}
function show(r: CliResult): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}
const STACK = /^\s+at\s.+[(:]/m;

let template: string;
function scenario() {
  const dataDir = tmpDir('payouts-ops-data-');
  cpSync(template, dataDir, { recursive: true });
  const reportDir = path.join(tmpDir('payouts-ops-reports-'), 'out');
  const work = tmpDir('payouts-ops-work-');
  return { dataDir, reportDir, work, dirs: ['--data-dir', dataDir, '--report-dir', reportDir] };
}
const FAST = ['--user-id', 'M1', '--poll-interval', '100ms', '--ambiguous-grace', '500ms'];

/** The built command in the background, as cron or systemd would start it (no terminal). */
function background(args: string[], env: Record<string, string>, cwd: string): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', XDG_DATA_HOME: testDataHome(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done };
}

beforeAll(async () => {
  template = tmpDir('payouts-ops-template-');
  const m = await runCli(['migrate', '--data-dir', template]);
  expect(m.code, show(m)).toBe(0);
}, 120_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const s of sandboxes) await s.close();
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

describe('exit codes, one meaning each', { timeout: 120_000 }, () => {
  it('0: every row paid', async () => {
    const s = await sb();
    const d = scenario();
    const r = await runCli(['run', payroll(path.join(d.work, 'ok.csv'), 2), ...d.dirs, ...FAST, '--rate', '50', '--yes'], { env: apiEnv(s), cwd: d.work });
    expect(r.code, show(r)).toBe(0);
  });

  it('1: finished, with rows not paid', async () => {
    const s = await sb();
    const d = scenario();
    const r = await runCli(['run', payroll(path.join(d.work, 'some.csv'), 2, 1), ...d.dirs, ...FAST, '--rate', '50', '--yes'], { env: apiEnv(s), cwd: d.work });
    expect(r.code, show(r)).toBe(1);
    expect(r.stdout).toMatch(/finished: 2 paid, 1 not paid \(1 invalid\)/);
  });

  it('2: usage, configuration or input (unknown flag, malformed base URL, a flag given twice, no such batch); --json errors are JSON objects', async () => {
    const flag = await runCli(['status', '--bogus']);
    expect(flag.code, show(flag)).toBe(2);
    const url = await runCli(['balance'], { env: { ALLIANCE_BASE_URL: 'not a url', ALLIANCE_ACCESS_KEY: 'a', ALLIANCE_SECRET_KEY: 'b' } });
    expect(url.code, show(url)).toBe(2);
    expect(url.stderr).toMatch(/ALLIANCE_BASE_URL .*"not a url" is not an http\(s\) URL/);
    // A token in a query of the base URL: a setting to fix (exit 2), never echoed.
    const query = await runCli(['balance'], { env: { ALLIANCE_BASE_URL: 'http://u:hunter2@127.0.0.1:9/?token=QTOKEN123', ALLIANCE_ACCESS_KEY: 'a', ALLIANCE_SECRET_KEY: 'b' } });
    expect(query.code, show(query)).toBe(2);
    expect(query.stderr).toMatch(/without a query or fragment \(http:\/\/127\.0\.0\.1:9\/…\)/);
    expect(query.stderr + query.stdout).not.toMatch(/QTOKEN123|hunter2/);
    expect(url.stderr).not.toMatch(STACK);
    const twice = await runCli(['balance', '--timeout', '1s', '--timeout', '2s'], { env: { ALLIANCE_BASE_URL: 'http://127.0.0.1:9', ALLIANCE_ACCESS_KEY: 'a', ALLIANCE_SECRET_KEY: 'b' } });
    expect(twice.code, show(twice)).toBe(2);
    expect(twice.stderr).toMatch(/--timeout was given more than once/);
    const d = scenario();
    const none = await runCli(['status', 'nope', '--data-dir', d.dataDir, '--json']);
    expect(none.code, show(none)).toBe(2);
    const j = JSON.parse(none.stdout) as { error: { code: number; message: string } };
    expect(j.error.code).toBe(2);
    expect(j.error.message).toMatch(/no batch named "nope"/);
    expect(none.stderr).toMatch(/^Database: /m); // --json: which database goes to stderr
  });

  it('3: refused before sending anything (no terminal and no --yes)', async () => {
    const s = await sb();
    const d = scenario();
    const r = await runCli(['run', payroll(path.join(d.work, 'ask.csv'), 2), ...d.dirs, ...FAST, '--json'], { env: apiEnv(s), cwd: d.work });
    expect(r.code, show(r)).toBe(3);
    const j = JSON.parse(r.stdout) as { exit_code: number; error: { code: number; message: string }; summary: { groups: Record<string, { rows: number }> } };
    expect(j.exit_code).toBe(3);
    expect(j.error.message).toMatch(/pass --yes/);
    expect(j.summary.groups['not_sent']!.rows).toBe(2);
    expect(s.ledger()).toHaveLength(0);
  });

  it('4: unfinished (payouts still awaiting the bank at --poll-timeout)', async () => {
    const s = await sb({ settleMs: 60_000 });
    const d = scenario();
    const r = await runCli(['run', payroll(path.join(d.work, 'slow.csv'), 2), ...d.dirs, ...FAST, '--rate', '50', '--yes', '--poll-timeout', '1s'], { env: apiEnv(s), cwd: d.work });
    expect(r.code, show(r)).toBe(4);
    expect(r.stdout).toMatch(/pending\s+2\s+₹202\.00\s+sent, awaiting the bank/);
    expect(r.stdout).toMatch(/Sent: 2 rows, ₹202\.00 \(do not pay these again by hand\)\. Not sent: 0 rows/);
  });

  it('5: another process holds the embedded database (named, with what to do); --json error object', async () => {
    const d = scenario();
    // This test process holds it: a live process on this machine.
    writeFileSync(path.join(d.dataDir, 'lock'), `${PROCESS_ID}\nsince 2026-11-27T00:00:00Z\n`);
    const r = await runCli(['status', '--data-dir', d.dataDir, '--json']);
    expect(r.code, show(r)).toBe(5);
    expect(r.stderr).toMatch(new RegExp(`in use by process ${process.pid}`));
    expect(r.stderr).not.toMatch(STACK);
    expect((JSON.parse(r.stdout) as { error: { code: number } }).error.code).toBe(5);
  });

  it('6: the API unreachable (balance, run) or refusing the credentials', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((r) => closed.close(() => r()));
    const bal = await runCli(['balance', '--timeout', '2s'], { env: apiEnv({ url }) });
    expect(bal.code, show(bal)).toBe(6);
    const d = scenario();
    const run = await runCli(['run', payroll(path.join(d.work, 'down.csv'), 2), ...d.dirs, ...FAST, '--yes', '--timeout', '2s'], { env: apiEnv({ url }), cwd: d.work });
    expect(run.code, show(run)).toBe(6);
    expect(run.stderr).toMatch(/nothing sent: the API did not answer the balance check/);
    const s = await sb();
    const keys = await runCli(['balance', '--json'], { env: apiEnv(s, { accessKey: KEYS.accessKey, secretKey: 'wrong-secret-000000' }) });
    expect(keys.code, show(keys)).toBe(6);
    expect((JSON.parse(keys.stdout) as { error: { code: number; message: string } }).error).toMatchObject({ code: 6 });
  });
});

describe('signals: SIGTERM to the installed command, as `timeout`, systemd and kill send it', { timeout: 180_000 }, () => {
  it('stops sending, finishes what is in flight, writes the report, exits 4, leaves no process and no lock behind', async () => {
    const s = await sb({ settleMs: 120_000 });
    const d = scenario();
    const csv = payroll(path.join(d.work, 'term.csv'), 30);
    const { child, done } = background(['run', csv, ...d.dirs, ...FAST, '--rate', '4', '--concurrency', '1', '--yes'], apiEnv(s), d.work);
    await waitFor('a few payouts sent', () => s.ledger().length >= 3, 60_000);
    child.kill('SIGTERM');
    const r = await done;
    expect(r.code, show(r)).toBe(4);
    expect(r.signal).toBeNull();
    expect(r.stderr).toMatch(/Stopping \(SIGTERM\): no new payouts are sent/);
    const sent = s.ledger().length;
    expect(r.stdout).toMatch(new RegExp(`Sent: ${sent} rows, ₹[\\d,.]+ \\(do not pay these again by hand\\)\\. Not sent: ${30 - sent} rows`));
    const report = JSON.parse(readFileSync(path.join(d.reportDir, 'term.json'), 'utf8')) as { summary: { counts: Record<string, number> } };
    expect(report.summary.counts).toMatchObject({ pending: sent, not_sent: 30 - sent, sending: 0 });
    // No orphan: the process is gone (it starts no children), and the database is free for the next run.
    expect(isAlive(child.pid!)).toBe(false);
    expect(existsSync(path.join(d.dataDir, 'lock'))).toBe(false);
    // The rest is sent (the sandbox settles them only when told), then followed to the end.
    const sendRest = await runCli(['resume', 'term', ...d.dirs, ...FAST, '--rate', '50', '--yes', '--poll-timeout', '1s'], { env: apiEnv(s), cwd: d.work });
    expect(sendRest.code, show(sendRest)).toBe(4);
    s.settleAll();
    const again = await runCli(['resume', 'term', ...d.dirs, ...FAST, '--rate', '50', '--yes'], { env: apiEnv(s), cwd: d.work });
    expect(again.code, show(again)).toBe(0);
    for (const e of s.ledger()) expect(s.executions(e.orderId)).toBe(1);
    expect(s.ledger()).toHaveLength(30);
  });

  it('a second SIGTERM quits at once (exit 4); resume asks about what was in flight and pays nobody twice', async () => {
    // Every request takes 4 s: the first signal would wait for the one in flight.
    const s = await sb({ settleMs: 50, faults: { latencyMs: 4000 } });
    const d = scenario();
    const csv = payroll(path.join(d.work, 'twice.csv'), 5);
    const { child, done } = background(['run', csv, ...d.dirs, ...FAST, '--rate', '50', '--concurrency', '1', '--yes', '--timeout', '10s'], apiEnv(s), d.work);
    await waitFor('the balance checked and sending started', () => s.requestCount() >= 2, 60_000);
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    child.kill('SIGTERM');
    const r = await done;
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(r.code, show(r)).toBe(4);
    expect(r.stderr).toMatch(/quitting at once/);
    s.setFaults({});
    const again = await runCli(['resume', 'twice', ...d.dirs, ...FAST, '--rate', '50', '--yes'], { env: apiEnv(s), cwd: d.work });
    expect(again.code, show(again)).toBe(0);
    expect(s.ledger()).toHaveLength(5);
    for (const e of s.ledger()) expect(s.executions(e.orderId)).toBe(1);
  });
});

describe('output closed, terminal hung up: a paying run stops as on SIGTERM, never crashes mid-send', { timeout: 180_000 }, () => {
  it('`payouts run … | head -1`: the reader goes away; exit 4, the report written, nothing in flight left unknown; resume pays the rest once', async () => {
    // The balance answers slowly, so that the line after it is certainly written after the reader has gone.
    const s = await sb({ settleMs: 50, faults: { latencyMs: 1500, onlyPaths: ['api/v1/balance'] } });
    const d = scenario();
    const csv = payroll(path.join(d.work, 'piped.csv'), 30);
    const child = spawn(process.execPath, [MAIN, 'run', csv, ...d.dirs, ...FAST, '--rate', '4', '--concurrency', '1', '--yes'], {
      cwd: d.work,
      env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', XDG_DATA_HOME: testDataHome(), ...apiEnv(s) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    // What `head -1` does: read the first lines, then close its end of the pipe.
    child.stdout!.once('data', () => child.stdout!.destroy());
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const [code] = (await new Promise((r) => child.on('close', (c, sig) => r([c, sig])))) as [number | null, string | null];
    expect(code, stderr).toBe(4);
    expect(stderr).toMatch(/Stopping: stdout was closed \(EPIPE: its reader went away\): no new payouts are sent; those in flight finish and the report is written/);
    expect(stderr).not.toMatch(STACK);
    const report = JSON.parse(readFileSync(path.join(d.reportDir, 'piped.json'), 'utf8')) as { summary: { counts: Record<string, number> } };
    expect(report.summary.counts['sending']).toBe(0);
    expect(s.ledger().length).toBeLessThan(30);
    const rest = await runCli(['resume', 'piped', ...d.dirs, ...FAST, '--rate', '50', '--yes'], { env: apiEnv(s), cwd: d.work });
    expect(rest.code, show(rest)).toBe(0);
    expect(s.ledger()).toHaveLength(30);
    for (const e of s.ledger()) expect(s.executions(e.orderId)).toBe(1);
  });

  it('SIGHUP (an ssh session lost) stops like SIGTERM: exit 4, and the second line names the batch to resume', async () => {
    const s = await sb({ settleMs: 120_000 });
    const d = scenario();
    const { child, done } = background(['run', payroll(path.join(d.work, 'hup.csv'), 20), ...d.dirs, ...FAST, '--rate', '4', '--concurrency', '1', '--yes'], apiEnv(s), d.work);
    await waitFor('a payout sent', () => s.ledger().length >= 1, 60_000);
    child.kill('SIGHUP');
    const r = await done;
    expect(r.code, show(r)).toBe(4);
    expect(r.stderr).toMatch(/Stopping \(SIGHUP\): no new payouts are sent/);
    expect(existsSync(path.join(d.reportDir, 'hup.json'))).toBe(true);
  });

  it('read-only commands whose reader goes away end quietly (no stack trace)', async () => {
    const d = scenario();
    // Enough output (a line for every problem of 3,000 rows) that it is still being written when the reader goes.
    const csv = payroll(path.join(d.work, 'many.csv'), 3000, 3000);
    const child = spawn(process.execPath, [MAIN, 'validate', csv, '--user-id', 'M1'], { cwd: d.work, env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', XDG_DATA_HOME: testDataHome() }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    child.stdout!.once('data', () => child.stdout!.destroy());
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const code = await new Promise((r) => child.on('close', (c) => r(c)));
    expect(stderr).not.toMatch(STACK);
    expect(stderr).not.toMatch(/EPIPE/);
    expect(code).toBe(1); // its own verdict: some rows invalid
  });
});

describe('status --follow from another terminal', { timeout: 180_000 }, () => {
  it('embedded database: reads the running process\'s progress file (the run holds the database) and ends with the final counts; plain status works during the run too', async () => {
    const s = await sb({ settleMs: 800 });
    const d = scenario();
    const csv = payroll(path.join(d.work, 'watched.csv'), 20, 1);
    const run = background(['run', csv, ...d.dirs, ...FAST, '--rate', '5', '--yes'], apiEnv(s), d.work);
    const follow = runCli(['status', 'watched', '--follow', '--interval', '300ms', '--progress-interval', '1s', '--data-dir', d.dataDir], { cwd: d.work, timeoutMs: 120_000 });
    await waitFor('some payouts sent', () => s.ledger().length >= 3, 60_000);
    const during = await runCli(['status', 'watched', '--data-dir', d.dataDir], { cwd: d.work });
    expect(during.code, show(during)).toBe(0);
    expect(during.stdout).toMatch(/from the progress file of process \d+ \(run, running\)/);
    expect(during.stdout).toMatch(/not_sent\s+\d+/);
    const f = await follow;
    const r = await run.done;
    expect(r.code, show(r)).toBe(1);
    expect(f.code, show(f)).toBe(0);
    expect(f.stderr).toMatch(/Following batch watched: process \d+ \(run\) holds the embedded database; reading its progress file/);
    const lines = f.stderr.split('\n').filter((l) => l.startsWith('progress watched: '));
    expect(lines.length, f.stderr).toBeGreaterThanOrEqual(2);
    expect(lines.some((l) => /sending, \d+\/20 sent/.test(l))).toBe(true);
    expect(f.stdout).toMatch(/approved\s+20\s+₹2,200\.00\s+paid/);
    expect(f.stdout).toMatch(/invalid\s+1\s+/);
    expect(f.stdout).toMatch(/The run ended \(exit 1\): finished: 20 paid, 1 not paid/);
  });

  it('embedded database held by a run of another batch: says why it cannot watch and what to do, exit 5', async () => {
    const s = await sb({ settleMs: 200 });
    const d = scenario();
    const run = background(['run', payroll(path.join(d.work, 'other.csv'), 12), ...d.dirs, ...FAST, '--rate', '2', '--yes'], apiEnv(s), d.work);
    await waitFor('the run sending', () => s.ledger().length >= 1, 60_000);
    const f = await runCli(['status', 'mine', '--follow', '--interval', '500ms', '--data-dir', d.dataDir], { cwd: d.work });
    expect(f.code, show(f)).toBe(5);
    expect(f.stderr).toMatch(new RegExp(`in use by process ${run.child.pid}`));
    expect(f.stderr).toMatch(/no run of batch "mine" writes progress there/);
    expect(f.stderr).toMatch(/DATABASE_URL/);
    run.child.kill('SIGTERM');
    await run.done;
  });

  it.runIf(BACKENDS.includes('postgres'))('PostgreSQL: reads the database while the run goes on; ends when every row is final', async () => {
    const pg: TestDb = await freshDb('postgres');
    try {
      const s = await sb({ settleMs: 800 });
      const work = tmpDir('payouts-ops-work-');
      const env = { ...apiEnv(s), DATABASE_URL: pg.url! };
      const csv = payroll(path.join(work, 'pgwatch.csv'), 15);
      const run = background(['run', csv, '--report-dir', path.join(work, 'r'), ...FAST, '--rate', '5', '--yes'], env, work);
      await waitFor('some payouts sent', () => s.ledger().length >= 2, 60_000);
      const f = await runCli(['status', 'pgwatch', '--follow', '--interval', '300ms', '--progress-interval', '1s'], { env: { DATABASE_URL: pg.url! }, cwd: work, timeoutMs: 120_000 });
      const r = await run.done;
      expect(r.code, show(r)).toBe(0);
      expect(f.code, show(f)).toBe(0);
      expect(f.stderr).toMatch(/Following batch pgwatch in postgres:\/\//);
      expect(f.stderr.split('\n').filter((l) => /^progress pgwatch: (sending|awaiting the bank)/.test(l)).length).toBeGreaterThanOrEqual(1);
      expect(f.stdout).toMatch(/approved\s+15\s+/);
      expect(f.stdout).toMatch(/Every row of batch pgwatch is final/);
    } finally {
      await pg.close();
    }
  });
});

describe('the default data directory', { timeout: 120_000 }, () => {
  it('is per user, the same from any working directory, and printed; an old ./.payouts is pointed out, never used silently', async () => {
    const s = await sb();
    const xdg = tmpDir('payouts-ops-xdg-');
    mkdirSync(path.join(xdg, 'alliance-payouts'), { recursive: true });
    cpSync(path.join(template, 'pgdata'), path.join(xdg, 'alliance-payouts', 'pgdata'), { recursive: true });
    const a = tmpDir('payouts-ops-cwd-a-');
    const b = tmpDir('payouts-ops-cwd-b-');
    const env = { ...apiEnv(s), XDG_DATA_HOME: xdg };
    const run = await runCli(['run', payroll(path.join(a, 'here.csv'), 2), ...FAST, '--rate', '50', '--yes', '--report-dir', path.join(a, 'r')], { env, cwd: a });
    expect(run.code, show(run)).toBe(0);
    const where = path.join(xdg, 'alliance-payouts', 'pgdata');
    expect(run.stdout).toContain(`Database: PGlite at ${where} (the default; --data-dir or PAYOUTS_DATA_DIR to change)`);
    // A scheduled run starts elsewhere: the same database.
    mkdirSync(path.join(b, '.payouts', 'pgdata'), { recursive: true });
    const st = await runCli(['status'], { env: { XDG_DATA_HOME: xdg }, cwd: b });
    expect(st.code, show(st)).toBe(0);
    expect(st.stdout).toMatch(/^here\b.*finished/m);
    expect(st.stdout).toContain(`Database: PGlite at ${where}`);
    expect(st.stderr).toMatch(/\.payouts holds a database from an earlier version .* --data-dir/);
    expect(readdirSync(path.join(b, '.payouts', 'pgdata'))).toEqual([]);
  });
});

describe('help', () => {
  const API_ONLY = ['--secret-key', '--access-key', '--base-url', '--timeout'];
  it('every command has examples; signing options only on commands that call the API; exit codes in the epilogue', async () => {
    const top = await runCli(['--help']);
    expect(top.stdout).toMatch(/Exit codes:\n\s+0 {2}every row paid[\s\S]*\n\s+6 {2}the API is unreachable/);
    expect(top.stdout).toMatch(/never `npx`/);
    for (const c of API_ONLY) expect(top.stdout).not.toContain(c);
    const commands = [...top.stdout.matchAll(/^\s+payouts ([a-z][a-z-]*)/gm)].map((m) => m[1]!);
    expect(commands).toEqual(expect.arrayContaining(['run', 'resume', 'approve', 'cancel', 'status', 'validate']));
    const api = new Set(['run', 'resume', 'reconcile', 'cancel', 'balance', 'payout-status', 'payin-status', 'doctor', 'webhooks', 'watch', 'console']);
    const helps = await Promise.all(commands.map(async (c) => ({ c, r: await runCli([c, '--help']) })));
    for (const { c, r } of helps) {
      expect(r.code, c).toBe(0);
      expect(r.stdout, c).toMatch(/Examples:\n\s+(\S+=\S+ )?payouts /);
      expect(r.stdout, c).not.toMatch(/^\s+--[a-z-]+\s+\[/m); // every option has a description
      for (const o of API_ONLY) {
        // The sandbox takes the keys it accepts, not the client's signing options.
        if (c === 'sandbox' && (o === '--access-key' || o === '--secret-key')) continue;
        if (api.has(c)) expect(r.stdout, `${c} ${o}`).toContain(o);
        else expect(r.stdout, `${c} ${o}`).not.toContain(o);
      }
    }
    const run = helps.find((h) => h.c === 'run')!.r.stdout;
    expect(run).toMatch(/--timeout\s+Per-request timeout with its unit, e\.g\. 30s/);
    expect(run).toMatch(/Exit codes:/);
    expect(helps.find((h) => h.c === 'validate')!.r.stdout).not.toContain('--data-dir');
  });
});

describe('dry runs, corrected copies and control totals', { timeout: 120_000 }, () => {
  it('a dry run stores nothing, lists the invalid rows, and says what a real run would send', async () => {
    const s = await sb();
    const d = scenario();
    const csv = payroll(path.join(d.work, 'dry.csv'), 3, 1);
    const dry = await runCli(['run', csv, ...d.dirs, ...FAST], { env: apiEnv(s), cwd: d.work });
    expect(dry.code, show(dry)).toBe(3); // no --yes: nothing would be sent without one; but first:
    // The same file under another name would be refused as a duplicate upload (its own tests); allowed here.
    const r = await runCli(['run', csv, ...d.dirs, ...FAST, '--batch', 'dry2', '--dry-run', '--allow-duplicate-file'], { env: apiEnv(s), cwd: d.work });
    expect(r.code, show(r)).toBe(1); // a real run would leave the invalid row unpaid
    expect(r.stdout).toMatch(/Batch dry2: 4 rows read \(dry run: nothing stored\), 1 invalid/);
    expect(r.stdout).toMatch(/row 5: error: ifsc "SBIN060589"/);
    expect(r.stdout).toMatch(/A real run would send 3 payouts of ₹304\.50:\n\s+IMPS\s+3 payouts\s+₹304\.50/);
    expect(s.ledger()).toHaveLength(0);
    const st = await runCli(['status', 'dry2', '--data-dir', d.dataDir]);
    expect(st.code, show(st)).toBe(2); // never stored
    const list = await runCli(['status', '--data-dir', d.dataDir]);
    expect(list.stdout).not.toMatch(/dry2/);
  });

  it('--revise --dry-run previews a corrected copy: kept, new, accepted; --expect-rows refuses a file cut short (exit 2)', async () => {
    const s = await sb();
    const d = scenario();
    const v1 = payroll(path.join(d.work, 'v1.csv'), 3);
    const paid = await runCli(['run', v1, '--batch', 'nov', ...d.dirs, ...FAST, '--rate', '50', '--yes'], { env: apiEnv(s), cwd: d.work });
    expect(paid.code, show(paid)).toBe(0);
    // The corrected copy: row 3's amount changed (it was paid), two new payees.
    const lines = readFileSync(v1, 'utf8').trim().split('\n');
    lines[3] = lines[3]!.replace(/,102\.50,/, ',150.00,');
    const extra = readFileSync(payroll(path.join(d.work, 'extra.csv'), 2, 0, 8000000000), 'utf8').trim().split('\n').slice(1);
    const v2 = path.join(d.work, 'v2.csv');
    writeFileSync(v2, [...lines, ...extra].join('\n') + '\n');
    const conflict = await runCli(['run', v2, '--batch', 'nov', ...d.dirs, ...FAST, '--revise', '--dry-run'], { env: apiEnv(s), cwd: d.work });
    expect(conflict.code, show(conflict)).toBe(3);
    expect(conflict.stderr).toMatch(/row 4 .*₹102\.50 -> ₹150\.00/);
    const preview = await runCli(['run', v2, '--batch', 'nov', ...d.dirs, ...FAST, '--revise', '--dry-run', '--accept-change', '4'], { env: apiEnv(s), cwd: d.work });
    expect(preview.code, show(preview)).toBe(0);
    expect(preview.stdout).toMatch(/read as a corrected copy \(it would be revision 2; dry run: nothing stored\)/);
    expect(preview.stdout).toMatch(/corrected copy: 2 rows already sent and kept \(not paid again\); 3 new, corrected or not yet sent lines, all to pay/);
    expect(preview.stdout).toMatch(/sent rows no longer in the file, kept with their payouts: 0; changes accepted \(paid in addition\): 1/);
    expect(preview.stdout).not.toMatch(/REMOVED/);
    expect(preview.stdout).toMatch(/A real run would send 3 payouts of ₹352\.00/);
    expect(s.ledger()).toHaveLength(3);
    const short = await runCli(['run', v2, '--batch', 'nov', ...d.dirs, ...FAST, '--revise', '--dry-run', '--accept-change', '4', '--expect-rows', '6'], { env: apiEnv(s), cwd: d.work });
    expect(short.code, show(short)).toBe(2);
    expect(short.stderr).toMatch(/the file has 5 data rows, but 6 were expected \(--expect-rows\)/);
    const total = await runCli(['run', v2, '--batch', 'nov', ...d.dirs, ...FAST, '--revise', '--dry-run', '--accept-change', '4', '--expect-total', '1,000.00'], { env: apiEnv(s), cwd: d.work });
    expect(total.code, show(total)).toBe(2);
    expect(total.stderr).toMatch(/but ₹1,000\.00 was expected \(--expect-total\)/);
  });
});

describe('approve and cancel', { timeout: 120_000 }, () => {
  it('approve: the yes a scheduled run needs, given by a person beforehand; it also lifts a decline', async () => {
    const s = await sb();
    const d = scenario();
    const csv = payroll(path.join(d.work, 'ok.csv'), 2);
    const refused = await runCli(['run', csv, ...d.dirs, ...FAST, '--rate', '50'], { env: apiEnv(s), cwd: d.work });
    expect(refused.code, show(refused)).toBe(3);
    const a = await runCli(['approve', 'ok', '--note', 'checked by finance', '--data-dir', d.dataDir]);
    expect(a.code, show(a)).toBe(0);
    expect(a.stdout).toMatch(/Batch ok revision 1 \(ok\.csv, sha256 [0-9a-f]{12}…\) approved: 2 payouts of ₹202\.00 not sent yet/);
    const cron = await runCli(['resume', 'ok', ...d.dirs, ...FAST, '--rate', '50'], { env: apiEnv(s), cwd: d.work });
    expect(cron.code, show(cron)).toBe(0);
    expect(s.ledger()).toHaveLength(2);
  });

  it('cancel: refused without a terminal or --yes; with --yes the unsent rows are cancelled for good and nothing is sent after', async () => {
    const s = await sb();
    const d = scenario();
    const csv = payroll(path.join(d.work, 'stopme.csv'), 3);
    expect((await runCli(['run', csv, ...d.dirs, ...FAST], { env: apiEnv(s), cwd: d.work })).code).toBe(3);
    const no = await runCli(['cancel', 'stopme', ...d.dirs], { env: apiEnv(s), cwd: d.work });
    expect(no.code, show(no)).toBe(3);
    expect(no.stderr).toMatch(/no terminal to confirm cancelling batch "stopme" \(3 rows not sent would never be sent\): pass --yes/);
    const yes = await runCli(['cancel', 'stopme', ...d.dirs, '--yes', '--json'], { env: apiEnv(s), cwd: d.work });
    expect(yes.code, show(yes)).toBe(0);
    const j = JSON.parse(yes.stdout) as { cancelled_now: number; summary: { counts: Record<string, number> } };
    expect(j.cancelled_now).toBe(3);
    expect(j.summary.counts).toMatchObject({ cancelled: 3, not_sent: 0 });
    const after = await runCli(['resume', 'stopme', ...d.dirs, ...FAST, '--yes'], { env: apiEnv(s), cwd: d.work });
    expect(after.code, show(after)).toBe(1); // finished: every row cancelled, none paid
    expect(s.ledger()).toHaveLength(0);
  });
});
