/**
 * Issue 19: `payouts console` as a person starts it: the built command serves the console over its data
 * directory (users from `payouts users add`), refuses what has no session, signs a user in, and stops on SIGTERM.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN, runCli } from './helpers/cli.js';
import { KEYS, sandbox, tmpDir } from './helpers/env.js';
import type { Sandbox } from '../src/sandbox/server.js';

describe('payouts console, the command', () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await sandbox({ settleMs: 20 });
  });
  afterAll(async () => sb?.close());

  it('listens on the address given, needs a session, signs in a user of `users add`, stops on SIGTERM', { timeout: 120_000 }, async () => {
    const root = tmpDir('payouts-console-cmd-');
    const env = { ...process.env, ALLIANCE_BASE_URL: sb.url, ALLIANCE_ACCESS_KEY: KEYS.accessKey, ALLIANCE_SECRET_KEY: KEYS.secretKey, PAYOUTS_DATA_DIR: path.join(root, 'data') } as Record<string, string>;
    const add = await runCli(['users', 'add', 'ravi', '--role', 'admin', '--password-stdin'], { env, cwd: root, input: 'ravi-secret-1\n' });
    expect(add.code, add.stderr).toBe(0);

    const child = spawn(process.execPath, [MAIN, 'console', '--port', '0', '--json', '--report-dir', path.join(root, 'reports')], { env, cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /"listening":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.on('exit', () => reject(new Error(`console exited: ${out}\n${err}`)));
    });

    expect((await fetch(`${url}/api/batches`)).status).toBe(401);
    const wrong = await fetch(`${url}/api/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ravi', password: 'not-the-password' }) });
    expect(wrong.status).toBe(401);
    const ok = await fetch(`${url}/api/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ravi', password: 'ravi-secret-1' }) });
    expect(ok.status).toBe(200);
    const { csrf_token } = (await ok.json()) as { csrf_token: string };
    expect(csrf_token).toMatch(/\S{16,}/);
    const cookie = (ok.headers.get('set-cookie') ?? '').split(';')[0]!;
    expect(cookie).toMatch(/^payouts_session=/);
    const list = await fetch(`${url}/api/batches`, { headers: { cookie } });
    expect(list.status).toBe(200);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toMatch(/"stopped":true/);
  });
});
