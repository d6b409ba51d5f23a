import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { AllianceClient } from '../src/alliance/client.js';
import type { RateGate, Ticket } from '../src/alliance/gate.js';
import { NetworkError, TimeoutError } from '../src/alliance/errors.js';

/**
 * The rate gate's ticket is settled by the connection, when the request is written, not when the client
 * hands it to undici: a request that waits for a connection (or for a busy event loop) must not be
 * counted at the moment it was handed over, or the server sees it later, beside requests counted after it.
 */

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
});

/** A server that holds /slow for `holdMs` and records when each request arrived (this process's clock). */
async function server(holdMs: number): Promise<{ url: string; arrived: Map<string, number>; answeredSlow: () => number }> {
  const arrived = new Map<string, number>();
  let answered = 0;
  const s = createServer((req, res) => {
    arrived.set(req.url ?? '', performance.now());
    const answer = () => {
      if (req.url?.includes('slow')) answered = performance.now();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ success: true, message: 'ok', data: { balance: '1.00' } }));
    };
    if (req.url?.includes('slow')) setTimeout(answer, holdMs);
    else answer();
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, arrived, answeredSlow: () => answered };
}

interface Record_ {
  granted: number;
  sent?: number;
  cancelled?: number;
}

/** A gate that grants at once and records what each ticket was told, and when. */
function recordingGate(): { gate: RateGate; tickets: Record_[] } {
  const tickets: Record_[] = [];
  const gate: RateGate = {
    take: async () => {
      const r: Record_ = { granted: performance.now() };
      tickets.push(r);
      const t: Ticket = {
        sent: () => {
          r.sent ??= performance.now();
        },
        cancel: () => {
          r.cancelled ??= performance.now();
        },
      };
      return t;
    },
    rateLimited: () => {},
  };
  return { gate, tickets };
}

function client(url: string, timeoutMs = 5000): AllianceClient {
  // One connection: a second request waits in undici's queue until the first is answered.
  return new AllianceClient({ baseUrl: url, accessKey: 'k', secretKey: 's-0123456789', connections: 1, timeoutMs });
}

describe('a ticket is settled on the wire', () => {
  it('a request waiting for a connection is sent when it is written, after the one ahead of it was answered', async () => {
    const srv = await server(300);
    const c = client(srv.url);
    const { gate, tickets } = recordingGate();
    try {
      const a = c.send(c.prepareGet('api/v1/slow'), { gate });
      // Let A take the connection first.
      await new Promise((r) => setTimeout(r, 20));
      const b = c.send(c.prepareGet('api/v1/fast'), { gate });
      await Promise.all([a, b]);
      const [ta, tb] = tickets;
      expect(ta!.sent).toBeDefined();
      expect(tb!.sent).toBeDefined();
      expect(tb!.cancelled).toBeUndefined();
      // B was handed over while A held the only connection, and written only once A was answered.
      expect(tb!.sent!).toBeGreaterThanOrEqual(srv.answeredSlow());
      expect(tb!.sent! - tb!.granted).toBeGreaterThan(100);
      // ... and it reached the server after its ticket was told (never counted after it arrived).
      expect(srv.arrived.get('/api/v1/fast')!).toBeGreaterThanOrEqual(tb!.sent!);
    } finally {
      await c.close();
    }
  });

  it('a request given up while it waits for a connection gives its ticket back and never reaches the server', async () => {
    const srv = await server(400);
    const c = client(srv.url);
    const { gate, tickets } = recordingGate();
    try {
      const a = c.send(c.prepareGet('api/v1/slow'), { gate });
      await new Promise((r) => setTimeout(r, 20));
      const stop = new AbortController();
      const b = c.send(c.prepareGet('api/v1/fast'), { gate, signal: stop.signal });
      setTimeout(() => stop.abort(new Error('stopped')), 50);
      await expect(b).rejects.toThrow();
      await a;
      expect(tickets[1]!.cancelled).toBeDefined();
      expect(tickets[1]!.sent).toBeUndefined();
      expect(srv.arrived.has('/api/v1/fast')).toBe(false);
      expect(tickets[0]!.sent).toBeDefined();
    } finally {
      await c.close();
    }
  });

  it('a POST whose time runs out before a connection takes it was certainly not sent; one that was written is ambiguous', async () => {
    const srv = await server(600);
    // Two clients on one connection: A (patient) holds it past B's timeout, so B never leaves the queue.
    const agent = new Agent({ connections: 1 });
    const opts = { baseUrl: srv.url, accessKey: 'k', secretKey: 's-0123456789', dispatcher: agent };
    const patient = new AllianceClient({ ...opts, timeoutMs: 5000 });
    const hasty = new AllianceClient({ ...opts, timeoutMs: 300 });
    try {
      const a = patient.send(patient.preparePost('api/v1/slow', { n: 1 }));
      await new Promise((r) => setTimeout(r, 20));
      const b = await hasty.send(hasty.preparePost('api/v1/fast', { n: 2 })).catch((e: unknown) => e);
      expect(b).toBeInstanceOf(NetworkError);
      expect((b as NetworkError).ambiguous).toBe(false);
      expect((b as Error).message).toMatch(/not sent within 300 ms/);
      await a;
      expect(srv.arrived.has('/api/v1/fast')).toBe(false);
      // Written, and no answer in time: the API may have executed it.
      const c = await hasty.send(hasty.preparePost('api/v1/slow', { n: 3 })).catch((e: unknown) => e);
      expect(c).toBeInstanceOf(TimeoutError);
      expect((c as TimeoutError).ambiguous).toBe(true);
    } finally {
      await patient.close();
      await hasty.close();
      await agent.close();
    }
  });
});
