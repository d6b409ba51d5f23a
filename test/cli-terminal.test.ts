/**
 * The command as a person meets it at a terminal (issue 9), in a pseudo-terminal (node-pty) against the
 * sandbox on port 0: no payout without an explicit yes, piped or not; a "no" (or Ctrl-C at the prompt)
 * that a later unattended run respects; a progress display drawn in place on a terminal and plain lines
 * without one; the summary after a mid-run Ctrl-C separating sent from not sent; readable warnings on a
 * terminal, each repeated warning once with a count, and JSON lines elsewhere.
 */
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN, runCli, type CliResult } from './helpers/cli.js';
import { KEYS, sandbox, tmpDir as makeTmpDir } from './helpers/env.js';
import { plain, ptyCli, ptyShell, rendered } from './helpers/pty.js';
import { waitFor } from './helpers/proc.js';
import type { Sandbox } from '../src/sandbox/server.js';

const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount,remarks';

/** `n` valid rows (IMPS and NEFT), plus `invalid` rows with a 10-character IFSC. */
function payroll(file: string, n: number, invalid = 0): string {
  const lines = [HEADER];
  for (let i = 0; i < n; i++) {
    lines.push(`Payee ${i},p${i}@example.com,98765${String(10000 + i).slice(-5)},"${i} MG Road",${i % 3 === 2 ? 'NEFT' : 'IMPS'},${7000000000 + i}1,SBI,SBIN0000691,${100 + i}.50,Salary`);
  }
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
function apiEnv(s: Sandbox): Record<string, string> {
  return { ALLIANCE_BASE_URL: s.url, ALLIANCE_ACCESS_KEY: KEYS.accessKey, ALLIANCE_SECRET_KEY: KEYS.secretKey };
}
function show(r: CliResult): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

let template: string;
function scenario() {
  const dataDir = tmpDir('payouts-tty-data-');
  cpSync(template, dataDir, { recursive: true });
  const reportDir = path.join(tmpDir('payouts-tty-reports-'), 'out');
  const work = tmpDir('payouts-tty-work-');
  return { dataDir, reportDir, work, dirs: ['--data-dir', dataDir, '--report-dir', reportDir] };
}
const FAST = ['--user-id', 'M1', '--poll-interval', '100ms', '--ambiguous-grace', '500ms'];
const QUICK = [...FAST, '--rate', '50'];

beforeAll(async () => {
  template = tmpDir('payouts-tty-template-');
  const m = await runCli(['migrate', '--data-dir', template]);
  expect(m.code, show(m)).toBe(0);
}, 120_000);

afterAll(async () => {
  for (const s of sandboxes) await s.close();
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

describe('no payout without an explicit yes', { timeout: 120_000 }, () => {
  it('the prompt shows the API, rows and rupees per method, the balance before and after, the invalid rows; "n" sends nothing, and a later unattended resume --yes pays nothing', async () => {
    const s = await sb();
    const d = scenario();
    const csv = payroll(path.join(d.work, 'nov.csv'), 3, 1);
    const t = ptyCli(['run', csv, ...d.dirs, ...QUICK], { env: apiEnv(s), cwd: d.work });
    await t.waitFor(/Type y to send/);
    const shown = plain(t.output());
    expect(shown).toMatch(/About to pay batch "nov" \(revision 1\) through the SANDBOX 127\.0\.0\.1:\d+ \(this machine\)/);
    expect(shown).toMatch(/IMPS\s+2 payouts\s+₹202\.00/);
    expect(shown).toMatch(/NEFT\s+1 payouts\s+₹102\.50/);
    expect(shown).toMatch(/total\s+3 payouts\s+₹304\.50/);
    expect(shown).toMatch(/wallet balance ₹10,00,00,000\.00 now, about ₹9,99,99,695\.50 after/);
    expect(shown).toMatch(/not sent now: 1 invalid/);
    expect(shown).toMatch(/row 5: ifsc "SBIN060589"/);
    t.type('n\r');
    const { exitCode } = await t.exited;
    expect(exitCode, t.output()).toBe(3);
    expect(plain(t.output())).toMatch(/not confirmed: nothing sent/);
    expect(s.ledger()).toHaveLength(0);

    // Cron, the next night, with --yes: the "no" stands.
    const cron = await runCli(['resume', 'nov', ...d.dirs, ...QUICK, '--yes'], { env: apiEnv(s), cwd: d.work });
    expect(cron.code, show(cron)).toBe(3);
    expect(cron.stderr).toMatch(/declined at the confirmation prompt/);
    expect(cron.stderr).toMatch(/payouts approve nov/);
    expect(s.ledger()).toHaveLength(0);

    // A person says yes at a terminal: paid, each once.
    const yes = ptyCli(['resume', 'nov', ...d.dirs, ...QUICK], { env: apiEnv(s), cwd: d.work });
    await yes.waitFor(/Type y to send/);
    expect(plain(yes.output())).toMatch(/declined at a prompt earlier/);
    yes.type('y\r');
    expect((await yes.exited).exitCode, yes.output()).toBe(1); // the invalid row
    expect(s.ledger()).toHaveLength(3);
  });

  it('Ctrl-C at the prompt declines too (recorded), exit 3, nothing sent', async () => {
    const s = await sb();
    const d = scenario();
    const csv = payroll(path.join(d.work, 'ctrlc.csv'), 2);
    const t = ptyCli(['run', csv, ...d.dirs, ...QUICK], { env: apiEnv(s), cwd: d.work });
    await t.waitFor(/Type y to send/);
    t.type('\x03');
    expect((await t.exited).exitCode, t.output()).toBe(3);
    expect(s.ledger()).toHaveLength(0);
    const st = await runCli(['status', 'ctrlc', '--data-dir', d.dataDir, '--json'], { cwd: d.work });
    expect(JSON.parse(st.stdout)).toMatchObject({ decision: 'declined', counts: { not_sent: 2 } });
  });

  it('cancel asks at a terminal, showing what would never be sent; "n" keeps the batch, "y" cancels it', async () => {
    const s = await sb();
    const d = scenario();
    const csv = payroll(path.join(d.work, 'gone.csv'), 2);
    expect((await runCli(['run', csv, ...d.dirs, ...QUICK], { env: apiEnv(s), cwd: d.work })).code).toBe(3);
    const keep = ptyCli(['cancel', 'gone', ...d.dirs], { env: apiEnv(s), cwd: d.work });
    await keep.waitFor(/Type y to cancel/);
    expect(plain(keep.output())).toMatch(/2 rows not sent \(₹202\.00\) would never be sent/);
    keep.type('n\r');
    expect((await keep.exited).exitCode).toBe(3);
    const cancel = ptyCli(['cancel', 'gone', ...d.dirs], { env: apiEnv(s), cwd: d.work });
    await cancel.waitFor(/Type y to cancel/);
    cancel.type('y\r');
    expect((await cancel.exited).exitCode, cancel.output()).toBe(0);
    expect(plain(cancel.output())).toMatch(/cancelled\s+2\s+₹202\.00/);
    expect(s.ledger()).toHaveLength(0);
  });

  it('`run … | tee log` with a person at the keyboard: asked on the terminal (stdin and stderr are one), "y" pays; the log keeps the results', async () => {
    const s = await sb();
    const d = scenario();
    const csv = payroll(path.join(d.work, 'teed.csv'), 2);
    const log = path.join(d.work, 'run.log');
    const line = [process.execPath, MAIN, 'run', csv, ...d.dirs, ...QUICK].map((a) => `'${a}'`).join(' ');
    const t = ptyShell(`${line} | tee '${log}'; exit \${PIPESTATUS[0]}`, { env: apiEnv(s), cwd: d.work });
    await t.waitFor(/Type y to send/);
    expect(s.ledger()).toHaveLength(0);
    t.type('y\r');
    const { exitCode } = await t.exited;
    expect(exitCode, t.output()).toBe(0);
    expect(s.ledger()).toHaveLength(2);
    const logged = readFileSync(log, 'utf8');
    expect(logged).toMatch(/Database: /);
    expect(logged).toMatch(/finished: all 2 rows paid/);
    // The question went to the terminal, not into the log.
    expect(logged).not.toMatch(/Type y to send/);
  });

  it('no terminal at all (stdin not a terminal, as under cron): no question, nothing sent without --yes', async () => {
    const s = await sb();
    const d = scenario();
    const csv = payroll(path.join(d.work, 'nostdin.csv'), 2);
    const line = [process.execPath, MAIN, 'run', csv, ...d.dirs, ...QUICK].map((a) => `'${a}'`).join(' ');
    const t = ptyShell(`${line} < /dev/null`, { env: apiEnv(s), cwd: d.work });
    const { exitCode } = await t.exited;
    expect(exitCode, t.output()).toBe(3);
    expect(t.output()).not.toMatch(/Type y to send/);
    expect(plain(t.output())).toMatch(/no terminal to confirm 2 payouts of ₹202\.00: pass --yes/);
    expect(s.ledger()).toHaveLength(0);
  });

  it('"y" sends, and the progress display is drawn in place on the terminal', async () => {
    const s = await sb({ settleMs: 400 });
    const d = scenario();
    const csv = payroll(path.join(d.work, 'drawn.csv'), 12);
    const t = ptyCli(['run', csv, ...d.dirs, ...FAST, '--rate', '8'], { env: apiEnv(s), cwd: d.work });
    await t.waitFor(/Type y to send/);
    t.type('y\r');
    const { exitCode } = await t.exited;
    expect(exitCode, t.output()).toBe(0);
    const out = t.output();
    // Redrawn in place: cursor up and clear, a bar, counts with rupees.
    expect(out).toMatch(/\x1b\[\dA\r\x1b\[J/);
    expect(out).toMatch(/Sending\s+\[[█░]+\]\s+\d+%\s+\d+\/12 sent/);
    expect(out).toMatch(/not sent \d+ \(₹[\d,]+\.\d\d\) · sending \d+[^·\n]* · sent, awaiting the bank \d+/);
    expect(out).toMatch(/moved so far ₹[\d,]+\.\d\d/);
    expect(out).toMatch(/paid \d+ \(₹[\d,.]+\) · rejected 0/);
    expect(out).not.toMatch(/^progress drawn:/m);
    // What the person sees at the end: every result line, and no progress block left behind.
    const screen = (await rendered(out)).join('\n');
    expect(screen).toMatch(/^Batch drawn: 12 rows read, 0 invalid/m);
    expect(screen).toMatch(/^Balance ₹[\d,.]+; to send 12 payouts needing ₹1,272\.00$/m);
    expect(screen).toMatch(/^Send 12 payouts totalling ₹1,272\.00\? Type y to send.*y$/m);
    expect(screen).toMatch(/^\s+approved\s+12\s+₹1,272\.00\s+paid$/m);
    expect(screen).not.toMatch(/Sending\s+\[|Awaiting the bank\s+\[|Writing the report/);
    expect(plain(out)).toMatch(/finished: all 12 rows paid/);
    expect(s.ledger()).toHaveLength(12);
  });
});

describe('results and the progress block share the terminal', { timeout: 120_000 }, () => {
  it('lines printed on stdout while the block is drawn stay on the screen; the block is gone at the end', async () => {
    const s = await sb();
    const d = scenario();
    const csv = payroll(path.join(d.work, 'big.csv'), 4000, 2);
    const t = ptyCli(['run', csv, ...d.dirs, ...QUICK, '--dry-run'], { env: apiEnv(s), cwd: d.work });
    const { exitCode } = await t.exited;
    expect(exitCode, t.output()).toBe(1);
    // The block was drawn while the file was read (and redrawn around the results printed meanwhile).
    expect(t.output()).toMatch(/Reading the file\s+\d+ rows read/);
    const screen = await rendered(t.output());
    const text = screen.join('\n');
    expect(text).toMatch(/^Database: PGlite at /m);
    expect(text).toMatch(/^Batch big: 4002 rows read \(dry run: nothing stored\), 2 invalid/m);
    expect(text).toMatch(/^\s+row 4002: error: ifsc "SBIN060589"/m);
    expect(text).toMatch(/^\s+row 4003: error: ifsc "SBIN060589"/m);
    expect(text).toMatch(/^Balance ₹[\d,.]+; to send 4000 payouts needing/m);
    expect(text).toMatch(/^A real run would send 4000 payouts/m);
    expect(text).toMatch(/^dry run, nothing stored or sent/m);
    expect(text).not.toMatch(/Reading the file|Checking the balance/);
  });
});

describe('progress without a terminal', { timeout: 120_000 }, () => {
  it('plain lines on stderr (no cursor movement), at phase changes and every --progress-interval; stdout keeps the results', async () => {
    const s = await sb({ settleMs: 300 });
    const d = scenario();
    const csv = payroll(path.join(d.work, 'plain.csv'), 12);
    const r = await runCli(['run', csv, ...d.dirs, ...FAST, '--rate', '6', '--yes', '--progress-interval', '1s'], { env: apiEnv(s), cwd: d.work });
    expect(r.code, show(r)).toBe(0);
    expect(r.stderr).not.toMatch(/\x1b\[/);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('progress plain:'));
    expect(lines.length, r.stderr).toBeGreaterThanOrEqual(3);
    expect(lines.some((l) => /reading the file/.test(l))).toBe(true);
    expect(lines.some((l) => /sending, \d+\/12 sent; not sent \d+ \(₹[\d,.]+\), sending \d+[^;]*?, sent, awaiting the bank \d+/.test(l))).toBe(true);
    expect(r.stdout).not.toMatch(/^progress/m);
    expect(r.stdout).toMatch(/finished: all 12 rows paid/);
  });
});

describe('a mid-run Ctrl-C', { timeout: 120_000 }, () => {
  it('stops sending, lets what is in flight finish, exits 4, and the summary separates sent from not sent', async () => {
    const s = await sb({ settleMs: 120_000 });
    const d = scenario();
    const csv = payroll(path.join(d.work, 'stop.csv'), 30);
    const t = ptyCli(['run', csv, ...d.dirs, ...FAST, '--rate', '4', '--concurrency', '1'], { env: apiEnv(s), cwd: d.work });
    await t.waitFor(/Type y to send/);
    t.type('y\r');
    await waitFor('a few payouts sent', () => s.ledger().length >= 3, 60_000);
    t.type('\x03');
    const { exitCode } = await t.exited;
    const out = plain(t.output());
    expect(exitCode, out).toBe(4);
    expect(out).toMatch(/Stopping \(SIGINT\): no new payouts are sent/);
    const sent = s.ledger().length;
    expect(sent).toBeLessThan(30);
    expect(out).toMatch(new RegExp(`Sent: ${sent} rows, ₹[\\d,.]+ \\(do not pay these again by hand\\)\\. Not sent: ${30 - sent} rows`));
    expect(out).toMatch(new RegExp(`pending\\s+${sent}\\s+₹[\\d,.]+\\s+sent, awaiting the bank`));
    expect(out).toMatch(new RegExp(`not_sent\\s+${30 - sent}\\s+₹[\\d,.]+\\s+not sent`));
    expect(out).toMatch(/payouts resume stop/);
    const report = JSON.parse(readFileSync(path.join(d.reportDir, 'stop.json'), 'utf8')) as { summary: { counts: Record<string, number> } };
    expect(report.summary.counts).toMatchObject({ pending: sent, not_sent: 30 - sent, sending: 0 });
  });
});

describe('warnings for people and for machines', { timeout: 120_000 }, () => {
  // Every initiate fails with a 500 before executing: for a POST that is ambiguous, so each row is asked
  // about, found missing, and sent again, up to three times: dozens of identical warnings.
  const faults = { error5xxBeforeRate: 1, onlyPaths: ['api/v1/payout/initiate'] };

  it('on a terminal: readable lines, each repeated warning once with a count, no JSON', async () => {
    const s = await sb({ faults });
    const d = scenario();
    const csv = payroll(path.join(d.work, 'outage.csv'), 10);
    const t = ptyCli(['run', csv, ...d.dirs, ...QUICK, '--yes'], { env: apiEnv(s), cwd: d.work });
    const { exitCode } = await t.exited;
    const out = plain(t.output());
    expect(exitCode, out).toBe(1); // every row needs review
    const lines = out.split('\n');
    expect(lines.filter((l) => l.trim().startsWith('{'))).toEqual([]);
    const outcome = lines.filter((l) => l.startsWith('warning: outcome unknown: asking status before anything else'));
    expect(outcome.length, out).toBeGreaterThanOrEqual(2);
    expect(outcome.length, out).toBeLessThanOrEqual(4);
    expect(outcome[0]).toMatch(/orderId=\S+ err=/);
    const counted = outcome.filter((l) => / more times? in the last \d+ s \((\d+) in all\)/.test(l));
    const all = Number(/\((\d+) in all\)/.exec(counted[counted.length - 1]!)![1]);
    expect(all).toBeGreaterThanOrEqual(20);
    expect(out).toMatch(/needs_review\s+10/);
  });

  it('without a terminal (or with --log-format json): JSON lines, one per event', async () => {
    const s = await sb({ faults });
    const d = scenario();
    const csv = payroll(path.join(d.work, 'outage.csv'), 10);
    const r = await runCli(['run', csv, ...d.dirs, ...QUICK, '--yes'], { env: apiEnv(s), cwd: d.work });
    expect(r.code, show(r)).toBe(1);
    const json = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; level: number });
    expect(json.filter((j) => j.msg === 'outcome unknown: asking status before anything else').length).toBeGreaterThanOrEqual(20);

    // At a terminal, --log-format json makes every line of stderr a JSON object (progress and errors too).
    const d2 = scenario();
    const t = ptyCli(['run', payroll(path.join(d2.work, 'outage.csv'), 2), ...d2.dirs, ...QUICK, '--yes', '--log-format', 'json'], { env: apiEnv(s), cwd: d2.work });
    await t.exited;
    const stderrish = plain(t.output())
      .split('\n')
      .filter((l) => l.trim() && !/^Database: |^Batch |^Balance |^\s|^finished|^Report: |^Sent: |^`payouts/.test(l));
    for (const l of stderrish) expect(() => JSON.parse(l), l).not.toThrow();
    expect(stderrish.some((l) => (JSON.parse(l) as { msg: string }).msg.startsWith('progress outage:'))).toBe(true);
  });
});

describe('API trouble on screen (issue 20 point 1)', { timeout: 120_000 }, () => {
  it('a 429 storm: a warning on a plain stderr, and the rows claimed are "waiting, not sent", never "outcome not known"', async () => {
    const s = await sb({ faults: { burst429Rate: 1, onlyPaths: ['api/v1/payout/initiate'] } });
    const d = scenario();
    const csv = payroll(path.join(d.work, 'storm.csv'), 6);
    // The storm lasts 3.5 s from the first initiate (after the balance check), however long the command
    // takes to start on a busy machine (a fixed 4 s from the test's start left no storm once in CI-like runs).
    let ended: NodeJS.Timeout | undefined;
    const watch = setInterval(() => {
      if (s.requestCount() < 2) return;
      clearInterval(watch);
      ended = setTimeout(() => s.setFaults({}), 3500);
    }, 20);
    const r = await runCli(['run', csv, ...d.dirs, ...QUICK, '--yes', '--progress-interval', '500ms'], { env: apiEnv(s), cwd: d.work }).finally(() => {
      clearInterval(watch);
      clearTimeout(ended);
    });
    expect([0, 4], show(r)).toContain(r.code);
    expect(r.stderr).toMatch(/warning: the API is answering 429 \(too many requests\): sending waits and slows down; nothing is lost or sent twice/);
    // While it lasted, the rows in hand were waiting for their turn: not sent yet.
    expect(r.stderr).toMatch(/progress storm: sending[^\n]*sending \d+: 0 on the wire, \d+ waiting for their turn \(not sent yet\)[^\n]*API trouble: the API is answering 429/);
  });

  it('a 429 storm at a terminal of 80 columns: the trouble and "waiting" shown, every line within 80 columns, the money whole', async () => {
    const s = await sb({ faults: { burst429Rate: 1, onlyPaths: ['api/v1/payout/initiate'] } });
    const d = scenario();
    const csv = payroll(path.join(d.work, 'storm80.csv'), 6);
    const t = ptyCli(['run', csv, ...d.dirs, ...QUICK, '--yes'], { env: apiEnv(s), cwd: d.work, cols: 80 });
    await t.waitFor(/API: the API is answering 429|API trouble: the API is answering 429/, 30_000);
    await t.waitFor(/waiting/, 30_000);
    const during = (await rendered(t.output(), 80)).join('\n');
    s.setFaults({});
    const { exitCode } = await t.exited;
    expect([0, 4], t.output()).toContain(exitCode);
    expect(during).toMatch(/moved so far ₹[\d,]+\.\d\d/);
    expect(during).toMatch(/not sent \d+/);
    // Nothing cut mid-amount at the right edge (the terminal would show "₹40,10,0").
    for (const l of during.split('\n')) expect(l.trimEnd(), l).not.toMatch(/₹[\d,]*\.?\d?$/);
  });
});
