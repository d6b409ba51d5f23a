/**
 * Notifications against a real local HTTP server: what arrives, retries with backoff, the timeout, and
 * that nothing secret or personal travels.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDb, type TestDb } from './helpers/db.js';
import { FIXTURE_ACCOUNTS, insertFixture } from './helpers/report-fixture.js';
import { summarize, type BatchSummary } from '../src/report/summary.js';
import { eventForExit, notifySummary, parseNotifyUrl, summaryLine } from '../src/notify/webhook.js';
import { ConfigError } from '../src/errors.js';

interface Hit {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
}

/** A local server answering the n-th request (0-based) with `answer(n, res)`. */
async function server(answer: (n: number, res: ServerResponse) => void): Promise<{ url: string; hits: Hit[]; close: () => Promise<void> }> {
  const hits: Hit[] = [];
  const srv: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      hits.push({ method: req.method!, path: req.url!, headers: req.headers, body, at: Date.now() });
      answer(hits.length - 1, res);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/services/T000/B000/secret-token-xyz`;
  return {
    url,
    hits,
    close: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

const FAST = { minDelayMs: 20, maxDelayMs: 200, timeoutMs: 2000 };

describe('notifySummary', () => {
  let db: TestDb;
  let summary: BatchSummary;
  beforeAll(async () => {
    db = await freshDb('pglite');
    await insertFixture(db.knex, 'nov');
    summary = await summarize(db.knex, 'nov');
  });
  afterAll(async () => db?.close());

  it('posts a Slack/Teams-shaped JSON body: a one-line text and the structured summary, nothing secret or personal', async () => {
    const s = await server((_n, res) => res.writeHead(200).end('ok'));
    try {
      const r = await notifySummary(s.url, summary, {
        event: 'stopped',
        exitCode: 4,
        message: 'stopped on request: 4 rows not final yet; account 123456789012 mentioned by mistake',
        ...FAST,
      });
      expect(r).toEqual({ delivered: true, attempts: 1, status: 200 });
      expect(s.hits).toHaveLength(1);
      const hit = s.hits[0]!;
      expect(hit.method).toBe('POST');
      expect(hit.path).toBe('/services/T000/B000/secret-token-xyz');
      expect(hit.headers['content-type']).toMatch(/^application\/json/);
      const body = JSON.parse(hit.body) as { text: string; event: string; batch: string; exit_code: number; message: string; summary: BatchSummary };
      expect(body.text).toBe(
        'Payout batch nov stopped before the end: 3 paid ₹3,510.50, 1 rejected ₹300.00, 1 invalid, 1 refused by the API, 1 need review, ' +
          '2 awaiting an outcome ₹1,200.00, 2 not sent, 1 cancelled; debited ₹4,025.30 (+ up to ₹2,50,700.00 not known yet) (exit 4)',
      );
      expect(body).toMatchObject({ event: 'batch.stopped', batch: 'nov', exit_code: 4 });
      expect(body.message).toBe('stopped on request: 4 rows not final yet; account XXXXXXXX9012 mentioned by mistake');
      expect(body.summary).toEqual(JSON.parse(JSON.stringify(summary)));
      for (const acc of [...FIXTURE_ACCOUNTS, '123456789012']) expect(hit.body).not.toContain(acc);
      expect(hit.body).not.toMatch(/secret|access.?key|signature/i);
      // No row-level data at all: no names, no UTRs.
      expect(hit.body).not.toContain('Asha Rao');
      expect(hit.body).not.toContain('079812345678');
    } finally {
      await s.close();
    }
  });

  it('retries 5xx and 429 with growing waits (honouring Retry-After) until delivered', async () => {
    const s = await server((n, res) => {
      if (n === 0) res.writeHead(503).end('busy');
      else if (n === 1) res.writeHead(429, { 'retry-after': '0' }).end('slow down');
      else if (n === 2) res.destroy(); // connection dropped
      else res.writeHead(204).end();
    });
    try {
      const r = await notifySummary(s.url, summary, { event: 'finished', exitCode: 1, ...FAST });
      expect(r).toEqual({ delivered: true, attempts: 4, status: 204 });
      expect(s.hits).toHaveLength(4);
      // The body is the same on every attempt.
      expect(new Set(s.hits.map((h) => h.body)).size).toBe(1);
      // A wait after the 503 (about 20 ms) and after the dropped connection (about 80 ms).
      expect(s.hits[1]!.at - s.hits[0]!.at).toBeGreaterThanOrEqual(10);
      expect(s.hits[3]!.at - s.hits[2]!.at).toBeGreaterThanOrEqual(50);
    } finally {
      await s.close();
    }
  });

  it('gives up after its retries and says why, without the URL\'s secret path; a 4xx is not retried', async () => {
    const down = await server((_n, res) => res.writeHead(500).end());
    try {
      const r = await notifySummary(down.url, summary, { event: 'failed', retries: 2, ...FAST });
      expect(r.delivered).toBe(false);
      expect(r.attempts).toBe(3);
      expect(r.status).toBe(500);
      expect(r.error).toMatch(/HTTP 500/);
      expect(r.error).not.toContain('secret-token-xyz');
      expect(down.hits).toHaveLength(3);
    } finally {
      await down.close();
    }
    const gone = await server((_n, res) => res.writeHead(404).end('no such hook'));
    try {
      const r = await notifySummary(gone.url, summary, { event: 'finished', ...FAST });
      expect(r).toMatchObject({ delivered: false, attempts: 1, status: 404 });
      expect(gone.hits).toHaveLength(1);
    } finally {
      await gone.close();
    }
  });

  it('times out a webhook that never answers, and retries it', async () => {
    const hang = await server(() => {
      /* never answers */
    });
    try {
      const t = Date.now();
      const r = await notifySummary(hang.url, summary, { event: 'finished', retries: 1, timeoutMs: 300, minDelayMs: 10, maxDelayMs: 20 });
      expect(r.delivered).toBe(false);
      expect(r.attempts).toBe(2);
      expect(r.error).toMatch(/no answer within 300 ms/);
      expect(hang.hits).toHaveLength(2);
      expect(Date.now() - t).toBeLessThan(5000);
    } finally {
      await hang.close();
    }
  });

  it('tells of a run that failed before there was a summary, by the batch\'s name', async () => {
    const s = await server((_n, res) => res.writeHead(200).end());
    try {
      const r = await notifySummary(s.url, null, { event: eventForExit(6), batch: 'dec', exitCode: 6, message: 'the API refused the credentials (401)', ...FAST });
      expect(r.delivered).toBe(true);
      expect(JSON.parse(s.hits[0]!.body)).toEqual({
        text: 'Payout batch dec failed: the API refused the credentials (401) (exit 6)',
        event: 'batch.failed',
        batch: 'dec',
        exit_code: 6,
        message: 'the API refused the credentials (401)',
        summary: null,
      });
    } finally {
      await s.close();
    }
    expect([0, 1, 2, 3, 4, 5, 6].map(eventForExit)).toEqual(['finished', 'finished', 'failed', 'failed', 'stopped', 'failed', 'failed']);
  });

  it('refuses a URL that is not http(s) up front', () => {
    expect(() => parseNotifyUrl('ftp://example.com/x')).toThrow(ConfigError);
    expect(() => parseNotifyUrl('hooks.slack.com/services/x')).toThrow(ConfigError);
    expect(parseNotifyUrl('https://hooks.slack.com/services/T/B/x').host).toBe('hooks.slack.com');
  });

  it('says "finished" with only what happened', () => {
    const line = summaryLine({ ...summary, counts: { ...summary.counts, rejected: 0, invalid: 0, failed: 0, needs_review: 0, not_sent: 0, cancelled: 0 }, awaiting: { count: 0, amount: '0.00' }, possibly_debited: { count: 0, amount: '0.00' } }, 'finished', 0);
    expect(line).toBe('Payout batch nov finished: 3 paid ₹3,510.50; debited ₹4,025.30 (exit 0)');
  });
});
