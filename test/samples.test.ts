/**
 * Issue 20 point 5: the scheduled samples work as shipped. The cron line and the systemd services'
 * command lines are taken from samples/systemd as they are, with only the machine's paths swapped for test
 * ones (the binary, the inbox, the settings file, the log) and the settings file made from
 * payouts.env.example with its placeholders filled. A person using the same settings file sees the same
 * database; a second embedded database is pointed out.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN, ROOT, runCli, testDataHome } from './helpers/cli.js';
import { KEYS, sandbox, tmpDir } from './helpers/env.js';
import type { Sandbox } from '../src/sandbox/server.js';

const SAMPLES = path.join(ROOT, 'samples/systemd');
const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount';

function execStart(service: string): string {
  const line = readFileSync(path.join(SAMPLES, service), 'utf8')
    .split('\n')
    .find((l) => l.startsWith('ExecStart='));
  return line!.slice('ExecStart='.length);
}

function cronCommand(): string {
  const line = readFileSync(path.join(SAMPLES, 'crontab.example'), 'utf8')
    .split('\n')
    .find((l) => /^\d/.test(l.trim()));
  // m h dom mon dow command
  return line!.trim().split(/\s+/).slice(5).join(' ');
}

describe('the scheduled samples, as shipped', () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await sandbox({ settleMs: 20 });
  });
  afterAll(async () => sb?.close());

  function machine() {
    const root = tmpDir('payouts-samples-');
    const inbox = path.join(root, 'srv/payroll/inbox');
    mkdirSync(inbox, { recursive: true });
    const data = path.join(root, 'var/lib/payroll/data');
    const settings = path.join(root, 'etc/payouts/payouts.env');
    mkdirSync(path.dirname(settings), { recursive: true });
    const env = readFileSync(path.join(SAMPLES, 'payouts.env.example'), 'utf8')
      .replace('ALLIANCE_BASE_URL=https://api.example.com', `ALLIANCE_BASE_URL=${sb.url}`)
      .replace('ALLIANCE_ACCESS_KEY=replace-me', `ALLIANCE_ACCESS_KEY=${KEYS.accessKey}`)
      .replace('ALLIANCE_SECRET_KEY=replace-me', `ALLIANCE_SECRET_KEY=${KEYS.secretKey}`)
      .replace('PAYOUTS_USER_ID=replace-me', 'PAYOUTS_USER_ID=M123')
      .replace(/^PAYOUTS_NOTIFY_URL=.*$/m, '')
      .replace('PAYOUTS_DATA_DIR=/var/lib/payroll/data', `PAYOUTS_DATA_DIR=${data}`);
    expect(env).not.toMatch(/replace-me/);
    writeFileSync(settings, env);
    chmodSync(settings, 0o600);
    const localize = (cmd: string) =>
      cmd
        .replaceAll('/usr/local/bin/payouts', `'${process.execPath}' '${MAIN}'`)
        .replaceAll('/srv/payroll/inbox', inbox)
        .replaceAll('/etc/payouts/payouts.env', settings)
        .replaceAll('/var/log/payouts.log', path.join(root, 'payouts.log'));
    const drop = (name: string, from: number) =>
      writeFileSync(path.join(inbox, name), [HEADER, ...[0, 1].map((i) => `S ${from + i},s${from + i}@example.com,98765${String(60000 + from + i)},A,IMPS,${8100000 + from + i}1,B,SBIN0000691,${300 + from + i}`)].join('\n') + '\n');
    // Nothing from this test's own environment reaches the command: only what the sample says.
    const bare = { PATH: process.env['PATH'] ?? '', HOME: root, XDG_DATA_HOME: path.join(root, 'home-data') };
    return { root, inbox, data, settings, localize, drop, bare };
  }

  function sh(cmd: string, env: Record<string, string>, cwd: string): Promise<{ code: number | null; out: string }> {
    return new Promise((resolve) => {
      const child = spawn('bash', ['-c', cmd], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      child.on('close', (code) => resolve({ code, out }));
    });
  }

  it('the cron line pays what is in the inbox, with the merchant user_id and the data directory from the settings file', { timeout: 120_000 }, async () => {
    const m = machine();
    m.drop('payroll-28.csv', 0);
    // Stable for 5 s by default: the sample's cron line does not change that; the file was dropped before.
    await new Promise((r) => setTimeout(r, 5200));
    const before = sb.ledger().length;
    const r = await sh(m.localize(cronCommand()), m.bare, m.root);
    const log = readFileSync(path.join(m.root, 'payouts.log'), 'utf8');
    expect(r.code, `${r.out}\n${log}`).toBe(0);
    expect(sb.ledger().length - before).toBe(2);
    expect(readdirSync(path.join(m.inbox, 'done'))).toContain('payroll-28.csv');
    expect(existsSync(path.join(m.data, 'pgdata'))).toBe(true);
    // A person with the same settings file sees the same batch (the same database).
    const status = await runCli(['status', '--config', m.settings], { env: { HOME: m.root, XDG_DATA_HOME: path.join(m.root, 'home-data') } });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain('payroll-28');
    expect(status.stdout).toContain(m.data);
  });

  it('the oneshot service and the long-running watcher, as their ExecStart says', { timeout: 120_000 }, async () => {
    const m = machine();
    m.drop('oneshot.csv', 10);
    await new Promise((r) => setTimeout(r, 5200));
    const before = sb.ledger().length;
    const once = await sh(m.localize(execStart('payouts-payroll.service')), m.bare, m.root);
    expect(once.code, once.out).toBe(0);
    expect(sb.ledger().length - before).toBe(2);
    // The watcher runs until stopped (SIGTERM, as systemd stops it).
    m.drop('watched.csv', 20);
    const child = spawn('bash', ['-c', `exec ${m.localize(execStart('payouts-watch.service'))}`], { env: m.bare, cwd: m.root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const done = path.join(m.inbox, 'done', 'watched.csv');
    for (let i = 0; i < 200 && !existsSync(done); i++) await new Promise((r) => setTimeout(r, 100));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    child.kill('SIGTERM');
    expect(existsSync(done), out).toBe(true);
    expect(await exited).toBe(0);
    expect(sb.ledger().length - before).toBe(4);
  });

  it('a second embedded database is pointed out loudly: their batches never meet', async () => {
    const m = machine();
    const personal = path.join(testDataHome(), 'alliance-payouts');
    expect((await runCli(['migrate'], {})).code).toBe(0);
    expect(existsSync(path.join(personal, 'pgdata'))).toBe(true);
    const r = await runCli(['status', '--config', m.settings], {});
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`WARNING: another embedded database exists at ${personal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}; this command uses ${m.data.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  });
});
