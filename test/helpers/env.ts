import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { AllianceClient } from '../../src/alliance/client.js';
import { startSandbox, type Sandbox, type SandboxOptions } from '../../src/sandbox/server.js';

export const KEYS = { accessKey: 'test-access-key', secretKey: 'test-secret-key-0123456789' };

export async function sandbox(over: Partial<SandboxOptions> = {}): Promise<Sandbox> {
  return startSandbox({ ...KEYS, balancePaise: 100_000_000_00n, settleMs: 50, seed: 1, ...over });
}

/** A logger that keeps tests quiet; set LOG=debug to see it. */
export const quietLogger = process.env['LOG_FILE']
  ? pino({ level: process.env['LOG'] ?? 'debug' }, pino.destination({ dest: process.env['LOG_FILE'], sync: true }))
  : pino({ level: process.env['LOG'] ?? 'silent' });

export function clientFor(sb: { url: string }, over: Partial<ConstructorParameters<typeof AllianceClient>[0]> = {}): AllianceClient {
  return new AllianceClient({ baseUrl: sb.url, ...KEYS, timeoutMs: 2000, logger: quietLogger, ...over });
}


export function tmpDir(prefix = 'payouts-test-'): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}
