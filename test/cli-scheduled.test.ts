/**
 * Issue 12, through the built command as cron or systemd would start it: `payouts watch <inbox> --once
 * --yes` pays a dropped file and moves it with its reports; --notify-url posts the summary; a settings
 * file holding the secret that others can read is refused.
 */
import { chmodSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEYS, sandbox, tmpDir } from './helpers/env.js';
import { runCli } from './helpers/cli.js';
import type { Sandbox } from '../src/sandbox/server.js';
import { watchExitCode } from '../src/commands/watch.js';

const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount';
const FAST = ['--rate', '100', '--poll-interval', '100ms', '--grace', '1s', '--user-id', 'M123'];

describe('scheduled payroll through the command', () => {
  let sb: Sandbox;
  let hook: Server;
  const received: Record<string, unknown>[] = [];
  let hookUrl = '';
  beforeAll(async () => {
    sb = await sandbox({ settleMs: 50 });
    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        received.push(JSON.parse(body) as Record<string, unknown>);
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
    hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/services/T000/B000/secretpath`;
  });
  afterAll(async () => {
    await sb?.close();
    await new Promise<void>((r) => hook.close(() => r()));
  });

  const env = () => ({ ALLIANCE_BASE_URL: sb.url, ALLIANCE_ACCESS_KEY: KEYS.accessKey, ALLIANCE_SECRET_KEY: KEYS.secretKey });

  it('watch --once --yes pays a dropped file, moves it to done/ with its reports, and posts the summary', { timeout: 180_000 }, async () => {
    const inbox = tmpDir('payouts-cli-inbox-');
    const data = tmpDir('payouts-cli-data-');
    writeFileSync(
      path.join(inbox, 'bonus-dec.csv'),
      [HEADER, ...[0, 1, 2].map((i) => `P ${i},p${i}@example.com,9876543210,A,IMPS,${8800000 + i}1,B,SBIN0000691,${250 + i}`)].join('\n') + '\n',
    );
    const r = await runCli(['watch', inbox, '--once', '--yes', '--stable', '0s', '--every', '100ms', '--data-dir', data, '--notify-url', hookUrl, ...FAST], { env: env(), timeoutMs: 150_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(path.join(inbox, 'done')).sort()).toEqual(['bonus-dec.csv', 'bonus-dec.reports']);
    expect(readdirSync(path.join(inbox, 'done', 'bonus-dec.reports')).sort()).toEqual(['bonus-dec.csv', 'bonus-dec.html', 'bonus-dec.json', 'bonus-dec.xlsx']);
    expect(sb.ledger().filter((e) => e.accountNo.startsWith('88000'))).toHaveLength(3);
    const note = received.find((b) => JSON.stringify(b).includes('bonus-dec'));
    expect(note, JSON.stringify(received)).toBeDefined();
    expect(JSON.stringify(note)).toMatch(/"text":"[^"]*bonus-dec[^"]*"/);
    // No account number leaves in a notification.
    expect(JSON.stringify(note)).not.toMatch(/880000\d1/);
  });

  it('watch without --yes is refused before anything is read (exit 3, as run without --yes)', async () => {
    const inbox = tmpDir('payouts-cli-inbox-');
    const r = await runCli(['watch', inbox, '--once', '--data-dir', tmpDir('payouts-cli-data-'), ...FAST], { env: env() });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/--yes/);
  });

  it("the watcher exits with the highest of its files' codes (cron mails a payroll with rows not paid); its log says where the reports are now", { timeout: 180_000 }, async () => {
    const inbox = tmpDir('payouts-cli-inbox-');
    const data = tmpDir('payouts-cli-data-');
    writeFileSync(
      path.join(inbox, 'bonus-jan.csv'),
      [HEADER, ...[0, 1].map((i) => `P ${i},p${i}@example.com,9876543210,A,IMPS,${8900000 + i}1,B,SBIN0000691,${250 + i}`), 'Bad,b@example.com,9876543210,A,IMPS,89999991,B,SBIN06058,10'].join('\n') + '\n',
    );
    const r = await runCli(['watch', inbox, '--once', '--yes', '--stable', '0s', '--every', '100ms', '--data-dir', data, ...FAST], { env: env(), timeoutMs: 150_000 });
    expect(r.code, r.stderr).toBe(1);
    const line = r.stderr.split('\n').find((l) => l.includes('Inbox: bonus-jan.csv -> done/'));
    expect(line, r.stderr).toMatch(/\(exit 1\): finished: 2 paid, 1 not paid \(1 invalid\)\. Next: `payouts report bonus-jan --fixable` writes the rows to correct, then run them with --revise; its reports: .*\/done\/bonus-jan\.reports$/);
    expect(line).not.toMatch(/processing/);
    expect(watchExitCode([])).toBe(0);
    expect(watchExitCode([0, 1, 0])).toBe(1);
    expect(watchExitCode([1, 4, 3])).toBe(4);
  });

  it('a settings file holding the secret, readable by others, is refused (exit 2) without echoing the secret', async () => {
    const dir = tmpDir('payouts-cli-config-');
    mkdirSync(dir, { recursive: true });
    const f = path.join(dir, 'payouts.env');
    writeFileSync(f, `ALLIANCE_BASE_URL=${sb.url}\nALLIANCE_ACCESS_KEY=${KEYS.accessKey}\nALLIANCE_SECRET_KEY=${KEYS.secretKey}\n`);
    chmodSync(f, 0o644);
    const refused = await runCli(['balance', '--config', f]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/chmod 600/);
    expect(refused.stdout + refused.stderr).not.toContain(KEYS.secretKey);
    chmodSync(f, 0o600);
    const ok = await runCli(['balance', '--config', f]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/₹/);
  });
});
