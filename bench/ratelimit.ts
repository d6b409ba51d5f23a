/**
 * The rate limit measured at the far side (issue 10). Not a test: numbers for BENCHMARKS.md.
 *
 *   npm run bench:rate                                  # every scenario
 *   node dist/bench/ratelimit.js rate-50 webhooks       # only these
 *   DATABASE_URL=postgres://… npm run bench:rate        # PostgreSQL scenarios too (two runners, rate-1000)
 *
 * The API (the sandbox) runs in its own process as a server enforcing R: it timestamps every request when
 * it arrives (before any processing) and refuses (429) any beyond R in a sliding second, with its own
 * limiter and clock, sharing no code with the client's rate gate. Reported
 * per scenario: the most arrivals in any one-second window, 429s, requests per payout, the request rate
 * achieved while there was work (from the first initiate to the last, every request in between), and the
 * wall time against 2N/R + settle.
 *
 * Scenarios:
 *   rate-50, rate-200   one runner, PGlite (in-process), polling, settle 300 ms
 *   rate-1000           one runner, PostgreSQL, polling, settle 300 ms
 *   two-runners         two runners with --rate R each on one PostgreSQL batch (R = 100)
 *   webhooks            one runner, R = 200, payouts settle 30 s after creation, webhooks on, polling fallback 120 s
 *   webhooks-20s        one runner, R = 50, payouts settle 20 s after creation, webhooks on, the default poll
 *                       settings (--poll-interval 2s, --webhook-wait 30s): issue 20 point 7, at most 2.3 requests per payout
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import knexFactory from 'knex';
import { pino } from 'pino';
import { AllianceClient } from '../src/alliance/client.js';
import { openDb, type Db } from '../src/db/connect.js';
import { ingestFile } from '../src/engine/ingest.js';
import { runBatch, type RunOptions } from '../src/engine/run.js';
import { maxInWindow } from './meter.js';
import { spawn } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const KEYS = { accessKey: 'bench-access', secretKey: 'bench-secret-0123456789' };
const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount';
const logger = pino({ level: 'silent' });
const PG = process.env['DATABASE_URL'] ?? process.env['TEST_DATABASE_URL'];

function csv(dir: string, name: string, n: number): string {
  const f = path.join(dir, `${name}.csv`);
  const lines = [HEADER];
  for (let i = 0; i < n; i++) lines.push(`P ${i},p${i}@example.com,9876543210,A,IMPS,${(10_000_000 + i) * 10 + 1},B,SBIN0000691,${100 + (i % 900)}`);
  writeFileSync(f, lines.join('\n') + '\n');
  return f;
}

type BenchDb = Db & { drop?: () => Promise<void>; url?: string };

async function freshPg(): Promise<BenchDb> {
  const name = `bench_${randomBytes(5).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: PG!, pool: { min: 0, max: 1 } });
  await admin.raw(`CREATE DATABASE ${name}`);
  await admin.destroy();
  const u = new URL(PG!);
  u.pathname = `/${name}`;
  const db = await openDb({ databaseUrl: u.toString(), poolMax: 40 });
  return {
    ...db,
    url: u.toString(),
    drop: async () => {
      await db.close();
      const a = knexFactory({ client: 'pg', connection: PG!, pool: { min: 0, max: 1 } });
      await a.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.destroy();
    },
  };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

interface Scenario {
  name: string;
  rate: number;
  payouts: number;
  settleMs: number;
  backend: 'pglite' | 'postgres';
  runners: number;
  concurrency: number;
  webhooks: boolean;
  /** The engine's default poll settings instead of the scenario's. */
  defaultPolls?: boolean;
}

const SCENARIOS: Scenario[] = [
  { name: 'rate-50', rate: 50, payouts: 500, settleMs: 300, backend: 'pglite', runners: 1, concurrency: 8, webhooks: false },
  { name: 'rate-200', rate: 200, payouts: 2000, settleMs: 300, backend: 'pglite', runners: 1, concurrency: 16, webhooks: false },
  { name: 'rate-1000', rate: 1000, payouts: 8000, settleMs: 300, backend: 'postgres', runners: 1, concurrency: 48, webhooks: false },
  { name: 'two-runners', rate: 100, payouts: 1000, settleMs: 300, backend: 'postgres', runners: 2, concurrency: 8, webhooks: false },
  { name: 'webhooks', rate: 200, payouts: 3000, settleMs: 30_000, backend: 'pglite', runners: 1, concurrency: 16, webhooks: true },
  { name: 'webhooks-20s', rate: 50, payouts: 1000, settleMs: 20_000, backend: 'pglite', runners: 1, concurrency: 8, webhooks: true, defaultPolls: true },
];

/** Starts the sandbox, enforcing the limit and timestamping arrivals, in its own process (far-side.ts). */
async function farSide(cfg: Record<string, unknown>): Promise<{ api: string; info: string; stop: () => void }> {
  const child = spawn(process.execPath, [path.join(path.dirname(fileURLToPath(import.meta.url)), 'far-side.js')], {
    env: { ...process.env, FAR_SIDE: JSON.stringify({ ...cfg, ...KEYS }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl !== -1) resolve(out.slice(0, nl));
    });
    child.on('exit', (code) => reject(new Error(`far side exited ${code}`)));
  });
  const urls = JSON.parse(line) as { api: string; info: string };
  return { ...urls, stop: () => child.kill('SIGTERM') };
}

async function getJson<T>(url: string): Promise<T> {
  return (await (await fetch(url)).json()) as T;
}

async function run(s: Scenario, dir: string): Promise<Record<string, unknown>> {
  const port = s.webhooks ? await freePort() : 0;
  const token = randomBytes(16).toString('hex');
  const far = await farSide({ limit: s.rate, settleMs: s.settleMs, ...(s.webhooks ? { webhookUrl: `http://127.0.0.1:${port}/alliance/webhook/${token}` } : {}) });
  const dbs: BenchDb[] = [];
  const clients: AllianceClient[] = [];
  try {
    for (let i = 0; i < s.runners; i++) {
      dbs.push(s.backend === 'postgres' ? await freshPgOnce(dbs) : await openDb({ dataDir: path.join(dir, `${s.name}-db`) }));
      clients.push(new AllianceClient({ baseUrl: far.api, ...KEYS, timeoutMs: 30_000, logger }));
    }
    const file = csv(dir, s.name, s.payouts);
    const batch = s.name;
    await ingestFile(dbs[0]!.knex, { batch, csvPath: file, defaultUserId: 'M1' });
    const opts: RunOptions = {
      batch,
      yes: true,
      rate: s.rate,
      concurrency: s.concurrency,
      reportDir: path.join(dir, 'reports'),
      ...(s.defaultPolls ? {} : { pollIntervalMs: s.webhooks ? 120_000 : 1000, pollMaxIntervalMs: s.webhooks ? 300_000 : 5000 }),
      pollTimeoutMs: 600_000,
      ...(s.webhooks ? { webhooks: { port, token } } : {}),
    };
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const t0 = performance.now();
    const results = await Promise.all(dbs.map((db, i) => runBatch(opts, { db: db.knex, client: clients[i]!, logger })));
    const wall = (performance.now() - t0) / 1000;
    loop.disable();
    const seen = await getJson<{
      arrivals: number[];
      log: { at: number; what: string }[];
      refused: number;
      payouts: number;
      max_executions: number;
      loop_delay_ms: { p50: number; p99: number; max: number };
    }>(far.info);
    const ledger = seen;
    const arrivals = seen.arrivals.sort((a, b) => a - b);
    // BENCH_DUMP=dir keeps every arrival (time and request) of each scenario for a closer look.
    if (process.env['BENCH_DUMP']) writeFileSync(path.join(process.env['BENCH_DUMP'], `${s.name}.arrivals.json`), JSON.stringify(seen.log));
    const busy = busyRate(seen.log);
    const ideal = (2 * s.payouts) / s.rate + s.settleMs / 1000;
    return {
      scenario: s.name,
      backend: s.backend,
      runners: s.runners,
      rate: s.rate,
      payouts: s.payouts,
      exit_codes: results.map((r) => r.exitCode),
      paid_once: ledger.max_executions === 1 && ledger.payouts === s.payouts,
      max_in_1s_window: maxInWindow(arrivals),
      refused_429: seen.refused,
      requests: arrivals.length,
      requests_per_payout: +(arrivals.length / s.payouts).toFixed(3),
      achieved_rate_while_busy: +busy.toFixed(1),
      achieved_fraction_of_r: +(busy / s.rate).toFixed(3),
      wall_s: +wall.toFixed(1),
      ideal_2n_over_r_plus_settle_s: +ideal.toFixed(1),
      wall_over_ideal: +(wall / ideal).toFixed(3),
      // Event-loop lateness (ms, p99 / max) of the runner and of the far side: where stalls came from.
      runner_loop_delay_ms: [+(loop.percentile(99) / 1e6).toFixed(1), +(loop.max / 1e6).toFixed(1)],
      far_loop_delay_ms: [+seen.loop_delay_ms.p99.toFixed(1), +seen.loop_delay_ms.max.toFixed(1)],
    };
  } finally {
    for (const c of clients) await c.close();
    for (const db of dbs) await (db.drop ? db.drop() : db.close());
    far.stop();
  }
}

/** A second PostgreSQL runner opens the first one's database (same batch), not a fresh one. */
async function freshPgOnce(dbs: BenchDb[]): Promise<BenchDb> {
  if (dbs.length === 0) return freshPg();
  return openDb({ databaseUrl: dbs[0]!.url!, poolMax: 40 });
}

/**
 * Requests per second while the runner certainly had work: from the first arrival to the last initiate
 * (every request in between counts, status checks too). After the last initiate the run only waits for
 * settlement, which is the API's time, not the rate limit's.
 */
function busyRate(log: { at: number; what: string }[]): number {
  const sorted = [...log].sort((a, b) => a.at - b.at);
  const isInitiate = (i: number) => sorted[i]!.what.startsWith('POST /api/v1/payout/initiate');
  let first = -1;
  let last = -1;
  for (let i = 0; i < sorted.length; i++) {
    if (!isInitiate(i)) continue;
    if (first === -1) first = i;
    last = i;
  }
  if (last <= first) return 0;
  const span = (sorted[last]!.at - sorted[first]!.at) / 1000;
  return span > 0 ? (last - first) / span : 0;
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const dir = mkdtempSync(path.join(tmpdir(), 'payouts-bench-rate-'));
  try {
    for (const s of SCENARIOS) {
      if (only.length && !only.includes(s.name)) continue;
      if (s.backend === 'postgres' && !PG) {
        console.log(JSON.stringify({ scenario: s.name, skipped: 'set DATABASE_URL (or TEST_DATABASE_URL) for the PostgreSQL scenarios' }));
        continue;
      }
      console.log(JSON.stringify(await run(s, dir)));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
