import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';

/**
 * An independent witness of the rate limit, as the server counts it: an HTTP proxy in front of the API
 * (the sandbox) that timestamps every request when its headers arrive, optionally refuses one that would
 * put more than `limit` arrivals in the sliding window (t − 1000 ms, t] (429, Retry-After: 1), and
 * forwards the rest unchanged. It shares no code with the client's rate gate.
 */
export interface Meter {
  url: string;
  /** Arrival times (ms, performance.now()) of every request, refused ones included. */
  arrivals(): number[];
  /** Every request as it arrived: time and "METHOD path". */
  log(): { at: number; what: string }[];
  /** Requests answered 429 by the meter. */
  refused(): number;
  /** The most arrivals in any window (t − windowMs, t]. */
  maxInWindow(windowMs?: number): number;
  close(): Promise<void>;
}

export function maxInWindow(times: number[], windowMs = 1000): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < t.length; hi++) {
    while (t[lo]! <= t[hi]! - windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

export async function startMeter(o: { target: string; limit?: number }): Promise<Meter> {
  const arrivals: number[] = [];
  const what: string[] = [];
  let refused = 0;
  let lo = 0;
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const now = performance.now();
    arrivals.push(now);
    what.push(`${req.method ?? 'GET'} ${req.url ?? '/'}`);
    if (o.limit !== undefined) {
      while (arrivals[lo]! <= now - 1000) lo++;
      if (arrivals.length - lo > o.limit) {
        refused++;
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
        res.end(JSON.stringify({ success: false, message: 'Too Many Attempts.', error: 'Too Many Requests', data: null }));
        req.resume();
        return;
      }
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers = { ...req.headers };
      delete headers['host'];
      delete headers['connection'];
      request(`${o.target}${req.url ?? '/'}`, {
        method: (req.method ?? 'GET') as 'GET',
        headers: headers as Record<string, string>,
        body: chunks.length ? Buffer.concat(chunks) : undefined,
      })
        .then(async (r) => {
          const body = Buffer.from(await r.body.arrayBuffer());
          const out: Record<string, string> = {};
          for (const [k, v] of Object.entries(r.headers)) if (typeof v === 'string' && k !== 'connection' && k !== 'transfer-encoding') out[k] = v;
          res.writeHead(r.statusCode, out);
          res.end(body);
        })
        .catch(() => {
          // The API dropped the connection: so does the meter.
          res.destroy();
        });
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    arrivals: () => [...arrivals],
    log: () => arrivals.map((at, i) => ({ at, what: what[i]! })),
    refused: () => refused,
    maxInWindow: (w = 1000) => maxInWindow(arrivals, w),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
