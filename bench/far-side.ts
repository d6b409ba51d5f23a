/**
 * The far side of the rate-limit benchmark, in its own process (so the runner's event loop cannot delay
 * its clock): the sandbox API enforcing the limit as a server does — at most R arrivals in any sliding
 * (t − 1000 ms, t], refused ones counted too, 429 beyond — and timestamping every arrival before any
 * processing (its own limiter and clock, no code shared with the client's rate gate). Started by
 * bench/ratelimit.ts with its settings in FAR_SIDE (JSON); prints one JSON line with its URLs, then serves
 * until killed. GET <info>/__meter answers every request (arrival time, method and path, status) and the
 * ledger's executions.
 */
import { createServer } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { AddressInfo } from 'node:net';
import { startSandbox } from '../src/sandbox/server.js';

const cfg = JSON.parse(process.env['FAR_SIDE'] ?? '{}') as { limit: number; settleMs: number; webhookUrl?: string; accessKey: string; secretKey: string };
const loop = monitorEventLoopDelay({ resolution: 5 });
loop.enable();
const log: { at: number; what: string; status: number }[] = [];
const sb = await startSandbox({
  accessKey: cfg.accessKey,
  secretKey: cfg.secretKey,
  balancePaise: 10n ** 14n,
  settleMs: cfg.settleMs,
  seed: 1,
  rate: cfg.limit,
  rateMode: 'sliding',
  ...(cfg.webhookUrl ? { webhookUrl: cfg.webhookUrl } : {}),
  logger: (line) => {
    const l = line as { method?: string; path?: string; status?: number; arrived_at?: number };
    if (l.method && l.path) log.push({ at: l.arrived_at ?? 0, what: `${l.method} /${l.path}`, status: l.status ?? 0 });
  },
});
// A side door for the results, on its own port so it is never counted.
const info = createServer((_req, res) => {
  const arrivals = sb.arrivals();
  const ledger = sb.ledger();
  const body = {
    arrivals,
    log,
    refused: log.filter((l) => l.status === 429).length,
    payouts: ledger.length,
    max_executions: Math.max(0, ...ledger.map((e) => sb.executions(e.orderId))),
    // How late the far side's own event loop ran (ms): a stalled far side timestamps arrivals late, in clumps.
    loop_delay_ms: { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
  };
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
});
await new Promise<void>((r) => info.listen(0, '127.0.0.1', () => r()));
console.log(JSON.stringify({ api: sb.url, info: `http://127.0.0.1:${(info.address() as AddressInfo).port}` }));
process.on('SIGTERM', () => process.exit(0));
