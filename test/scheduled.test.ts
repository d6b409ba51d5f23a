/**
 * Issue 12: scheduled payroll. An inbox watcher pays dropped files one at a time and moves them with their
 * reports; a configuration file holding the secret must be readable by its owner only.
 */
import { readFileSync, chmodSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDb, type TestDb } from './helpers/db.js';
import { clientFor, quietLogger, sandbox, tmpDir } from './helpers/env.js';
import { runBatch, type RunOptions } from '../src/engine/run.js';
import { destinationFor, watchInbox, type WatchEvent } from '../src/engine/watch.js';
import { loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import type { AllianceClient } from '../src/alliance/client.js';
import type { Sandbox } from '../src/sandbox/server.js';

const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount';
const FAST: Partial<RunOptions> = {
  yes: true,
  rate: 500,
  concurrency: 4,
  pollIntervalMs: 20,
  pollMaxIntervalMs: 50,
  pollTimeoutMs: 10_000,
  requestTimeoutMs: 2000,
  leaseMs: 5000,
  ambiguousGraceMs: 200,
  retry: { retries: 1, baseMs: 5, maxMs: 20 },
};

describe('payouts watch: an inbox paid file by file', () => {
  let db: TestDb;
  let sb: Sandbox;
  let client: AllianceClient;
  beforeAll(async () => {
    db = await freshDb('pglite');
    sb = await sandbox({ settleMs: 20 });
    client = clientFor(sb);
  });
  afterAll(async () => {
    await client?.close();
    await sb?.close();
    await db?.close();
  });

  const runFile = (c: AllianceClient) => async (o: { batch: string; csv?: string; reportDir: string; beforeSend?: RunOptions['beforeSend'] }) => {
    const r = await runBatch({ ...FAST, batch: o.batch, csvPath: o.csv, reportDir: o.reportDir, defaultUserId: 'M1', beforeSend: o.beforeSend }, { db: db.knex, client: c, logger: quietLogger });
    return { exitCode: r.exitCode, message: r.message };
  };

  it('waits until a file stops growing, pays it, and moves it to done/ with its reports; a refused file goes to failed/', async () => {
    const inbox = tmpDir('payouts-inbox-');
    const lines = Array.from({ length: 4 }, (_, i) => `P ${i},p${i}@example.com,9876543210,A,IMPS,${6600000 + i}1,B,SBIN0000691,${100 + i}`);
    // Being copied in: half now, the rest in a moment.
    writeFileSync(path.join(inbox, 'nov-payroll.csv'), [HEADER, ...lines.slice(0, 2)].join('\n') + '\n');
    writeFileSync(path.join(inbox, 'broken.csv'), 'this is not a payroll file\n');
    const events: WatchEvent[] = [];
    setTimeout(() => writeFileSync(path.join(inbox, 'nov-payroll.csv'), [HEADER, ...lines].join('\n') + '\n'), 150);
    const res = await watchInbox({ inbox, once: true, stableMs: 400, pollMs: 100, runFile: runFile(client), onEvent: (e) => events.push(e) });
    expect(res.processed.map((p) => [p.file, p.movedTo]).sort()).toEqual([
      ['broken.csv', 'failed'],
      ['nov-payroll.csv', 'done'],
    ]);
    // It was paid whole: all four rows, not the half that was there first.
    expect(sb.ledger()).toHaveLength(4);
    expect(readdirSync(path.join(inbox, 'done')).sort()).toEqual(['nov-payroll.csv', 'nov-payroll.reports']);
    expect(readdirSync(path.join(inbox, 'done', 'nov-payroll.reports')).sort()).toEqual(['nov-payroll.csv', 'nov-payroll.html', 'nov-payroll.json', 'nov-payroll.xlsx']);
    expect(readdirSync(path.join(inbox, 'failed'))).toContain('broken.csv');
    // Nothing was stored for the refused file, so there is no report: why.txt says what was wrong.
    const why = readFileSync(path.join(inbox, 'failed', 'broken.reports', 'why.txt'), 'utf8');
    expect(why).toMatch(/^broken\.csv: not paid by the inbox \(exit 2\)\n\n.*header/s);
    expect(readdirSync(path.join(inbox, 'processing')).filter((f) => f.endsWith('.csv'))).toEqual([]);
    expect(events.some((e) => e.type === 'waiting' && e.file === 'nov-payroll.csv')).toBe(true);
  });

  it('a file refused twice under the same name: both copies and both reasons are kept (the second as -2), the watcher goes on', async () => {
    const inbox = tmpDir('payouts-inbox-');
    for (const [round, text] of [
      [1, 'not a payroll, first try\n'],
      [2, 'still not a payroll, second try\n'],
    ] as const) {
      writeFileSync(path.join(inbox, 'jan.csv'), text);
      const res = await watchInbox({ inbox, once: true, stableMs: 0, pollMs: 50, runFile: runFile(client) });
      expect(res.processed, `round ${round}`).toEqual([{ file: 'jan.csv', batch: 'jan', exitCode: 2, movedTo: 'failed' }]);
    }
    expect(readdirSync(path.join(inbox, 'failed')).sort()).toEqual(['jan-2.csv', 'jan-2.reports', 'jan.csv', 'jan.reports']);
    expect(readFileSync(path.join(inbox, 'failed', 'jan.csv'), 'utf8')).toMatch(/first try/);
    expect(readFileSync(path.join(inbox, 'failed', 'jan-2.csv'), 'utf8')).toMatch(/second try/);
    expect(readFileSync(path.join(inbox, 'failed', 'jan-2.reports', 'why.txt'), 'utf8')).toMatch(/^jan\.csv: not paid by the inbox \(exit 2\)/);
  });

  it('a run that stops early stays in processing/ and is finished first on the next round; one watcher per inbox', async () => {
    const inbox = tmpDir('payouts-inbox-');
    writeFileSync(path.join(inbox, 'dec.csv'), [HEADER, `Q 1,q@example.com,9876543210,A,IMPS,77788899901,B,SBIN0000691,500`].join('\n') + '\n');
    const down = clientFor({ url: 'http://127.0.0.1:9' });
    const first = await watchInbox({ inbox, once: true, stableMs: 0, pollMs: 50, runFile: runFile(down) });
    await down.close();
    expect(first.processed).toEqual([{ file: 'dec.csv', batch: 'dec', exitCode: 6, movedTo: 'processing' }]);
    expect(existsSync(path.join(inbox, 'processing', 'dec.csv'))).toBe(true);
    // Two watchers at once: the second is refused.
    const stop = new AbortController();
    const holder = watchInbox({ inbox, stableMs: 0, pollMs: 50, retryMs: 0, stopSignal: stop.signal, runFile: runFile(client) });
    await new Promise((r) => setTimeout(r, 100));
    await expect(watchInbox({ inbox, once: true, runFile: runFile(client) })).rejects.toThrow(/the inbox \(its processing folder\) \S+ is already open in this process/);
    stop.abort();
    const second = await holder;
    expect(second.processed[0]).toMatchObject({ file: 'dec.csv', exitCode: 0, movedTo: 'done' });
  });

  it('maps exit codes to where a file goes', () => {
    expect([0, 1, 2, 3, 4, 5, 6].map(destinationFor)).toEqual(['done', 'done', 'failed', 'failed', 'processing', 'processing', 'processing']);
  });
});

describe('a configuration file', () => {
  const dir = tmpDir('payouts-config-');
  it('is read under the environment (flags win, then the environment, then the file)', () => {
    const f = path.join(dir, 'payouts.config.json');
    writeFileSync(f, JSON.stringify({ ALLIANCE_BASE_URL: 'https://file.example', ALLIANCE_ACCESS_KEY: 'AK', ALLIANCE_SECRET_KEY: 'SK', PAYOUTS_TIME_ZONE: 'UTC' }));
    chmodSync(f, 0o600);
    const c = loadConfig({ config: f, timeZone: 'Asia/Kolkata' }, { ALLIANCE_BASE_URL: 'https://env.example' });
    expect(c.api.baseUrl).toBe('https://env.example');
    expect(c.api.accessKey).toBe('AK');
    expect(c.api.secretKey).toBe('SK');
    expect(c.timeZone).toBe('Asia/Kolkata');
    // PAYOUTS_CONFIG names it too; .env syntax works the same.
    const e = path.join(dir, 'payouts.env');
    writeFileSync(e, '# scheduled payroll\nexport ALLIANCE_BASE_URL="https://dotenv.example"\nALLIANCE_SECRET_KEY=abc # the key\n');
    chmodSync(e, 0o600);
    expect(loadConfig({}, { PAYOUTS_CONFIG: e }).api).toMatchObject({ baseUrl: 'https://dotenv.example', secretKey: 'abc' });
  });

  it('holding the secret, it is refused when group or others can read it, naming the fix', () => {
    const f = path.join(dir, 'open.json');
    writeFileSync(f, JSON.stringify({ ALLIANCE_SECRET_KEY: 'SK' }));
    chmodSync(f, 0o644);
    expect(() => loadConfig({ config: f }, {})).toThrow(ConfigError);
    expect(() => loadConfig({ config: f }, {})).toThrow(/chmod 600/);
    chmodSync(f, 0o640);
    expect(() => loadConfig({ config: f }, {})).toThrow(/its group/);
    // Without a secret in it, a readable file is fine.
    const g = path.join(dir, 'plain.json');
    writeFileSync(g, JSON.stringify({ PAYOUTS_TIME_ZONE: 'UTC' }));
    chmodSync(g, 0o644);
    expect(loadConfig({ config: g }, {}).timeZone).toBe('UTC');
  });

  it('names a typo and a missing file', () => {
    const f = path.join(dir, 'typo.json');
    writeFileSync(f, JSON.stringify({ ALLIANCE_BASEURL: 'x', BASE_URL: 'y' }));
    // A misspelt ALLIANCE_ key was once taken silently (issue 18): now the first key refused, with its nearest name.
    expect(() => loadConfig({ config: f }, {})).toThrow(/unknown setting "ALLIANCE_BASEURL": did you mean ALLIANCE_BASE_URL\?/);
    writeFileSync(f, JSON.stringify({ BASE_URL: 'y' }));
    expect(() => loadConfig({ config: f }, {})).toThrow(/unknown setting "BASE_URL": did you mean ALLIANCE_BASE_URL\?/);
    expect(() => loadConfig({ config: path.join(dir, 'nope.json') }, {})).toThrow(/does not exist/);
  });
});
