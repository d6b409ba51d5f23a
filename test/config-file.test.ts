/**
 * Issue 18: a settings file is checked like the setting it replaces. A misspelt key (PAYOUTS_NOTIFY_URI,
 * ALLIANCE_TIMEOUTMS) would be ignored silently and the run would go on without it, so it is refused with the
 * nearest known name; every secret-bearing setting (keys, tokens, passwords, a Slack URL, a database URL with
 * a password) needs a file only its owner can read; a crash-test hook is never taken from a file.
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { nearestSetting, readConfigFile, SETTINGS, TEST_HOOKS } from '../src/configFile.js';
import { ConfigError } from '../src/errors.js';
import { ROOT, runCli } from './helpers/cli.js';
import { tmpDir } from './helpers/env.js';

function fileWith(text: string, mode: number, name = 'payouts.env'): string {
  const f = path.join(tmpDir('payouts-config-file-'), name);
  writeFileSync(f, text);
  chmodSync(f, mode);
  return f;
}

function refusal(f: string): string {
  try {
    readConfigFile(f);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`${f} was accepted`);
}

describe('a settings file', () => {
  it.each([
    ['PAYOUTS_NOTIFY_URI', 'PAYOUTS_NOTIFY_URL'],
    ['ALLIANCE_TIMEOUTMS', 'ALLIANCE_TIMEOUT_MS'],
    ['ALLIANCE_SECERT_KEY', 'ALLIANCE_SECRET_KEY'],
    ['PAYOUT_DATA_DIR', 'PAYOUTS_DATA_DIR'],
    ['DATABSE_URL', 'DATABASE_URL'],
    ['payouts_user_id', 'PAYOUTS_USER_ID'],
    ['PAYOUTS_TIMEZONE', 'PAYOUTS_TIME_ZONE'],
  ])('refuses the misspelt %s, naming %s', (key, near) => {
    const msg = refusal(fileWith(`${key}=x\n`, 0o600));
    expect(msg).toContain(`unknown setting "${key}"`);
    expect(msg).toContain(`did you mean ${near}?`);
    expect(nearestSetting(key)).toBe(near);
  });

  it('refuses a key near nothing, listing the settings there are', () => {
    const msg = refusal(fileWith('PAYOUTS_COLOUR_SCHEME=dark\n', 0o600));
    expect(msg).toContain('unknown setting "PAYOUTS_COLOUR_SCHEME"');
    expect(msg).not.toContain('did you mean');
    expect(msg).toContain('PAYOUTS_NOTIFY_URL');
  });

  it('refuses the misspelt key in JSON too', () => {
    const msg = refusal(fileWith(JSON.stringify({ ALLIANCE_BASE_URL: 'https://a.example', PAYOUTS_NOTIFY_URI: 'https://h.example' }), 0o600, 'payouts.json'));
    expect(msg).toContain('did you mean PAYOUTS_NOTIFY_URL?');
  });

  // Every setting that carries a secret, alone in a file others (or the group) can read: refused, naming it.
  it.each([
    ['ALLIANCE_SECRET_KEY', 'sk-123'],
    ['ALLIANCE_ACCESS_KEY', 'ak-123'],
    ['PAYOUTS_WEBHOOK_TOKEN', 'tok-123'],
    ['PAYOUTS_NOTIFY_URL', 'https://hooks.slack.com/services/T0/B0/XXXXSECRET'],
    ['PAYOUTS_SANDBOX_ADMIN_TOKEN', 'adm-123'],
    ['PAYOUTS_PASSWORD', 'a-long-password'],
    ['DATABASE_URL', 'postgres://payroll:hunter22@db.example/payroll'],
    ['DATABASE_URL', 'postgres://db.example/payroll?password=hunter22'],
    ['ALLIANCE_BASE_URL', 'https://user:pw@proxy.example/alliance'],
  ])('a readable file holding %s (%s) is refused', (key, value) => {
    for (const mode of [0o644, 0o640]) {
      const msg = refusal(fileWith(`${key}=${value}\n`, mode));
      expect(msg).toContain(`holds ${key}`);
      expect(msg).toMatch(/chmod 600/);
      expect(msg).not.toContain(value);
    }
    expect(readConfigFile(fileWith(`${key}=${value}\n`, 0o600))[key]).toBe(value);
  });

  it('settings without a secret may be read by others', () => {
    const f = fileWith('ALLIANCE_BASE_URL=https://api.example\nDATABASE_URL=postgres://db.example/payroll\nPAYOUTS_TIME_ZONE=Asia/Kolkata\n', 0o644);
    expect(readConfigFile(f)).toMatchObject({ ALLIANCE_BASE_URL: 'https://api.example', PAYOUTS_TIME_ZONE: 'Asia/Kolkata' });
  });

  it('the crash-test hook comes from the environment only: refused in a file, read from the process environment', () => {
    const f = fileWith('PAYOUTS_CRASH_AT=after_send:1\n', 0o600);
    expect(refusal(f)).toMatch(/PAYOUTS_CRASH_AT is a hook for the crash tests, read from the environment only/);
    const ok = fileWith('PAYOUTS_TIME_ZONE=UTC\n', 0o600);
    expect(loadConfig({ config: ok }, { PAYOUTS_CRASH_AT: 'after_send:1' }).crashAt).toBe('after_send:1');
    expect(loadConfig({ config: ok }, {}).crashAt).toBeUndefined();
  });

  it('names every setting config.ts reads from the environment (one list)', () => {
    const src = readFileSync(path.join(ROOT, 'src/config.ts'), 'utf8');
    const read = new Set([...src.matchAll(/[Ee]nv\['((?:ALLIANCE|PAYOUTS)_[A-Z_]+|DATABASE_URL)'\]/g)].map((m) => m[1]!));
    expect(read.size).toBeGreaterThan(15);
    for (const name of read) {
      if (name === 'PAYOUTS_CONFIG') continue;
      expect(Object.keys(SETTINGS).includes(name) || (TEST_HOOKS as readonly string[]).includes(name), name).toBe(true);
    }
    for (const name of Object.keys(SETTINGS)) expect(read.has(name), `${name} is listed but never read`).toBe(true);
    // The shipped example uses only known settings.
    const example = readFileSync(path.join(ROOT, 'samples/systemd/payouts.env.example'), 'utf8');
    for (const m of example.matchAll(/^([A-Z_]+)=/gm)) expect(SETTINGS[m[1]!], m[1]).toBeDefined();
  });

  it('through the command: a misspelt key and a readable Slack URL stop it with exit 2 before anything runs', async () => {
    const home = tmpDir('payouts-config-cli-');
    const typo = fileWith('ALLIANCE_BASE_URL=http://127.0.0.1:9\nALLIANCE_TIMEOUTMS=5000\n', 0o600);
    const r1 = await runCli(['balance', '--config', typo], { env: { PAYOUTS_DATA_DIR: home } });
    expect(r1.code, r1.stderr).toBe(2);
    expect(r1.stderr).toMatch(/unknown setting "ALLIANCE_TIMEOUTMS": did you mean ALLIANCE_TIMEOUT_MS\?/);
    const slack = 'https://hooks.slack.com/services/T0/B0/XXXXSECRET';
    const readable = fileWith(`PAYOUTS_NOTIFY_URL=${slack}\n`, 0o644);
    const r2 = await runCli(['validate', path.join(ROOT, 'samples/payroll.csv'), '--config', readable], { env: { PAYOUTS_DATA_DIR: home } });
    expect(r2.code, r2.stderr).toBe(2);
    expect(r2.stderr).toMatch(/holds PAYOUTS_NOTIFY_URL and can be read by anyone on this machine/);
    expect(r2.stdout + r2.stderr).not.toContain('XXXXSECRET');
  });
});
