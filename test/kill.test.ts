/**
 * Real process kills (issues 3 and 4): the built `payouts` command is killed with SIGKILL at a chosen step
 * (PAYOUTS_CRASH_AT) or at a random moment, then the same command is run again. The sandbox runs here,
 * with order_id de-duplication off, and its ledger is the oracle. On PostgreSQL, several runners share one
 * batch and one of them is killed mid-way.
 */
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, freshDb, type TestDb } from './helpers/db.js';
import { KEYS, sandbox, tmpDir } from './helpers/env.js';
import { MAIN, runCli, type CliResult } from './helpers/cli.js';
import { checkInvariants, writeChaosCsv } from './helpers/oracle.js';
import { openDb } from '../src/db/connect.js';
import { CRASH_POINTS } from '../src/engine/crash.js';
import type { Sandbox } from '../src/sandbox/server.js';

const FULL = process.env['CHAOS_FULL'] === '1';
const KILLS = FULL ? 20 : 3;
const FLAGS = ['--yes', '--rate', '500', '--poll-interval', '50ms', '--ambiguous-grace', '300ms', '--lease', '3s', '--timeout', '500ms', '--poll-timeout', '20s'];

describe.each(BACKENDS)('kill -9 on %s', (kind) => {
  let pg: TestDb | undefined;
  let dir: string;
  beforeAll(async () => {
    dir = tmpDir('payouts-kill-');
    if (kind === 'postgres') pg = await freshDb('postgres');
  });
  afterAll(async () => pg?.close());

  function env(sb: Sandbox, extra: Record<string, string> = {}): Record<string, string> {
    return {
      ALLIANCE_BASE_URL: sb.url,
      ALLIANCE_ACCESS_KEY: KEYS.accessKey,
      ALLIANCE_SECRET_KEY: KEYS.secretKey,
      ...(pg?.url ? { DATABASE_URL: pg.url } : {}),
      ...extra,
    };
  }

  async function oracle(sb: Sandbox, dataDir: string, batch: string, rows: number) {
    const db = pg ?? (await openDb({ dataDir }));
    try {
      return await checkInvariants(db.knex, sb, batch, rows);
    } finally {
      if (!pg) await db.close();
    }
  }

  async function finish(args: string[], e: Record<string, string>): Promise<CliResult> {
    let res: CliResult | undefined;
    for (let i = 0; i < 6; i++) {
      res = await runCli(args, { env: e });
      if (res.code !== 4) return res;
    }
    return res!;
  }

  it(`finishes the batch after a kill -9 at each step, paying nobody twice (${KILLS} kills)`, { timeout: 600_000 }, async () => {
    for (let k = 0; k < KILLS; k++) {
      const point = CRASH_POINTS[k % CRASH_POINTS.length]!;
      const nth = 1 + (k % 4);
      const sb = await sandbox({ seed: 100 + k, dedupOrderIds: false, settleMs: 40, faults: k % 2 ? { error5xxAfterRate: 0.15, dropAfterRate: 0.1 } : {} });
      try {
        const batch = `${kind}-kill-${k}`;
        const dataDir = path.join(dir, `data-${k}`);
        const csv = path.join(dir, `${batch}.csv`);
        const rows = writeChaosCsv(csv, 12, k);
        const args = ['run', csv, '--batch', batch, '--user-id', 'u', '--data-dir', dataDir, '--report-dir', path.join(dir, 'reports'), ...FLAGS];
        const killed = await runCli(args, { env: env(sb, { PAYOUTS_CRASH_AT: `${point}:${nth}` }) });
        expect(killed.signal, `run ${k} (${point}:${nth}) should have been killed: ${killed.stderr}`).toBe('SIGKILL');
        const done = await finish(args, env(sb));
        expect(done.code, done.stderr).toBe(1); // the chaos file has invalid and rejected rows
        const report = await oracle(sb, dataDir, batch, rows);
        expect(report.doublePaid, `kill ${k} at ${point}:${nth}`).toEqual([]);
        expect(report.lost).toEqual([]);
        expect(report.notFinal).toEqual([]);
        expect(report.disagreements).toEqual([]);
      } finally {
        await sb.close();
      }
    }
  });

  it.runIf(kind === 'pglite')('refuses a second process on the same embedded database with a clear message', async () => {
    const sb = await sandbox({ seed: 7, settleMs: 60_000 });
    try {
      const dataDir = path.join(dir, 'shared');
      const csv = path.join(dir, 'shared.csv');
      writeChaosCsv(csv, 6, 1);
      const args = ['run', csv, '--user-id', 'u', '--data-dir', dataDir, '--report-dir', path.join(dir, 'reports'), ...FLAGS];
      const first = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env(sb) }, stdio: 'ignore' });
      // Wait until the first one holds the database (its payouts reach the sandbox).
      for (let i = 0; i < 200 && sb.ledger().length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      const second = await runCli(['status', '--data-dir', dataDir], { env: env(sb) });
      first.kill('SIGKILL');
      expect(second.code).not.toBe(0);
      expect(second.stderr).toMatch(/in use by process .*PostgreSQL/s);
    } finally {
      await sb.close();
    }
  });

  it.runIf(kind === 'postgres')('several runners share a batch; killing one mid-way pays nobody twice', { timeout: 300_000 }, async () => {
    const sb = await sandbox({ seed: 11, dedupOrderIds: false, settleMs: 40 });
    try {
      const batch = 'shared-batch';
      const csv = path.join(dir, `${batch}.csv`);
      const rows = writeChaosCsv(csv, 80, 11);
      const base = ['--data-dir', path.join(dir, 'unused'), '--report-dir', path.join(dir, 'reports')];
      // Read the batch in without paying: no terminal and no --yes is refused before sending (exit 3).
      const read = await runCli(['run', csv, '--batch', batch, '--user-id', 'u', ...base, ...FLAGS.filter((f) => f !== '--yes')], { env: env(sb) });
      expect(read.code, read.stderr).toBe(3);
      expect(sb.ledger()).toHaveLength(0);
      // Three runners at 40 requests/s each on the same batch.
      const slow = FLAGS.map((f) => (f === '500' ? '40' : f));
      const runners = [0, 1, 2].map(() => {
        const child = spawn(process.execPath, [MAIN, 'resume', batch, ...base, ...slow], { env: { ...process.env, ...env(sb) }, stdio: 'ignore' });
        return { child, exit: new Promise<number | null>((r) => child.on('close', (code) => r(code))) };
      });
      for (let i = 0; i < 400 && sb.ledger().length < 15; i++) await new Promise((r) => setTimeout(r, 25));
      runners[0]!.child.kill('SIGKILL');
      const codes = await Promise.all(runners.map((r) => r.exit));
      expect(codes[0]).toBeNull();
      const last = await finish(['resume', batch, ...base, ...FLAGS], env(sb));
      expect(last.code, last.stderr).toBe(1);
      const report = await checkInvariants(pg!.knex, sb, batch, rows);
      expect(report.doublePaid).toEqual([]);
      expect(report.lost).toEqual([]);
      expect(report.notFinal).toEqual([]);
      expect(report.disagreements).toEqual([]);
      // Every valid row was paid once, by whichever runner claimed it.
      const paid = await pg!.knex('payout_rows').where({ batch }).whereIn('state', ['approved', 'rejected']).count('* as n').first();
      expect(Number((paid as { n: string }).n)).toBe(sb.ledger().length);
    } finally {
      await sb.close();
    }
  });
});
