/**
 * The benchmark (not a test): ingest + validate of a large generated CSV, and payouts/s against the
 * in-process sandbox, on PGlite and (when a URL is given) PostgreSQL. Numbers go in BENCHMARKS.md.
 *
 *   npm run bench                                   # every scenario, each in a fresh child process
 *   node dist/bench/run.js validate ingest-pglite   # only these
 *   BENCH_ROWS=100000 BENCH_PAYOUTS=1000 node dist/bench/run.js
 *   DATABASE_URL=postgres://… node dist/bench/run.js   # adds the *-postgres scenarios
 *
 * Scenarios:
 *   validate          readBatchRows over BENCH_ROWS rows, no database
 *   validate-xlsx     readBatchRows over an Excel workbook of BENCH_XLSX_ROWS rows (streamed with exceljs;
 *                     mobile numbers and amounts as number cells), no database
 *   validate-vs-parse readBatchRows against csv-parse alone on the same BENCH_COMPARE_ROWS-row file,
 *                     alternating, BENCH_COMPARE_RUNS times each (issue 10: validate <= 3x csv-parse)
 *   ingest-pglite     ingestFile into PGlite in a temp directory
 *   ingest-postgres   ingestFile into a fresh database on DATABASE_URL
 *   payouts-pglite    runBatch over BENCH_PAYOUTS valid rows, per concurrency in BENCH_CONCURRENCY
 *   payouts-postgres  the same on PostgreSQL
 *
 * Environment (all optional):
 *   BENCH_ROWS=1000000         rows for validate / ingest
 *   BENCH_XLSX_ROWS=50000      rows for validate-xlsx
 *   BENCH_COMPARE_ROWS=200000  rows for validate-vs-parse
 *   BENCH_COMPARE_RUNS=7       timed runs of each side in validate-vs-parse (after one untimed warm-up each)
 *   BENCH_INVALID_EVERY=100    every n-th generated row is broken (1 %); 0 for none
 *   BENCH_PAYOUTS=5000         rows for the payout scenarios (all valid)
 *   BENCH_CONCURRENCY=16,32    engine concurrency; one run per value
 *   BENCH_RATE=2000            engine rate (requests/s, initiate + status together)
 *   BENCH_SETTLE_MS=20         sandbox: Pending -> final after this long
 *   BENCH_POLL_MS=50           engine pollIntervalMs (pollMaxIntervalMs is 4x)
 *   BENCH_TIMEOUT_S=900        a scenario still running after this is killed and reported as such
 *   BENCH_DIR=…                where CSVs and databases go (default a new temp dir, removed afterwards)
 *   BENCH_JSON=path            also write every result as JSON there
 *   DATABASE_URL (or TEST_DATABASE_URL)  PostgreSQL server; each scenario gets its own fresh database
 *                              (CREATE DATABASE bench_…, dropped afterwards)
 *
 * Peak RSS is the child process's: process.resourceUsage().maxRSS (the kernel's high-water mark), and
 * the highest of process.memoryUsage().rss sampled every 100 ms. PGlite's WASM heap lives inside the
 * process and is counted; a PostgreSQL server's memory is not. The payout scenarios also hold the
 * sandbox in the same process.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import knexFactory from 'knex';
import { parse as csvParse } from 'csv-parse';
import { createReadStream } from 'node:fs';
import { pino } from 'pino';
import { AllianceClient } from '../src/alliance/client.js';
import type { PayoutInfo, PayoutRequest } from '../src/alliance/types.js';
import type { CallOptions, PreparedRequest } from '../src/alliance/client.js';
import { readBatchRows } from '../src/batch/ingest.js';
import { openDb, type Db } from '../src/db/connect.js';
import { ingestFile } from '../src/engine/ingest.js';
import { runBatch, type RunEvent } from '../src/engine/run.js';
import { startSandbox } from '../src/sandbox/server.js';
import { generateCsv } from './gen-csv.js';
import { generateXlsx } from './gen-xlsx.js';

const logger = pino({ level: 'silent' });
const KEYS = { accessKey: 'bench-access-key', secretKey: 'bench-secret-key-0123456789' };

function envInt(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${name} must be a non-negative integer, got ${v}`);
  return n;
}

const CFG = {
  rows: envInt('BENCH_ROWS', 1_000_000),
  compareRows: envInt('BENCH_COMPARE_ROWS', 200_000),
  xlsxRows: envInt('BENCH_XLSX_ROWS', 50_000),
  compareRuns: envInt('BENCH_COMPARE_RUNS', 7),
  invalidEvery: envInt('BENCH_INVALID_EVERY', 100),
  payouts: envInt('BENCH_PAYOUTS', 5_000),
  concurrency: (process.env['BENCH_CONCURRENCY'] ?? '16,32').split(',').map((s) => Number(s.trim())),
  rate: envInt('BENCH_RATE', 2000),
  settleMs: envInt('BENCH_SETTLE_MS', 20),
  pollMs: envInt('BENCH_POLL_MS', 50),
  timeoutS: envInt('BENCH_TIMEOUT_S', 900),
};
const DB_URL = process.env['DATABASE_URL'] || process.env['TEST_DATABASE_URL'] || undefined;

const ALL = ['validate', 'validate-xlsx', 'validate-vs-parse', 'ingest-pglite', 'ingest-postgres', 'payouts-pglite', 'payouts-postgres'] as const;
type Scenario = (typeof ALL)[number];

/** One line of the results table. */
interface Result {
  scenario: string;
  rows: number;
  seconds: number;
  rowsPerSec: number;
  /** KB, from process.resourceUsage().maxRSS */
  maxRssKb: number;
  /** bytes, highest 100 ms sample */
  sampledPeakRss: number;
  /** bytes, just before the measured work started (after imports, database open, CSV on disk) */
  baselineRss: number;
  ok: boolean;
  notes: string[];
  extra: Record<string, number | string>;
}

// ---------------------------------------------------------------------------------------------------
// Child side: one scenario, one process.

class RssSampler {
  peak = process.memoryUsage().rss;
  private readonly timer = setInterval(() => this.sample(), 100);
  constructor() {
    this.timer.unref();
  }
  sample(): void {
    const r = process.memoryUsage().rss;
    if (r > this.peak) this.peak = r;
  }
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.peak;
  }
}

/** A fresh database on the PostgreSQL server, dropped by the returned close(). */
async function freshPostgres(url: string): Promise<Db & { dbName: string }> {
  const name = `bench_${randomBytes(5).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
  try {
    await admin.raw(`CREATE DATABASE ${name}`);
  } finally {
    await admin.destroy();
  }
  const u = new URL(url);
  u.pathname = `/${name}`;
  const db = await openDb({ databaseUrl: u.toString() });
  return {
    ...db,
    dbName: name,
    close: async () => {
      await db.close();
      const k = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
      await k.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
      await k.destroy();
    },
  };
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    total += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return total;
}

async function childValidate(csv: string, scenario = 'validate', expected = CFG.rows): Promise<Result> {
  const baselineRss = process.memoryUsage().rss;
  const sampler = new RssSampler();
  const t0 = performance.now();
  let rows = 0;
  let invalid = 0;
  let warnings = 0;
  for await (const r of readBatchRows(csv, { batch: 'bench', defaultUserId: 'M-BENCH' })) {
    rows++;
    if (r.errors.length > 0) invalid++;
    if (r.warnings.length > 0) warnings++;
  }
  const seconds = (performance.now() - t0) / 1000;
  const expectedInvalid = CFG.invalidEvery > 0 ? Math.floor(expected / CFG.invalidEvery) : 0;
  const notes: string[] = [];
  if (rows !== expected) notes.push(`FAILURE: read ${rows} rows, expected ${expected}`);
  if (invalid !== expectedInvalid) notes.push(`FAILURE: ${invalid} invalid rows, the generator broke ${expectedInvalid}`);
  return {
    scenario,
    rows,
    seconds,
    rowsPerSec: rows / seconds,
    maxRssKb: process.resourceUsage().maxRSS,
    sampledPeakRss: sampler.stop(),
    baselineRss,
    ok: notes.length === 0,
    notes,
    extra: { invalid, warnings },
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Seconds of wall and CPU (user + system, all threads) one call takes. */
async function timed<T>(fn: () => Promise<T>): Promise<{ wall: number; cpu: number; value: T }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1e6, value };
}

/**
 * Issue 10: `validate` at most 3x the time of csv-parse alone reading the same file. csv-parse alone is
 * a file stream piped into parse() with the options a payout file needs (BOM, relaxed quotes and column
 * counts), every record consumed; validate is readBatchRows, every row consumed. The two alternate, so
 * a busy machine slows both alike; the first run of each is a warm-up (JIT, and validate's one-time
 * load of the IFSC branch list), reported separately as cold*. CPU seconds (user + system, all threads)
 * are reported beside wall seconds: on a shared machine they move less.
 */
async function childValidateVsParse(csv: string): Promise<Result> {
  const baselineRss = process.memoryUsage().rss;
  const sampler = new RssSampler();
  const parseOnly = async (): Promise<number> => {
    let n = 0;
    for await (const _ of createReadStream(csv).pipe(csvParse({ bom: true, relax_column_count: true, relax_quotes: true }))) n++;
    return n - 1; // the header
  };
  const validate = async (): Promise<{ rows: number; invalid: number }> => {
    let rows = 0;
    let invalid = 0;
    for await (const r of readBatchRows(csv, { batch: 'bench', defaultUserId: 'M-BENCH' })) {
      rows++;
      if (r.errors.length > 0) invalid++;
    }
    return { rows, invalid };
  };
  const coldParse = await timed(parseOnly);
  const cold = await timed(validate);
  const p: { wall: number; cpu: number }[] = [];
  const v: { wall: number; cpu: number }[] = [];
  let parsed = 0;
  let checked = cold.value;
  for (let i = 0; i < CFG.compareRuns; i++) {
    const a = await timed(parseOnly);
    const b = await timed(validate);
    parsed = a.value;
    checked = b.value;
    p.push(a);
    v.push(b);
  }
  const notes: string[] = [];
  const expectedInvalid = CFG.invalidEvery > 0 ? Math.floor(CFG.compareRows / CFG.invalidEvery) : 0;
  if (parsed !== CFG.compareRows) notes.push(`FAILURE: csv-parse read ${parsed} records, expected ${CFG.compareRows}`);
  if (checked.rows !== CFG.compareRows) notes.push(`FAILURE: validate read ${checked.rows} rows, expected ${CFG.compareRows}`);
  if (checked.invalid !== expectedInvalid) notes.push(`FAILURE: ${checked.invalid} invalid rows, the generator broke ${expectedInvalid}`);
  const parseWall = median(p.map((x) => x.wall));
  const validateWall = median(v.map((x) => x.wall));
  const ratio = validateWall / parseWall;
  const cpuRatio = median(v.map((x) => x.cpu)) / median(p.map((x) => x.cpu));
  if (ratio > 3) notes.push(`target missed: validate takes ${ratio.toFixed(2)}x csv-parse (target <= 3x)`);
  return {
    scenario: 'validate-vs-parse',
    rows: checked.rows,
    seconds: validateWall,
    rowsPerSec: checked.rows / validateWall,
    maxRssKb: process.resourceUsage().maxRSS,
    sampledPeakRss: sampler.stop(),
    baselineRss,
    ok: notes.every((n) => !n.startsWith('FAILURE')),
    notes,
    extra: {
      runs: CFG.compareRuns,
      parseSeconds: round(parseWall, 3),
      validateSeconds: round(validateWall, 3),
      ratio: round(ratio, 2),
      parseCpuSeconds: round(median(p.map((x) => x.cpu)), 3),
      validateCpuSeconds: round(median(v.map((x) => x.cpu)), 3),
      cpuRatio: round(cpuRatio, 2),
      bestRatio: round(Math.min(...v.map((x) => x.wall)) / Math.min(...p.map((x) => x.wall)), 2),
      coldParseSeconds: round(coldParse.wall, 3),
      coldParseCpuSeconds: round(coldParse.cpu, 3),
      coldValidateSeconds: round(cold.wall, 3),
      coldValidateCpuSeconds: round(cold.cpu, 3),
      invalid: checked.invalid,
    },
  };
}

async function openFor(kind: 'pglite' | 'postgres', dir: string): Promise<Db> {
  if (kind === 'postgres') {
    if (!DB_URL) throw new Error('no DATABASE_URL');
    return freshPostgres(DB_URL);
  }
  const dataDir = mkdtempSync(path.join(dir, 'pglite-'));
  return openDb({ dataDir });
}

async function childIngest(kind: 'pglite' | 'postgres', csv: string, dir: string): Promise<Result> {
  const db = await openFor(kind, dir);
  const baselineRss = process.memoryUsage().rss;
  const sampler = new RssSampler();
  const t0 = performance.now();
  const res = await ingestFile(db.knex, { batch: 'bench', csvPath: csv, defaultUserId: 'M-BENCH', logger });
  const seconds = (performance.now() - t0) / 1000;
  const counts = (await db.knex('payout_rows')
    .select(db.knex.raw('count(*)::int AS n'), db.knex.raw(`count(*) FILTER (WHERE state = 'invalid')::int AS invalid`))
    .first()) as { n: number; invalid: number };
  const tc = performance.now();
  const dataDir = db.where.startsWith('PGlite at ') ? db.where.slice('PGlite at '.length) : undefined;
  await db.close();
  const closeSeconds = (performance.now() - tc) / 1000;
  const expectedInvalid = CFG.invalidEvery > 0 ? Math.floor(CFG.rows / CFG.invalidEvery) : 0;
  const notes: string[] = [];
  if (res.rows !== CFG.rows || Number(counts.n) !== CFG.rows) {
    notes.push(`FAILURE: ingest reported ${res.rows} rows, the table holds ${counts.n}, expected ${CFG.rows}`);
  }
  if (res.invalid !== expectedInvalid || Number(counts.invalid) !== expectedInvalid) {
    notes.push(`FAILURE: ${res.invalid} invalid reported, ${counts.invalid} stored, generator broke ${expectedInvalid}`);
  }
  const extra: Result['extra'] = { invalid: res.invalid, warnings: res.warnings, closeSeconds: round(closeSeconds, 2) };
  if (dataDir) extra['pgdataMB'] = round(dirBytes(dataDir) / 1e6, 0);
  return {
    scenario: `ingest-${kind}`,
    rows: res.rows,
    seconds,
    rowsPerSec: res.rows / seconds,
    maxRssKb: process.resourceUsage().maxRSS,
    sampledPeakRss: sampler.stop(),
    baselineRss,
    ok: notes.length === 0,
    notes,
    extra,
  };
}

/** Counts and times the API calls the engine makes. */
class TimedClient extends AllianceClient {
  initiates = 0;
  statuses = 0;
  firstInitiateAt = 0;
  lastInitiateAt = 0;
  override async initiatePayout(req: PayoutRequest | PreparedRequest, opts: CallOptions = {}): Promise<PayoutInfo> {
    if (this.firstInitiateAt === 0) this.firstInitiateAt = performance.now();
    try {
      return await super.initiatePayout(req, opts);
    } finally {
      this.initiates++;
      this.lastInitiateAt = performance.now();
    }
  }
  override async payoutStatus(orderId: string, opts: CallOptions = {}): Promise<PayoutInfo> {
    try {
      return await super.payoutStatus(orderId, opts);
    } finally {
      this.statuses++;
    }
  }
}

async function childPayouts(kind: 'pglite' | 'postgres', csv: string, dir: string, concurrency: number): Promise<Result> {
  const db = await openFor(kind, dir);
  const sb = await startSandbox({ ...KEYS, balancePaise: 10n ** 15n, settleMs: CFG.settleMs, seed: 1 });
  const client = new TimedClient({ baseUrl: sb.url, ...KEYS, timeoutMs: 10_000, connections: Math.max(16, concurrency), logger });
  const reportDir = mkdtempSync(path.join(dir, 'reports-'));
  let queries = 0;
  db.knex.on('query', () => queries++);
  const marks: Record<string, number> = {};
  const onEvent = (e: RunEvent) => {
    if (e.type === 'ingested' || e.type === 'preflight') marks[e.type] = performance.now();
  };
  const baselineRss = process.memoryUsage().rss;
  const sampler = new RssSampler();
  const t0 = performance.now();
  const res = await runBatch(
    {
      batch: 'bench-pay',
      csvPath: csv,
      defaultUserId: 'M-BENCH',
      reportDir,
      rate: CFG.rate,
      concurrency,
      pollIntervalMs: CFG.pollMs,
      pollMaxIntervalMs: CFG.pollMs * 4,
      pollTimeoutMs: 600_000,
      requestTimeoutMs: 10_000,
      leaseMs: 60_000,
      onEvent,
      // no confirm: the `--yes` path
    },
    { db: db.knex, client, logger },
  );
  const t1 = performance.now();
  const seconds = (t1 - t0) / 1000;
  const peak = sampler.stop();

  const notes: string[] = [];
  const c = res.report!.summary.counts;
  const ledger = sb.ledger();
  let twice = 0;
  for (const e of ledger) {
    if (sb.executions(e.orderId) !== 1) {
      twice++;
      if (twice <= 5) notes.push(`FAILURE: order_id ${e.orderId} executed ${sb.executions(e.orderId)} times`);
    }
  }
  if (twice > 0) notes.push(`FAILURE: ${twice} order_ids not executed exactly once`);
  const stored = (await db.knex('payout_rows').whereNotNull('order_id').pluck('order_id')) as string[];
  const inLedger = new Set(ledger.map((e) => e.orderId));
  const missing = stored.filter((o) => !inLedger.has(o)).length;
  if (missing > 0) notes.push(`FAILURE: ${missing} stored order_ids never reached the sandbox`);
  if (ledger.length !== CFG.payouts) notes.push(`FAILURE: sandbox ledger has ${ledger.length} payouts, expected ${CFG.payouts}`);
  if (c.pending > 0 || c.failed > 0 || c.needs_review > 0) {
    notes.push(`FAILURE: pending ${c.pending}, failed ${c.failed}, needs_review ${c.needs_review}`);
  }
  if (res.exitCode > 1) notes.push(`FAILURE: exit ${res.exitCode}: ${res.message}`);

  const submitSeconds = (client.lastInitiateAt - client.firstInitiateAt) / 1000;
  const ingestEnd = marks['ingested'] ?? t0;
  const preflightEnd = marks['preflight'] ?? ingestEnd;
  await client.close();
  await sb.close();
  await db.close();
  return {
    scenario: `payouts-${kind} c=${concurrency}`,
    rows: ledger.length,
    seconds,
    rowsPerSec: ledger.length / seconds,
    maxRssKb: process.resourceUsage().maxRSS,
    sampledPeakRss: peak,
    baselineRss,
    ok: notes.every((n) => !n.startsWith('FAILURE')),
    notes,
    extra: {
      concurrency,
      approved: c.approved,
      rejected: c.rejected,
      ingestSeconds: round((ingestEnd - t0) / 1000, 2),
      submitSeconds: round(submitSeconds, 2),
      submitPerSec: round(ledger.length / submitSeconds, 0),
      pollSeconds: round((t1 - client.lastInitiateAt) / 1000, 2),
      preflightSeconds: round((preflightEnd - ingestEnd) / 1000, 2),
      initiates: client.initiates,
      statusCalls: client.statuses,
      sandboxRequests: sb.requestCount(),
      dbStatementsPerPayout: round(queries / Math.max(1, ledger.length), 1),
      exitCode: res.exitCode,
    },
  };
}

async function child(args: string[]): Promise<void> {
  const [scenario, csv, dir, conc] = args as [Scenario, string, string, string | undefined];
  let r: Result;
  switch (scenario) {
    case 'validate':
      r = await childValidate(csv);
      break;
    case 'validate-xlsx':
      r = await childValidate(csv, 'validate-xlsx', CFG.xlsxRows);
      break;
    case 'validate-vs-parse':
      r = await childValidateVsParse(csv);
      break;
    case 'ingest-pglite':
    case 'ingest-postgres':
      r = await childIngest(scenario === 'ingest-pglite' ? 'pglite' : 'postgres', csv, dir);
      break;
    case 'payouts-pglite':
    case 'payouts-postgres':
      r = await childPayouts(scenario === 'payouts-pglite' ? 'pglite' : 'postgres', csv, dir, Number(conc));
      break;
    default:
      throw new Error(`unknown scenario ${String(scenario)}`);
  }
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(r)}\n`);
}

// ---------------------------------------------------------------------------------------------------
// Parent side: generate the files, run each scenario in a fresh process, print the table.

const round = (n: number, d: number): number => Math.round(n * 10 ** d) / 10 ** d;
const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');
const mb = (bytes: number): string => `${fmtInt(bytes / 1048576)} MiB`;

function runChild(args: string[]): Promise<Result> {
  const self = fileURLToPath(import.meta.url);
  return new Promise((resolve) => {
    const started = performance.now();
    const p = spawn(process.execPath, [self, '--child', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const killer = setTimeout(() => p.kill('SIGKILL'), CFG.timeoutS * 1000);
    p.on('close', (code, signal) => {
      clearTimeout(killer);
      const line = out.split('\n').find((l) => l.startsWith('BENCH_RESULT '));
      if (line) return resolve(JSON.parse(line.slice('BENCH_RESULT '.length)) as Result);
      const seconds = (performance.now() - started) / 1000;
      const why = signal === 'SIGKILL' ? `killed after BENCH_TIMEOUT_S=${CFG.timeoutS} s` : `exited ${code ?? signal}`;
      resolve({
        scenario: args[0] + (args[3] ? ` c=${args[3]}` : ''),
        rows: 0,
        seconds,
        rowsPerSec: 0,
        maxRssKb: 0,
        sampledPeakRss: 0,
        baselineRss: 0,
        ok: false,
        notes: [`FAILURE: ${why}`],
        extra: {},
      });
    });
  });
}

function table(results: Result[]): string {
  const head = ['scenario', 'rows', 'seconds', 'rows/s', 'peak RSS (maxRSS)', 'peak RSS (100 ms samples)', 'RSS before', 'ok'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of results) {
    lines.push(
      `| ${[
        r.scenario,
        fmtInt(r.rows),
        r.seconds.toFixed(1),
        fmtInt(r.rowsPerSec),
        mb(r.maxRssKb * 1024),
        mb(r.sampledPeakRss),
        mb(r.baselineRss),
        r.ok ? 'yes' : 'NO',
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

async function parent(requested: string[]): Promise<void> {
  for (const s of requested) {
    if (!(ALL as readonly string[]).includes(s)) {
      console.error(`unknown scenario "${s}"; known: ${ALL.join(', ')}`);
      process.exitCode = 2;
      return;
    }
  }
  let scenarios = (requested.length > 0 ? requested : [...ALL]) as Scenario[];
  if (!DB_URL) {
    const skipped = scenarios.filter((s) => s.endsWith('-postgres'));
    if (skipped.length) console.error(`skipping ${skipped.join(', ')}: DATABASE_URL (or TEST_DATABASE_URL) is not set`);
    scenarios = scenarios.filter((s) => !s.endsWith('-postgres'));
  }

  const ownDir = !process.env['BENCH_DIR'];
  const dir = process.env['BENCH_DIR'] ?? mkdtempSync(path.join(tmpdir(), 'payouts-bench-'));
  mkdirSync(dir, { recursive: true });
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${fmtInt(totalmem() / 1073741824)} GiB RAM, ${process.platform} ${process.arch}`;
  console.error(`node ${process.version}; ${machine}; dir ${dir}`);
  console.error(`config ${JSON.stringify(CFG)}${DB_URL ? '; PostgreSQL ' + new URL(DB_URL).host : ''}`);

  const results: Result[] = [];
  try {
    const bigCsv = path.join(dir, `rows-${CFG.rows}-inv${CFG.invalidEvery}.csv`);
    const payCsv = path.join(dir, `payouts-${CFG.payouts}.csv`);
    const compareCsv = path.join(dir, `rows-${CFG.compareRows}-inv${CFG.invalidEvery}.csv`);
    const needBig = scenarios.some((s) => s === 'validate' || s.startsWith('ingest-'));
    if (scenarios.includes('validate-vs-parse') && !existsSync(compareCsv)) {
      await generateCsv(compareCsv, CFG.compareRows, { invalidEvery: CFG.invalidEvery, seed: 42 });
    }
    const xlsx = path.join(dir, `rows-${CFG.xlsxRows}-inv${CFG.invalidEvery}.xlsx`);
    if (scenarios.includes('validate-xlsx') && !existsSync(xlsx)) {
      const t = performance.now();
      await generateXlsx(xlsx, CFG.xlsxRows, { invalidEvery: CFG.invalidEvery, seed: 42 });
      console.error(`generated ${fmtInt(CFG.xlsxRows)} rows as .xlsx (${mb(statSync(xlsx).size)}) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    }
    const needPay = scenarios.some((s) => s.startsWith('payouts-'));
    if (needBig && !existsSync(bigCsv)) {
      const t = performance.now();
      await generateCsv(bigCsv, CFG.rows, { invalidEvery: CFG.invalidEvery, seed: 42 });
      console.error(
        `generated ${fmtInt(CFG.rows)} rows (${mb(statSync(bigCsv).size)}) in ${((performance.now() - t) / 1000).toFixed(1)} s`,
      );
    }
    if (needPay && !existsSync(payCsv)) await generateCsv(payCsv, CFG.payouts, { invalidEvery: 0, seed: 7 });

    for (const s of scenarios) {
      const runs: string[][] = s.startsWith('payouts-')
        ? CFG.concurrency.map((c) => [s, payCsv, dir, String(c)])
        : [[s, s === 'validate-vs-parse' ? compareCsv : s === 'validate-xlsx' ? xlsx : bigCsv, dir]];
      for (const args of runs) {
        console.error(`running ${args[0]}${args[3] ? ` concurrency ${args[3]}` : ''} …`);
        const r = await runChild(args);
        results.push(r);
        console.error(
          `  ${r.scenario}: ${fmtInt(r.rows)} rows in ${r.seconds.toFixed(1)} s = ${fmtInt(r.rowsPerSec)} rows/s, ` +
            `maxRSS ${mb(r.maxRssKb * 1024)} ${JSON.stringify(r.extra)}`,
        );
        for (const n of r.notes) console.error(`  ${n}`);
      }
    }
  } finally {
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  }

  console.log(table(results));
  const details = results.filter((r) => Object.keys(r.extra).length > 0);
  if (details.length) {
    console.log('');
    for (const r of details) console.log(`- ${r.scenario}: ${Object.entries(r.extra).map(([k, v]) => `${k}=${v}`).join(', ')}`);
  }
  const failures = results.flatMap((r) => r.notes.filter((n) => n.startsWith('FAILURE')).map((n) => `${r.scenario}: ${n}`));
  for (const f of failures) console.log(f);
  if (process.env['BENCH_JSON']) {
    writeFileSync(
      process.env['BENCH_JSON'],
      JSON.stringify({ node: process.version, machine, date: new Date().toISOString(), config: CFG, results }, null, 2),
    );
  }
  if (failures.length) process.exitCode = 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    await child(args.slice(1));
    // PGlite or the pg pool may keep handles; the result is out, so leave.
    process.exit(0);
  } else {
    await parent(args);
  }
}
