/**
 * The webhook receiver under attack (issue 18). Not a test: numbers for BENCHMARKS.md.
 *
 *   npm run bench:webhooks                     # both scenarios (raises the open-file limit to the hard one first)
 *   node dist/bench/webhook-flood.js flood     # only this one (run under `ulimit -n $(ulimit -Hn)`)
 *
 * Three processes: the API (the sandbox enforcing R, bench/far-side.ts, webhooks to the runner), the
 * runner (this file with --runner: a real runBatch with webhooks on, PGlite, as `payouts run
 * --webhook-port` does), and the attacker (this process). The attacker knows the webhook token, as in
 * the reviewer's repro:
 *   1. opens up to FLOOD_IDLE (20,000) connections that never send a byte, as fast as it can;
 *   2. once the runner has closed them, posts FLOOD_HINTS (4,000) distinct 60 KB payin hints;
 *   3. FLOOD_STOP_S (60 s) after the runner listens, SIGTERM to the runner.
 * 'baseline' is the same run without the attacker. Reported: the runner's peak RSS and open files, how
 * the idle connections ended, the receiver's queue and what it shed, the payin lookups the flood cost at
 * the API, the payouts' initiates per second before and during each phase, and how long SIGTERM took.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Pool } from 'undici';
import { AllianceClient } from '../src/alliance/client.js';
import { openDb } from '../src/db/connect.js';
import { ingestFile } from '../src/engine/ingest.js';
import { runBatch } from '../src/engine/run.js';
import type { ReceiverStats } from '../src/webhooks/receiver.js';

const KEYS = { accessKey: 'bench-access', secretKey: 'bench-secret-0123456789' };
const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount';
// FLOOD_LOG=debug FLOOD_LOG_FILE=/tmp/runner.log: the runner's log, for a closer look.
const logger = process.env['FLOOD_LOG_FILE']
  ? pino({ level: process.env['FLOOD_LOG'] ?? 'info' }, pino.destination({ dest: process.env['FLOOD_LOG_FILE'], sync: true }))
  : pino({ level: 'silent' });
const HERE = path.dirname(fileURLToPath(import.meta.url));

const num = (name: string, dflt: number) => Number(process.env[name] ?? dflt);
const CFG = {
  rate: num('FLOOD_RATE', 20),
  payouts: num('FLOOD_PAYOUTS', 1500),
  settleMs: num('FLOOD_SETTLE_MS', 20_000),
  idle: num('FLOOD_IDLE', 20_000),
  hints: num('FLOOD_HINTS', 4_000),
  hintBytes: num('FLOOD_HINT_BYTES', 60_000),
  stopAfterMs: num('FLOOD_STOP_S', 60) * 1000,
};

interface RunnerConfig {
  api: string;
  port: number;
  token: string;
  dataDir: string;
  rate: number;
  payouts: number;
}

interface RunnerReport {
  exit_code: number;
  /** The kernel's high-water mark over the whole process (reading the file and migrating included). */
  max_rss_mib: number;
  /** RSS when the receiver started listening, and the highest sampled after (every 100 ms). */
  rss_at_listening_mib: number;
  peak_rss_after_listening_mib: number;
  /** SIGTERM to runBatch returning, receiver closed. */
  stop_ms: number | null;
  stats: ReceiverStats | undefined;
}

/** The runner process: one batch with webhooks on, stopped by SIGTERM. */
async function runner(cfg: RunnerConfig): Promise<void> {
  const db = await openDb({ dataDir: cfg.dataDir });
  const client = new AllianceClient({ baseUrl: cfg.api, ...KEYS, timeoutMs: 30_000, logger });
  const file = path.join(cfg.dataDir, 'batch.csv');
  const lines = [HEADER];
  for (let i = 0; i < cfg.payouts; i++) lines.push(`P ${i},p${i}@example.com,9876543210,A,IMPS,${(10_000_000 + i) * 10 + 1},B,SBIN0000691,${100 + (i % 900)}`);
  writeFileSync(file, lines.join('\n') + '\n');
  await ingestFile(db.knex, { batch: 'flood', csvPath: file, defaultUserId: 'M1' });
  const stop = new AbortController();
  let stopAt: number | undefined;
  process.on('SIGTERM', () => {
    stopAt = performance.now();
    logger.info('SIGTERM');
    stop.abort();
  });
  let stats: ReceiverStats | undefined;
  let atListening = 0;
  let peak = 0;
  const sampler = setInterval(() => {
    if (atListening) peak = Math.max(peak, process.memoryUsage().rss);
  }, 100);
  const res = await runBatch(
    {
      batch: 'flood',
      yes: true,
      rate: cfg.rate,
      concurrency: 8,
      reportDir: path.join(cfg.dataDir, 'reports'),
      pollTimeoutMs: 600_000,
      stopSignal: stop.signal,
      webhooks: {
        port: cfg.port,
        token: cfg.token,
        onListening: (url) => {
          atListening = process.memoryUsage().rss;
          console.log(JSON.stringify({ listening: url }));
        },
        onClosed: (s) => (stats = s),
      },
    },
    { db: db.knex, client, logger },
  );
  const report: RunnerReport = {
    exit_code: res.exitCode,
    max_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024),
    rss_at_listening_mib: Math.round(atListening / 2 ** 20),
    peak_rss_after_listening_mib: Math.round(Math.max(peak, atListening) / 2 ** 20),
    stop_ms: stopAt === undefined ? null : Math.round(performance.now() - stopAt),
    stats,
  };
  clearInterval(sampler);
  console.log(JSON.stringify({ report }));
  await client.close();
  await db.close();
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

/** A child process and its JSON lines. */
function child(args: string[], env: Record<string, string>): { lines: AsyncIterableIterator<string>; pid: number; kill: (s: NodeJS.Signals) => void; exited: Promise<number | null> } {
  const c = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((r) => c.once('exit', (code) => r(code)));
  return { lines: createInterface({ input: c.stdout })[Symbol.asyncIterator](), pid: c.pid!, kill: (s) => c.kill(s), exited };
}

async function nextJson<T>(lines: AsyncIterableIterator<string>, key: string): Promise<T> {
  for (;;) {
    const r = await lines.next();
    if (r.done) throw new Error(`the child ended before printing ${key}`);
    try {
      const j = JSON.parse(r.value) as Record<string, unknown>;
      if (key in j) return j as T;
    } catch {
      /* not ours */
    }
  }
}

/** Samples the runner's open files (its /proc fd directory) every 100 ms until stopped. */
function fdSampler(pid: number): { stop: () => number; since: (t: number) => number[] } {
  let peak = 0;
  const samples: { at: number; n: number }[] = [];
  const t = setInterval(() => {
    try {
      const n = readdirSync(`/proc/${pid}/fd`).length;
      peak = Math.max(peak, n);
      samples.push({ at: Date.now(), n });
    } catch {
      /* gone */
    }
  }, 100);
  return {
    stop: () => {
      clearInterval(t);
      return peak;
    },
    /** The open files at each whole second after `t`. */
    since: (t0: number) => {
      const out: number[] = [];
      for (const s of samples) if (s.at >= t0 && Math.floor((s.at - t0) / 1000) === out.length) out.push(s.n);
      return out;
    },
  };
}

/** Opens up to `n` connections that never send a byte; resolves when every one has ended (or `giveUpMs`). */
async function idleFlood(port: number, n: number, giveUpMs: number) {
  const lifetimes: number[] = [];
  const errors: Record<string, number> = {};
  let connected = 0;
  let open = 0;
  let mostOpen = 0;
  const t0 = performance.now();
  const all: Promise<void>[] = [];
  const one = () =>
    new Promise<void>((resolve) => {
      const s: Socket = connect(port, '127.0.0.1');
      // Read, or the runner's close (a FIN) is never noticed here.
      s.resume();
      let at = 0;
      s.once('connect', () => {
        connected++;
        open++;
        mostOpen = Math.max(mostOpen, open);
        at = performance.now();
      });
      s.on('error', (e: NodeJS.ErrnoException) => (errors[e.code ?? e.message] = (errors[e.code ?? e.message] ?? 0) + 1));
      s.once('close', () => {
        if (at) {
          open--;
          lifetimes.push(performance.now() - at);
        }
        resolve();
      });
    });
  // In waves: a connect in flight holds a file here too, and the point is the runner's files, not ours.
  for (let i = 0; i < n; i += 500) {
    const wave = Array.from({ length: Math.min(500, n - i) }, one);
    all.push(...wave);
    await Promise.race([Promise.all(wave), new Promise((r) => setTimeout(r, 200))]);
  }
  const openedMs = performance.now() - t0;
  await Promise.race([Promise.all(all), new Promise((r) => setTimeout(r, giveUpMs))]);
  lifetimes.sort((a, b) => a - b);
  return {
    attempted: n,
    connected,
    errors,
    most_open_at_once_attacker_side: mostOpen,
    closed_within_1s: lifetimes.filter((l) => l < 1000).length,
    held_longer: lifetimes.filter((l) => l >= 1000).length,
    longest_held_s: +((lifetimes[lifetimes.length - 1] ?? 0) / 1000).toFixed(1),
    still_open_at_give_up: open,
    opening_took_s: +(openedMs / 1000).toFixed(1),
  };
}

/** Posts `n` distinct payin hints of `bytes` each, 16 at a time. */
async function hintFlood(url: string, n: number, bytes: number) {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections: 16 });
  const statuses: Record<string, number> = {};
  const pad = 'x'.repeat(Math.max(0, bytes - 120));
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < n) {
        const i = next++;
        const body = JSON.stringify({ event: 'payin.succeeded', data: { order_id: `FORGED-${i}`, amount: 1, pad } });
        try {
          const r = await pool.request({ path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json' }, body });
          await r.body.dump();
          statuses[r.statusCode] = (statuses[r.statusCode] ?? 0) + 1;
        } catch (e) {
          statuses[(e as Error).name] = (statuses[(e as Error).name] ?? 0) + 1;
        }
      }
    }),
  );
  await pool.close();
  return { posted: n, bytes_each: bytes, statuses, took_s: +((performance.now() - t0) / 1000).toFixed(1) };
}

type Arrival = { at: number; what: string; status: number };

/** Initiates per second and payin lookups between two times (ms since the epoch, the far side's clock). */
function window(log: Arrival[], from: number, to: number) {
  const inside = log.filter((l) => l.at >= from && l.at < to);
  const initiates = inside.filter((l) => l.what.includes('payout/initiate')).length;
  const lookups = inside.filter((l) => l.what.includes('payin')).length;
  const s = (to - from) / 1000;
  return {
    seconds: +s.toFixed(1),
    initiates_per_s: +(initiates / s).toFixed(2),
    payin_lookups: lookups,
    all_requests_per_s: +(inside.length / s).toFixed(2),
    lookup_share: inside.length ? +(lookups / inside.length).toFixed(3) : 0,
  };
}

async function scenario(name: 'baseline' | 'flood', dir: string): Promise<Record<string, unknown>> {
  const port = await freePort();
  const token = randomBytes(16).toString('hex');
  const webhookUrl = `http://127.0.0.1:${port}/alliance/webhook/${token}`;
  const far = child([path.join(HERE, 'far-side.js')], { FAR_SIDE: JSON.stringify({ limit: CFG.rate, settleMs: CFG.settleMs, webhookUrl, ...KEYS }) });
  const urls = await nextJson<{ api: string; info: string }>(far.lines, 'api');
  const dataDir = mkdtempSync(path.join(dir, `${name}-`));
  const run = child([fileURLToPath(import.meta.url), '--runner'], {
    RUNNER: JSON.stringify({ api: urls.api, port, token, dataDir, rate: CFG.rate, payouts: CFG.payouts } satisfies RunnerConfig),
  });
  try {
    await nextJson(run.lines, 'listening');
    const fds = fdSampler(run.pid);
    const start = Date.now();
    const phases: Record<string, unknown> = {};
    const marks: Record<string, number> = { listening: start };
    const stopTimer = new Promise<void>((r) => setTimeout(r, CFG.stopAfterMs));
    if (name === 'flood') {
      // Let the run get going first, so there is a rate before the attack to compare with.
      await new Promise((r) => setTimeout(r, 5_000));
      marks['idle_flood'] = Date.now();
      phases['idle_connections'] = await idleFlood(port, CFG.idle, 45_000);
      marks['hint_flood'] = Date.now();
      phases['hints'] = await hintFlood(webhookUrl, CFG.hints, CFG.hintBytes);
      marks['hints_posted'] = Date.now();
    }
    await stopTimer;
    marks['sigterm'] = Date.now();
    run.kill('SIGTERM');
    const { report } = await nextJson<{ report: RunnerReport }>(run.lines, 'report');
    await run.exited;
    const fdPeak = fds.stop();
    const seen = (await (await fetch(`${urls.info}/__meter`)).json()) as { log: Arrival[] };
    const log = seen.log.sort((a, b) => a.at - b.at);
    const windows: Record<string, unknown> = { before_attack: window(log, start, marks['idle_flood'] ?? marks['sigterm']!) };
    if (name === 'flood') {
      windows['idle_connection_flood'] = window(log, marks['idle_flood']!, marks['hint_flood']!);
      windows['hint_flood_to_sigterm'] = window(log, marks['hint_flood']!, marks['sigterm']!);
    }
    const after = log.filter((l) => l.at > marks['sigterm']! + (report.stop_ms ?? 0)).length;
    return {
      scenario: name,
      rate: CFG.rate,
      payouts: CFG.payouts,
      settle_ms: CFG.settleMs,
      runner_exit: report.exit_code,
      runner_max_rss_mib: report.max_rss_mib,
      runner_rss_at_listening_mib: report.rss_at_listening_mib,
      runner_peak_rss_after_listening_mib: report.peak_rss_after_listening_mib,
      runner_peak_open_files: fdPeak,
      ...(marks['idle_flood'] ? { runner_open_files_each_second_of_the_idle_flood: fds.since(marks['idle_flood']) } : {}),
      sigterm_to_return_ms: report.stop_ms,
      requests_after_return: after,
      payin_lookups_total: log.filter((l) => l.what.includes('payin')).length,
      ...phases,
      receiver: report.stats && {
        received: report.stats.received,
        hints_looked_up: report.stats.hints,
        max_queued: report.stats.maxQueued,
        dropped_queue_full: report.stats.dropped,
        deduplicated: report.stats.deduplicated,
        dropped_on_stop: report.stats.droppedOnStop,
        idle_closed: report.stats.idleClosed,
        refused_connections: report.stats.refusedConnections,
      },
      windows,
    };
  } finally {
    run.kill('SIGKILL');
    far.kill('SIGTERM');
  }
}

if (process.argv.includes('--runner')) {
  await runner(JSON.parse(process.env['RUNNER']!) as RunnerConfig);
} else {
  const only = process.argv.slice(2);
  const dir = mkdtempSync(path.join(tmpdir(), 'payouts-bench-flood-'));
  try {
    console.log(JSON.stringify({ config: CFG, open_file_limit: process.env['FLOOD_ULIMIT'] ?? 'see `ulimit -n`' }));
    for (const name of ['baseline', 'flood'] as const) {
      if (only.length && !only.includes(name)) continue;
      console.log(JSON.stringify(await scenario(name, dir)));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
