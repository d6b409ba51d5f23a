import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { MAIN, runCli } from './helpers/cli.js';

describe('payouts sandbox in one shell, payouts balance in another', () => {
  it('serves the API on the printed URL with the given keys and balance', async () => {
    const child = spawn(process.execPath, [MAIN, 'sandbox', '--port', '0', '--access-key', 'K-sb', '--secret-key', 'S-sb', '--balance', '1111.11'], {
      env: { PATH: process.env['PATH'] ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /listening on (http:\/\/\S+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        child.on('close', () => reject(new Error(`sandbox exited: ${out}`)));
      });
      const ok = await runCli(['balance'], { env: { ALLIANCE_BASE_URL: url, ALLIANCE_ACCESS_KEY: 'K-sb', ALLIANCE_SECRET_KEY: 'S-sb' } });
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toContain('₹1,111.11');
      const bad = await runCli(['balance'], { env: { ALLIANCE_BASE_URL: url, ALLIANCE_ACCESS_KEY: 'K-sb', ALLIANCE_SECRET_KEY: 'nope' } });
      expect(bad.code).toBe(6); // credentials refused
      expect(bad.stderr).toMatch(/401/);
    } finally {
      child.kill('SIGTERM');
    }
  });
});
