import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runDoctor, type ApiSettings, type DoctorReport } from '../src/alliance/doctor.js';
import { doctorExitCode, settingsAsEnv, settingsAsFlags } from '../src/commands/doctor.js';
import type { Sandbox, SandboxOptions } from '../src/sandbox/server.js';
import { runCli } from './helpers/cli.js';
import { KEYS, quietLogger, sandbox as startSandbox, tmpDir } from './helpers/env.js';

// Child processes on a shared, busy machine: generous limits (a hung one is still killed).
vi.setConfig({ testTimeout: 240_000 });
const cli = (args: string[], o: Parameters<typeof runCli>[1] = {}) => runCli(args, { timeoutMs: 200_000, ...o });

const DEFAULTS: ApiSettings = { getBodyMode: 'empty', escape: 'none', timestampUnit: 'ms', mobileAsNumber: false };

const open: Sandbox[] = [];
const servers: HttpsServer[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r())))));
});

async function sandbox(o: Partial<SandboxOptions> = {}): Promise<Sandbox> {
  const sb = await startSandbox({ settleMs: 60_000, ...o });
  open.push(sb);
  return sb;
}

function doctor(sb: { url: string }, over: Partial<Parameters<typeof runDoctor>[0]> = {}): Promise<DoctorReport> {
  return runDoctor({ baseUrl: sb.url, ...KEYS, current: DEFAULTS, timeoutMs: 3000, logger: quietLogger, ...over });
}

const check = (r: DoctorReport, id: string) => r.checks.find((c) => c.id === id);

function expectNoSecrets(text: string): void {
  expect(text).not.toContain(KEYS.secretKey);
  expect(text).not.toContain(KEYS.accessKey);
}

describe('doctor against a healthy server', () => {
  it('passes every check, keeps the defaults, exit 0', async () => {
    const sb = await sandbox();
    const r = await doctor(sb);
    expect(r.verdict).toBe('ok');
    expect(doctorExitCode(r)).toBe(0);
    expect(r.settings).toEqual(DEFAULTS);
    expect(r.changed).toEqual([]);
    for (const id of ['configuration', 'url', 'reachable', 'credentials', 'ip', 'clock', 'get_body', 'timestamp', 'status_get', 'body_encoding']) {
      expect(check(r, id)?.status, id).toBe('pass');
    }
    expect(check(r, 'get_body')!.detail).toMatch(/empty body line and with \{\}/);
    expect(check(r, 'body_encoding')!.detail).toMatch(/bytes received: any encoding works/);
    expect(check(r, 'mobile')).toMatchObject({ status: 'info' });
    expect(Math.abs(r.clockSkewMs!)).toBeLessThan(2000);
    // Read-only: nothing was paid, nothing created.
    expect(sb.ledger()).toEqual([]);
    expectNoSecrets(JSON.stringify(r));
  });

  it('with --probe-initiate, learns the mobile is taken either way, and still creates no payout', async () => {
    const sb = await sandbox();
    const r = await doctor(sb, { probeInitiate: true });
    expect(r.verdict).toBe('ok');
    expect(check(r, 'mobile')).toMatchObject({ status: 'pass' });
    expect(check(r, 'mobile')!.detail).toMatch(/as a string and as a number/);
    expect(r.sources.mobileAsNumber).toBe('kept');
    expect(sb.ledger()).toEqual([]);
    expect(sb.balancePaise()).toBe(100_000_000_00n);
  });
});

describe('doctor against a rate-limited, flaky server', () => {
  it('paces its probes under a 2/s limit, waits out a 429 and asks a failed GET again: still ok', async () => {
    const sb = await sandbox({ rate: 2, rateMode: 'sliding', faults: { error5xxBeforeRate: 0.2, onlyPaths: ['api/v1/balance'] }, seed: 3 });
    const r = await doctor(sb, { minIntervalMs: 100 });
    expect(r.verdict, JSON.stringify(r.checks, null, 1)).toBe('ok');
    // Six probes on the healthy path; the rest were 429s and 500s asked again.
    expect(sb.requestCount()).toBeGreaterThan(6);
  });
});

describe('doctor names the setting each server variant needs', () => {
  const variants: Array<{ name: string; server: Partial<SandboxOptions>; want: Partial<ApiSettings>; flag: string; env: string; probeInitiate?: boolean }> = [
    { name: 'GET signed with {} only', server: { getBodyMode: '{}' }, want: { getBodyMode: '{}' }, flag: "--get-body-mode '{}'", env: 'ALLIANCE_GET_BODY' },
    { name: 'PHP re-encoding before checking', server: { reencode: 'php' }, want: { escape: 'php' }, flag: '--json-escape php', env: 'ALLIANCE_JSON_ESCAPE' },
    { name: 'Python (ascii) re-encoding', server: { reencode: 'ascii' }, want: { escape: 'ascii' }, flag: '--json-escape ascii', env: 'ALLIANCE_JSON_ESCAPE' },
    { name: 'timestamps in seconds', server: { timestampUnit: 's' }, want: { timestampUnit: 's' }, flag: '--timestamp-unit s', env: 'ALLIANCE_TIMESTAMP_UNIT' },
    {
      name: 'mobile as a number required',
      server: { requireMobileNumber: true },
      want: { mobileAsNumber: true },
      flag: '--mobile-as-number',
      env: 'ALLIANCE_MOBILE_AS_NUMBER',
      probeInitiate: true,
    },
  ];

  for (const v of variants) {
    it(`${v.name}: ${v.flag}`, async () => {
      const sb = await sandbox(v.server);
      const r = await doctor(sb, { probeInitiate: v.probeInitiate ?? false });
      expect(r.verdict, JSON.stringify(r.checks, null, 1)).toBe('settings_differ');
      expect(doctorExitCode(r)).toBe(2);
      expect(r.settings).toEqual({ ...DEFAULTS, ...v.want });
      expect(r.changed).toEqual(Object.keys(v.want));
      expect(settingsAsFlags(r.settings)).toContain(v.flag);
      const key = Object.keys(v.want)[0] as keyof ApiSettings;
      expect(settingsAsEnv(r.settings)[v.env]).toBe(String(v.want[key]));
      expect(sb.ledger()).toEqual([]);

      // With the settings it named, doctor passes: the setting was the right one.
      const again = await doctor(sb, { current: r.settings, probeInitiate: v.probeInitiate ?? false });
      expect(again.verdict, JSON.stringify(again.checks, null, 1)).toBe('ok');
      expect(again.settings).toEqual(r.settings);
    });
  }

  it('mobile as a number required, without --probe-initiate: not told, says how to find out, keeps the setting', async () => {
    const sb = await sandbox({ requireMobileNumber: true });
    const r = await doctor(sb);
    expect(r.verdict).toBe('ok');
    expect(check(r, 'mobile')).toMatchObject({ status: 'info' });
    expect(check(r, 'mobile')!.detail).toContain('--probe-initiate');
  });

  it('every variant at once: all four settings found', async () => {
    const sb = await sandbox({ getBodyMode: '{}', reencode: 'php', timestampUnit: 's', requireMobileNumber: true });
    const r = await doctor(sb, { probeInitiate: true });
    expect(r.settings).toEqual({ getBodyMode: '{}', escape: 'php', timestampUnit: 's', mobileAsNumber: true });
    expect(r.sources).toEqual({ getBodyMode: 'probed', escape: 'probed', timestampUnit: 'probed', mobileAsNumber: 'probed' });
    expect(settingsAsFlags(r.settings)).toBe("--get-body-mode '{}' --json-escape php --timestamp-unit s --mobile-as-number");
  });

  it('a current setting the server also accepts is kept (not every difference is a change)', async () => {
    const sb = await sandbox();
    const r = await doctor(sb, { current: { getBodyMode: '{}', escape: 'php', timestampUnit: 'ms', mobileAsNumber: true }, probeInitiate: true });
    expect(r.verdict).toBe('ok');
    expect(r.settings).toEqual({ getBodyMode: '{}', escape: 'php', timestampUnit: 'ms', mobileAsNumber: true });
  });
});

describe('doctor fails clearly', () => {
  it('wrong secret key: refused, names the keys, exit 6, no secret in the report', async () => {
    const sb = await sandbox();
    const r = await doctor(sb, { secretKey: 'not-the-secret-key-42' });
    expect(r.verdict).toBe('refused');
    expect(doctorExitCode(r)).toBe(6);
    const c = check(r, 'credentials')!;
    expect(c.status).toBe('fail');
    expect(c.detail).toContain('Invalid signature.');
    expect(c.detail).toMatch(/ALLIANCE_ACCESS_KEY and ALLIANCE_SECRET_KEY/);
    expect(check(r, 'clock')!.status).toBe('pass');
    expect(JSON.stringify(r)).not.toContain('not-the-secret-key-42');
    expectNoSecrets(JSON.stringify(r));
  });

  it('wrong clock (10 minutes slow): names the clock and the skew, exit 6', async () => {
    const sb = await sandbox();
    const r = await doctor(sb, { now: () => Date.now() - 10 * 60_000 });
    expect(r.verdict).toBe('refused');
    expect(doctorExitCode(r)).toBe(6);
    const c = check(r, 'clock')!;
    expect(c.status).toBe('fail');
    expect(c.detail).toMatch(/clock is (599|600|601)s behind the server's/);
    expect(c.detail).toMatch(/NTP/);
  });

  it('blocked IP: names the IP allowlist, exit 6', async () => {
    const sb = await sandbox({ allowIps: ['10.9.9.9'] });
    const r = await doctor(sb);
    expect(r.verdict).toBe('refused');
    const c = check(r, 'ip')!;
    expect(c.status).toBe('fail');
    expect(c.detail).toMatch(/whitelist/);
    expect(c.detail).toContain('IP address is not whitelisted.');
  });

  it('nothing listening: unreachable, exit 6', async () => {
    const sb = await sandbox();
    const url = sb.url;
    await sb.close();
    const r = await doctor({ url });
    expect(r.verdict).toBe('unreachable');
    expect(doctorExitCode(r)).toBe(6);
    expect(check(r, 'reachable')!.detail).toMatch(/connection refused/);
  });

  it('configuration missing: lists what, exit 2, no network', async () => {
    const r = await runDoctor({ baseUrl: undefined, accessKey: 'a', secretKey: undefined, current: DEFAULTS });
    expect(r.verdict).toBe('missing_configuration');
    expect(doctorExitCode(r)).toBe(2);
    expect(check(r, 'configuration')!.detail).toBe(
      'missing ALLIANCE_BASE_URL, ALLIANCE_SECRET_KEY: set them in the environment (or --base-url, --access-key, --secret-key)',
    );
  });

  it('a server that signs POST bodies some other way: GET passes, POST refused in every encoding, exit 6', async () => {
    const sb = await sandbox();
    // A proxy in front that tampers with POST bodies is indistinguishable for the client; here: a wrong secret only for POSTs.
    const { createServer } = await import('node:http');
    const proxy = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      let body = Buffer.concat(chunks).toString();
      if (req.method === 'POST') body = body.replace('"order_id"', '"order_id" ');
      const r = await fetch(`${sb.url}${req.url}`, {
        method: req.method!,
        headers: Object.fromEntries(Object.entries(req.headers).filter(([k]) => !['host', 'content-length', 'connection'].includes(k))) as Record<string, string>,
        ...(req.method === 'POST' ? { body } : {}),
      });
      const text = await r.text();
      res.writeHead(r.status, { 'content-type': 'application/json', date: r.headers.get('date') ?? '' });
      res.end(text);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    try {
      const r = await doctor({ url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` });
      expect(r.verdict).toBe('refused');
      expect(check(r, 'credentials')!.status).toBe('pass');
      expect(check(r, 'body_encoding')).toMatchObject({ status: 'fail' });
      expect(check(r, 'body_encoding')!.detail).toMatch(/refused in every body encoding/);
    } finally {
      proxy.closeAllConnections();
      proxy.close();
    }
  });
});

const haveOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('TLS', () => {
  it.skipIf(!haveOpenssl)('an https URL with a self-signed certificate: the TLS check fails naming it, exit 6', async () => {
    const dir = tmpDir('doctor-tls-');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=localhost'],
      { stdio: 'ignore' },
    );
    expect(existsSync(path.join(dir, 'cert.pem'))).toBe(true);
    const srv = createHttpsServer({ key: readFileSync(path.join(dir, 'key.pem')), cert: readFileSync(path.join(dir, 'cert.pem')) }, (_q, s) => s.end('{}'));
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const r = await doctor({ url: `https://localhost:${(srv.address() as AddressInfo).port}` });
    expect(r.verdict).toBe('unreachable');
    expect(doctorExitCode(r)).toBe(6);
    const c = check(r, 'tls')!;
    expect(c.status).toBe('fail');
    expect(c.detail).toMatch(/certificate is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT/);
  });
});

describe('payouts doctor (the command)', () => {
  const env = (sb: { url: string }, over: Record<string, string> = {}) => ({
    ALLIANCE_BASE_URL: sb.url,
    ALLIANCE_ACCESS_KEY: KEYS.accessKey,
    ALLIANCE_SECRET_KEY: KEYS.secretKey,
    ...over,
  });

  it('healthy: exit 0, prints the settings as flags and env vars, never a key', async () => {
    const sb = await sandbox();
    const r = await cli(['doctor'], { env: env(sb) });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain('[ok]   credentials');
    expect(r.stdout).toContain('flags: --get-body-mode empty --json-escape none --timestamp-unit ms --no-mobile-as-number');
    expect(r.stdout).toContain('env:   ALLIANCE_GET_BODY=empty ALLIANCE_JSON_ESCAPE=none ALLIANCE_TIMESTAMP_UNIT=ms ALLIANCE_MOBILE_AS_NUMBER=false');
    expect(r.stdout).toContain('Ready: a payroll can run with the current settings.');
    expectNoSecrets(r.stdout + r.stderr);
  });

  it('a {}-only server with --json: exit 2, the setting to change, and the env var it reads back works', async () => {
    const sb = await sandbox({ getBodyMode: '{}', reencode: 'php' });
    const r = await cli(['doctor', '--json'], { env: env(sb) });
    expect(r.code, r.stderr).toBe(2);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ verdict: 'settings_differ', exit_code: 2, changed: ['getBodyMode', 'escape'] });
    expect(j.settings).toEqual({ get_body_mode: '{}', json_escape: 'php', timestamp_unit: 'ms', mobile_as_number: false });
    expect(j.env).toEqual({ ALLIANCE_GET_BODY: '{}', ALLIANCE_JSON_ESCAPE: 'php', ALLIANCE_TIMESTAMP_UNIT: 'ms', ALLIANCE_MOBILE_AS_NUMBER: 'false' });
    expectNoSecrets(r.stdout + r.stderr);
    // The printed environment, applied, makes doctor and a real command pass.
    const fixed = await cli(['doctor'], { env: env(sb, j.env) });
    expect(fixed.code, fixed.stdout).toBe(0);
    const balance = await cli(['balance'], { env: env(sb, j.env) });
    expect(balance.code, balance.stderr).toBe(0);
    // The printed flags work the same way.
    const flags = await cli(['doctor', '--get-body-mode', '{}', '--json-escape', 'php'], { env: env(sb) });
    expect(flags.code, flags.stdout).toBe(0);
  });

  it('seconds and mobile-as-number servers: ALLIANCE_TIMESTAMP_UNIT and ALLIANCE_MOBILE_AS_NUMBER read from the environment', async () => {
    const sb = await sandbox({ timestampUnit: 's', requireMobileNumber: true });
    const r = await cli(['doctor', '--probe-initiate', '--json'], { env: env(sb) });
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).env).toMatchObject({ ALLIANCE_TIMESTAMP_UNIT: 's', ALLIANCE_MOBILE_AS_NUMBER: 'true' });
    const fixed = await cli(['doctor', '--probe-initiate'], { env: env(sb, { ALLIANCE_TIMESTAMP_UNIT: 's', ALLIANCE_MOBILE_AS_NUMBER: 'true' }) });
    expect(fixed.code, fixed.stdout).toBe(0);
    const bad = await cli(['doctor'], { env: env(sb, { ALLIANCE_MOBILE_AS_NUMBER: 'maybe' }) });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--mobile-as-number (ALLIANCE_MOBILE_AS_NUMBER) must be true or false; got "maybe"');
  });

  it('wrong key: exit 6 with a clear message and no secret anywhere in the output', async () => {
    const sb = await sandbox();
    const wrong = 'WRONG-secret-7d1e0c9a';
    const r = await cli(['doctor'], { env: env(sb, { ALLIANCE_SECRET_KEY: wrong }) });
    expect(r.code).toBe(6);
    expect(r.stdout).toContain('[FAIL] credentials');
    expect(r.stdout).toContain('Not ready: the API refuses this machine');
    expect(r.stdout + r.stderr).not.toContain(wrong);
    expectNoSecrets(r.stdout + r.stderr);
  });

  it('blocked IP: exit 6 naming the whitelist', async () => {
    const sb = await sandbox({ allowIps: ['10.9.9.9'] });
    const r = await cli(['doctor'], { env: env(sb) });
    expect(r.code).toBe(6);
    expect(r.stdout).toMatch(/\[FAIL\] ip .*whitelist/);
  });

  it('no configuration: exit 2 naming the variables', async () => {
    const r = await cli(['doctor'], { env: {} });
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('missing ALLIANCE_BASE_URL, ALLIANCE_ACCESS_KEY, ALLIANCE_SECRET_KEY');
  });
});
