/**
 * Issue 18: an answer the API document does not define for a payout initiate (a redirect, a 403 from a
 * firewall, a 404 or 405 from a misrouted gateway, a 409) says nothing about whether the payout was made:
 * ambiguous, its status asked first, never recorded as refused (a corrections file would pay it again).
 * One classifier (src/alliance/errors.ts), one table; then a proxy that lets the sandbox execute and answers
 * 302 or 404: each payout ends approved, executed once.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { errorFromResponse, writeAnswerAmbiguous } from '../src/alliance/errors.js';
import { freshDb } from './helpers/db.js';
import { clientFor, quietLogger, sandbox, tmpDir } from './helpers/env.js';
import { runBatch } from '../src/engine/run.js';
import { rowsOfBatch } from '../src/db/rows.js';

const INITIATE = { method: 'POST', path: 'api/v1/payout/initiate' };
const STATUS = { method: 'GET', path: 'api/v1/payout/PO1/status' };
const PAYIN = { method: 'POST', path: 'api/v1/payin/status' };

describe('which answers leave a request possibly executed', () => {
  const table: [number, typeof INITIATE, string, boolean][] = [
    // Documented for an initiate: definite.
    [400, INITIATE, 'BadRequestError', false],
    [401, INITIATE, 'AuthenticationError', false],
    [422, INITIATE, 'ValidationError', false],
    [429, INITIATE, 'RateLimitError', false],
    // 5xx: the server may have worked before failing.
    [500, INITIATE, 'ServerError', true],
    [502, INITIATE, 'ServerError', true],
    // Not in the document for an initiate: the payout may exist.
    [301, INITIATE, 'UnexpectedStatusError', true],
    [302, INITIATE, 'UnexpectedStatusError', true],
    [403, INITIATE, 'AuthenticationError', true],
    [404, INITIATE, 'UnexpectedStatusError', true],
    [405, INITIATE, 'UnexpectedStatusError', true],
    [409, INITIATE, 'UnexpectedStatusError', true],
    [410, INITIATE, 'UnexpectedStatusError', true],
    // Reads are never ambiguous: nothing was made.
    [404, STATUS, 'NotFoundError', false],
    [302, STATUS, 'UnexpectedStatusError', false],
    [403, STATUS, 'AuthenticationError', false],
    [404, PAYIN, 'NotFoundError', false],
    [302, PAYIN, 'UnexpectedStatusError', false],
  ];
  it.each(table)('%i to %o: %s, ambiguous %s', (status, req, cls, ambiguous) => {
    const e = errorFromResponse({ statusCode: status, ...req, raw: '<html>…</html>' });
    expect(e.constructor.name).toBe(cls);
    expect(e.ambiguous).toBe(ambiguous);
    expect(writeAnswerAmbiguous({ statusCode: status, ...req })).toBe(ambiguous);
  });
});

describe('a proxy that answers an executed initiate with 302 or 404', () => {
  const servers: Server[] = [];
  afterAll(async () => {
    for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
  });

  /** Forwards everything; answers the initiates it forwards with `status` once the API has executed them. */
  async function proxy(target: string, status: number): Promise<string> {
    const t = new URL(target);
    const server = createServer((req, res) => {
      const up = httpRequest({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
        if (req.url?.includes('payout/initiate')) {
          upRes.resume();
          upRes.on('end', () => {
            res.writeHead(status, { 'content-type': 'text/html', ...(status === 302 ? { location: 'https://login.example.com/' } : {}) });
            res.end('<html><body>Moved</body></html>');
          });
          return;
        }
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      });
      req.pipe(up);
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it.each([302, 404])('%i: every payout asked about, adopted, executed once; none reported refused', async (status) => {
    const sb = await sandbox({ settleMs: 20 });
    const db = await freshDb('pglite');
    const client = clientFor({ url: await proxy(sb.url, status) });
    try {
      const csv = path.join(tmpDir('payouts-proxy-'), 'p.csv');
      const lines = ['beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount'];
      for (let i = 0; i < 6; i++) lines.push(`X ${i},x${i}@example.com,98765${String(30000 + i + status)},A,IMPS,${8500000 + i + status * 10}1,B,SBIN0000691,${100 + i}`);
      writeFileSync(csv, lines.join('\n') + '\n');
      const res = await runBatch(
        { batch: `proxy-${status}`, csvPath: csv, defaultUserId: 'M1', yes: true, reportDir: path.dirname(csv), rate: 500, pollIntervalMs: 20, pollMaxIntervalMs: 50, ambiguousGraceMs: 200, requestTimeoutMs: 2000, leaseMs: 5000 },
        { db: db.knex, client, logger: quietLogger },
      );
      expect(res.exitCode, res.message).toBe(0);
      const rows = await rowsOfBatch(db.knex, `proxy-${status}`);
      expect(rows.map((r) => r.state)).toEqual(Array(6).fill('approved'));
      expect(sb.ledger()).toHaveLength(6);
      for (const r of rows) expect(sb.executions(r.order_id!)).toBe(1);
    } finally {
      await client.close();
      await db.close();
      await sb.close();
    }
  });
});
