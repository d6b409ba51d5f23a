/**
 * Issue 20 points 4 and 6: what the operator trips over at the end of a run. A next step in the last line
 * (report --fixable, top up then resume, --retry-review); no table of zeros after a "no"; the "stopped"
 * notification after a SIGTERM; a why.txt that says when its file was paid later; a lock held since a time
 * in India time like everything else.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN, runCli, testDataHome } from './helpers/cli.js';
import { freshDb } from './helpers/db.js';
import { clientFor, KEYS, quietLogger, sandbox, tmpDir } from './helpers/env.js';
import { decideExit } from '../src/engine/exit.js';
import { runBatch, type RunOptions } from '../src/engine/run.js';
import { watchInbox } from '../src/engine/watch.js';
import { lockDataDir } from '../src/db/dataDirLock.js';
import { REPORT_STATUSES, type ReportStatus } from '../src/states.js';
import type { Sandbox } from '../src/sandbox/server.js';

const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount';
const rows = (n: number, from: number) => Array.from({ length: n }, (_, i) => `O ${from + i},o${from + i}@example.com,98765${String(70000 + from + i)},A,IMPS,${8300000 + from + i}1,B,SBIN0000691,${400 + from + i}`);
const FAST: Partial<RunOptions> = { yes: true, rate: 500, pollIntervalMs: 20, pollMaxIntervalMs: 50, pollTimeoutMs: 5000, requestTimeoutMs: 2000, leaseMs: 5000, ambiguousGraceMs: 100, retry: { retries: 1, baseMs: 5, maxMs: 20 } };

function counts(over: Partial<Record<ReportStatus, number>>): Record<ReportStatus, number> {
  return { ...(Object.fromEntries(REPORT_STATUSES.map((s) => [s, 0])) as Record<ReportStatus, number>), ...over };
}

describe('the last line says what to do next', () => {
  const end = { batch: 'nov', heldByOthers: 0, cancelled: false, collisions: 0 };
  it('rejected, refused or invalid rows: report --fixable, then --revise', () => {
    expect(decideExit({ ...end, counts: counts({ approved: 491, rejected: 10 }) }).message).toBe(
      'finished: 491 paid, 10 not paid (10 rejected). Next: `payouts report nov --fixable` writes the rows to correct, then run them with --revise',
    );
  });
  it('rows needing review: check them, then --retry-review', () => {
    expect(decideExit({ ...end, counts: counts({ approved: 3, needs_review: 1 }) }).message).toMatch(/Next: check the rows needing review .*`payouts resume nov --retry-review`$/);
  });
  it('everything paid: nothing to do', () => {
    expect(decideExit({ ...end, counts: counts({ approved: 3 }) }).message).toBe('finished: all 3 rows paid');
  });
});

describe('at the end of a run, as people and cron see it', () => {
  let sb: Sandbox;
  let hook: Server;
  const received: Record<string, unknown>[] = [];
  let hookUrl = '';
  beforeAll(async () => {
    sb = await sandbox({ settleMs: 20 });
    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        received.push(JSON.parse(body) as Record<string, unknown>);
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
    hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
  });
  afterAll(async () => {
    await sb?.close();
    await new Promise<void>((r) => hook.close(() => r()));
  });
  const env = (s: { url: string }) => ({ ALLIANCE_BASE_URL: s.url, ALLIANCE_ACCESS_KEY: KEYS.accessKey, ALLIANCE_SECRET_KEY: KEYS.secretKey });

  it('a short balance says: top up, then resume', async () => {
    const poor = await sandbox({ settleMs: 20, balancePaise: 100_00n });
    const db = await freshDb('pglite');
    const client = clientFor(poor);
    try {
      const csv = path.join(tmpDir('payouts-op-'), 'short.csv');
      writeFileSync(csv, [HEADER, ...rows(2, 0)].join('\n') + '\n');
      const r = await runBatch({ ...FAST, batch: 'short', csvPath: csv, defaultUserId: 'M1', reportDir: path.join(path.dirname(csv), 'r') }, { db: db.knex, client, logger: quietLogger });
      expect(r.exitCode).toBe(3);
      expect(r.message).toMatch(/short of .* Top up the wallet, then `payouts resume short`$/);
    } finally {
      await client.close();
      await db.close();
      await poor.close();
    }
  });

  it('refused before sending ("no", or no terminal): the summary lists the rows that are there, not a table of zeros', async () => {
    const work = tmpDir('payouts-op-');
    const csv = path.join(work, 'no.csv');
    writeFileSync(csv, [HEADER, ...rows(2, 10)].join('\n') + '\n');
    const r = await runCli(['run', csv, '--user-id', 'M1', '--data-dir', path.join(work, 'data'), '--report-dir', path.join(work, 'r')], { env: env(sb), cwd: work });
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/not_sent\s+2\s+₹/);
    expect(r.stdout).not.toMatch(/^\s+(approved|rejected|pending|sending|failed)\s+0\s/m);
  });

  it('after a SIGTERM the "stopped" notification is delivered', { timeout: 60_000 }, async () => {
    const slow = await sandbox({ settleMs: 60_000 });
    const work = tmpDir('payouts-op-');
    const csv = path.join(work, 'term.csv');
    writeFileSync(csv, [HEADER, ...rows(6, 20)].join('\n') + '\n');
    const child = spawn(process.execPath, [MAIN, 'run', csv, '--user-id', 'M1', '--yes', '--rate', '2', '--concurrency', '1', '--data-dir', path.join(work, 'data'), '--report-dir', path.join(work, 'r'), '--notify-url', hookUrl], {
      env: { PATH: process.env['PATH'] ?? '', HOME: work, XDG_DATA_HOME: testDataHome(), ...env(slow) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    for (let i = 0; i < 200 && slow.ledger().length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGTERM');
    expect(await exited).toBe(4);
    expect(err).not.toMatch(/notification .* was not delivered/);
    const note = received.find((b) => JSON.stringify(b).includes('"term"'));
    expect(note, `${err}\n${JSON.stringify(received)}`).toBeDefined();
    expect(JSON.stringify(note)).toMatch(/stopped/);
    await slow.close();
  });

  it('a refused file paid later under the same name: its why.txt says so', async () => {
    const db = await freshDb('pglite');
    const client = clientFor(sb);
    const inbox = tmpDir('payouts-op-inbox-');
    const runFile = async (o: { batch: string; csv?: string; reportDir: string; beforeSend?: RunOptions['beforeSend'] }) => {
      const r = await runBatch({ ...FAST, batch: o.batch, csvPath: o.csv, reportDir: o.reportDir, defaultUserId: 'M1', beforeSend: o.beforeSend }, { db: db.knex, client, logger: quietLogger });
      return { exitCode: r.exitCode, message: r.message };
    };
    try {
      writeFileSync(path.join(inbox, 'bonus.csv'), 'not a payroll\n');
      await watchInbox({ inbox, once: true, stableMs: 0, pollMs: 20, runFile });
      const why = path.join(inbox, 'failed', 'bonus.reports', 'why.txt');
      expect(readFileSync(why, 'utf8')).toMatch(/^bonus\.csv: not paid by the inbox \(exit 2\)/);
      writeFileSync(path.join(inbox, 'bonus.csv'), [HEADER, ...rows(2, 30)].join('\n') + '\n');
      const res = await watchInbox({ inbox, once: true, stableMs: 0, pollMs: 20, runFile });
      expect(res.processed).toEqual([expect.objectContaining({ file: 'bonus.csv', movedTo: 'done' })]);
      expect(readFileSync(why, 'utf8')).toMatch(/^RESOLVED: bonus\.csv was paid later \(done\/bonus\.csv, \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+05:30\): the refusal below no longer stands\.\n\nbonus\.csv: not paid/);
    } finally {
      await client.close();
      await db.close();
    }
  });

  it('a data directory in use names the time it was taken in India time (+05:30), as everything else', async () => {
    const dir = path.join(tmpDir('payouts-op-lock-'), 'data');
    mkdirSync(dir, { recursive: true });
    const release = await lockDataDir(dir);
    try {
      const r = await runCli(['status', '--data-dir', dir]);
      expect(r.code).toBe(5);
      expect(r.stderr).toMatch(/in use by process \d+ on this machine since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+05:30/);
    } finally {
      release();
    }
  });
});
