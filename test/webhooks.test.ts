import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { webhooksCommand } from '../src/commands/webhooks.js';
import type { CommandIO } from '../src/commands/context.js';
import { getPayin, listPayins } from '../src/db/payins.js';
import { payinHintHandler } from '../src/engine/payins.js';
import type { Sandbox } from '../src/sandbox/server.js';
import { parseWebhookBody, startWebhookReceiver, type ReceiverOptions, type WebhookHint, type WebhookReceiver } from '../src/webhooks/receiver.js';
import { BACKENDS, freshDb, type TestDb } from './helpers/db.js';
import { clientFor, KEYS, quietLogger, sandbox, tmpDir } from './helpers/env.js';

const TOKEN = 'tok_0123456789abcdef';

const receivers: WebhookReceiver[] = [];
const sandboxes: Sandbox[] = [];
afterEach(async () => {
  await Promise.all(receivers.splice(0).map((r) => r.close()));
  await Promise.all(sandboxes.splice(0).map((s) => s.close()));
});

async function receiver(over: Partial<ReceiverOptions> = {}): Promise<{ rx: WebhookReceiver; hints: WebhookHint[] }> {
  const hints: WebhookHint[] = [];
  const rx = await startWebhookReceiver({
    token: TOKEN,
    logger: quietLogger,
    onPayoutHint: (h) => {
      hints.push(h);
      return 'seen';
    },
    onPayinHint: (h) => {
      hints.push(h);
      return 'seen';
    },
    ...over,
  });
  receivers.push(rx);
  return { rx, hints };
}

async function post(url: string, body: string | object, headers: Record<string, string> = {}): Promise<{ status: number; ms: number; json: any }> {
  const t = Date.now();
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, ms: Date.now() - t, json: text ? JSON.parse(text) : undefined };
}

/** A raw TCP connection to the receiver, with what it was sent back. */
async function openSocket(port: number): Promise<{ socket: Socket; closed: Promise<void>; received: () => string }> {
  const socket = connect(port, '127.0.0.1');
  let data = '';
  socket.on('data', (d: Buffer) => (data += d.toString()));
  socket.on('error', () => {});
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return { socket, closed, received: () => data };
}

/** True when the server closed the connection within `ms` (a generous bound: the point is closed, not fast). */
async function closedWithin(s: { closed: Promise<void>; socket: Socket }, ms: number): Promise<boolean> {
  let t: NodeJS.Timeout | undefined;
  const r = await Promise.race([s.closed.then(() => true), new Promise<boolean>((res) => (t = setTimeout(() => res(false), ms)))]);
  clearTimeout(t);
  if (!r) s.socket.destroy();
  return r;
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const payinEvent = (orderId: string, event = 'payin.succeeded', over: Record<string, unknown> = {}) => ({
  event,
  data: { user_id: 'x', order_id: orderId, transaction_id: '1', amount: 1_000_000, request_amount: 1_000_000, method: 'UPI', status: 'Approved', ...over },
});

describe('the receiver', () => {
  it('hands {kind, orderId, event} for a good body at /alliance/webhook/<token>, and nothing else of the body', async () => {
    const { rx, hints } = await receiver();
    expect(rx.url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:\\d+/alliance/webhook/${TOKEN}$`));
    const r = await post(rx.url, {
      event: 'payout.succeeded',
      data: { order_id: 'PO-1', status: 'Approved', beneficiary_acc_no: '123456789012', amount: 100 },
    });
    expect(r).toMatchObject({ status: 200, json: { ok: true } });
    await post(rx.url, payinEvent('PIN-1', 'payin.failed'));
    await rx.idle();
    expect(hints.map(({ receivedAt, ...h }) => (expect(receivedAt).toBeInstanceOf(Date), h))).toEqual([
      { kind: 'payout', orderId: 'PO-1', event: 'payout.succeeded' },
      { kind: 'payin', orderId: 'PIN-1', event: 'payin.failed' },
    ]);
    expect(rx.stats()).toMatchObject({ received: 2, hints: 2, outcomes: { seen: 2 } });
  });

  it('a wrong or missing token is 404 (a near miss too), and no hint', async () => {
    const { rx, hints } = await receiver();
    const base = rx.url.slice(0, -TOKEN.length);
    for (const path of [`${TOKEN.slice(0, -1)}x`, `${TOKEN}x`, TOKEN.slice(0, -1), '', `../${TOKEN}`]) {
      expect((await post(base + path, payinEvent('PIN-X'))).status, path).toBe(404);
    }
    expect((await post(rx.url.replace('/alliance/webhook/', '/other/'), payinEvent('PIN-X'))).status).toBe(404);
    // A trailing slash is the same URL.
    expect((await post(`${rx.url}/`, payinEvent('PIN-OK'))).status).toBe(200);
    await rx.idle();
    expect(hints.map((h) => h.orderId)).toEqual(['PIN-OK']);
    expect(rx.stats().badToken).toBe(6);
  });

  it('refuses a token too short or not URL-safe', async () => {
    await expect(startWebhookReceiver({ token: 'short' })).rejects.toThrow(/at least 16/);
    await expect(startWebhookReceiver({ token: 'has a space in it, long enough' })).rejects.toThrow(/URL-safe/);
  });

  it('an IP allowlist: others get 403', async () => {
    const blocked = await receiver({ allowIps: ['10.1.2.3'] });
    expect((await post(blocked.rx.url, payinEvent('P'))).status).toBe(403);
    expect(blocked.rx.stats().forbiddenIp).toBe(1);
    const allowed = await receiver({ allowIps: ['127.0.0.1'] });
    expect((await post(allowed.rx.url, payinEvent('P'))).status).toBe(200);
  });

  it('GET is 405; a body over the limit is 413, declared or streamed; the receiver keeps serving', async () => {
    const { rx, hints } = await receiver({ maxBodyBytes: 1000 });
    expect((await fetch(rx.url)).status).toBe(405);
    expect((await post(rx.url, payinEvent('BIG', 'payin.succeeded', { pad: 'x'.repeat(2000) }))).status).toBe(413);
    const streamed = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(rx.url, { method: 'POST' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve(-1) : reject(e)));
      for (let i = 0; i < 8; i++) req.write('x'.repeat(400));
      req.end();
    });
    expect(streamed).toBe(413);
    expect((await post(rx.url, payinEvent('SMALL'))).status).toBe(200);
    await rx.idle();
    expect(hints.map((h) => h.orderId)).toEqual(['SMALL']);
    expect(rx.stats()).toMatchObject({ tooLarge: 2, methodNotAllowed: 1 });
  });

  it('answers 2xx before the handler runs: a slow handler never delays the answer', async () => {
    let finished = 0;
    const { rx } = await receiver({
      onPayinHint: async () => {
        await new Promise((r) => setTimeout(r, 1500));
        finished++;
      },
    });
    const r = await post(rx.url, payinEvent('SLOW'));
    expect(r.status).toBe(200);
    // The answer came while the handler was still running.
    expect(finished).toBe(0);
    await rx.idle();
    expect(finished).toBe(1);
  });

  it('malformed bodies, unknown events, duplicates and a throwing handler: all acknowledged, counted, never a crash', async () => {
    let calls = 0;
    const { rx } = await receiver({
      onPayinHint: (h) => {
        calls++;
        if (h.orderId === 'THROWS') throw new Error('handler bug');
        return 'ok';
      },
      onPayoutHint: undefined,
    });
    const bodies: Array<string | object> = [
      'not json',
      '[]',
      '{"data":{"order_id":"A"}}',
      { event: 'payin.succeeded' },
      { event: 'payin.succeeded', data: { order_id: '' } },
      { event: 'payin.succeeded', data: { order_id: { $ne: 1 } } },
      { event: 'payin.succeeded', data: { order_id: 'bad\nid' } },
      { event: 'payin.succeeded', data: { order_id: 'x'.repeat(201) } },
      { event: 'refund.created', data: { order_id: 'R1' } },
      { event: 'payin.refunded', data: { order_id: 'R2' } },
      payinEvent('DUP'),
      payinEvent('DUP'),
      payinEvent('THROWS'),
      { event: 'payout.succeeded', data: { order_id: 'NOBODY' } },
      { event: 'payin.succeeded', data: { order_id: 12345 } },
    ];
    for (const b of bodies) expect((await post(rx.url, b)).status).toBe(200);
    await rx.idle();
    expect(rx.stats()).toMatchObject({
      received: 15,
      malformed: 8,
      unknownEvent: 2,
      duplicates: 1,
      handlerErrors: 1,
      unhandled: 1,
      hints: 5,
      outcomes: { ok: 4 },
    });
    expect(calls).toBe(5);
    // Still serving.
    expect((await post(rx.url, payinEvent('AFTER'))).status).toBe(200);
  });

  it('closes a connection that sends nothing, and an idle keep-alive, within the idle timeout (default 30 s)', async () => {
    const { rx, hints } = await receiver({ idleTimeoutMs: 300 });
    const { port } = new URL(rx.url);
    // Never a byte.
    const silent = await openSocket(Number(port));
    // One request on a kept-alive connection, then nothing.
    const kept = await openSocket(Number(port));
    const body = JSON.stringify(payinEvent('KEPT'));
    kept.socket.write(`POST ${new URL(rx.url).pathname} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    // Far longer than the timeout, far shorter than a stuck connection: closed, not merely slow.
    expect(await closedWithin(silent, 5_000)).toBe(true);
    expect(await closedWithin(kept, 5_000)).toBe(true);
    expect(kept.received()).toMatch(/^HTTP\/1\.1 200/);
    await rx.idle();
    expect(hints.map((h) => h.orderId)).toEqual(['KEPT']);
    await until(() => rx.stats().connections === 0);
    expect(rx.stats().idleClosed).toBe(2);
    // The default a real receiver gets.
    expect((await receiver()).rx.limits).toMatchObject({ idleTimeoutMs: 30_000, maxConnections: 256, maxQueuedHints: 1000 });
  });

  it('caps open connections: one more is closed as it arrives, and the receiver serves again once some go', async () => {
    const { rx } = await receiver({ maxConnections: 3 });
    const port = Number(new URL(rx.url).port);
    const held = [await openSocket(port), await openSocket(port), await openSocket(port)];
    await until(() => rx.stats().connections === 3);
    const extra = await openSocket(port);
    expect(await closedWithin(extra, 5_000)).toBe(true);
    expect(rx.stats()).toMatchObject({ refusedConnections: 1, connections: 3 });
    for (const h of held) h.socket.destroy();
    await until(() => rx.stats().connections === 0);
    expect((await post(rx.url, payinEvent('AFTER-CAP'))).status).toBe(200);
  });

  it('a flood of distinct hints: at most maxQueuedHints wait, the rest are dropped and counted; one waits per order_id; no body is kept', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const got: WebhookHint[] = [];
    let running = 0;
    let mostRunning = 0;
    const { rx } = await receiver({
      maxQueuedHints: 50,
      concurrency: { payin: 2 },
      onPayinHint: async (h) => {
        got.push(h);
        mostRunning = Math.max(mostRunning, ++running);
        await gate;
        running--;
        return 'looked_up';
      },
    });
    // 60 KB bodies, as in the reviewer's flood (issue 18), each for its own order_id.
    const pad = 'x'.repeat(60_000);
    for (let i = 0; i < 300; i++) expect((await post(rx.url, payinEvent(`FLOOD-${i}`, 'payin.succeeded', { pad }))).status).toBe(200);
    // Again for order_ids already waiting: folded into the waiting hint.
    for (let i = 10; i < 30; i++) expect((await post(rx.url, payinEvent(`FLOOD-${i}`, 'payin.failed'))).status).toBe(200);
    await until(() => rx.stats().received === 320 && rx.stats().queued === 50);
    expect(rx.stats()).toMatchObject({ queued: 50, maxQueued: 50, dropped: 300 - 2 - 50, deduplicated: 20, hints: 2 });
    expect(got).toHaveLength(2);
    release();
    await rx.idle();
    expect(mostRunning).toBe(2);
    expect(got).toHaveLength(52);
    expect(rx.stats()).toMatchObject({ queued: 0, hints: 52, outcomes: { looked_up: 52 } });
    // What a handler is given (and so all that waited): three short fields and a time, never the body.
    for (const h of got) expect(Object.keys(h).sort()).toEqual(['event', 'kind', 'orderId', 'receivedAt']);
    // The later hint for a waiting order_id replaced the earlier one.
    expect(got.find((h) => h.orderId === 'FLOOD-12')!.event).toBe('payin.failed');
  });

  it('close() drops the hints waiting at once and waits only for the lookups already running', async () => {
    let calls = 0;
    const { rx } = await receiver({
      concurrency: { payin: 2 },
      onPayinHint: async () => {
        calls++;
        await new Promise((r) => setTimeout(r, 300));
        return 'ok';
      },
    });
    for (let i = 0; i < 60; i++) expect((await post(rx.url, payinEvent(`STOP-${i}`))).status).toBe(200);
    await until(() => rx.stats().queued === 58);
    await rx.close();
    await rx.idle();
    // Nothing starts after the stop (before this, every hint was looked up however long it took).
    await new Promise((r) => setTimeout(r, 400));
    expect(calls).toBeLessThanOrEqual(2);
    expect(rx.stats()).toMatchObject({ droppedOnStop: 58, queued: 0 });
  });

  it('parseWebhookBody keeps only kind, order_id and event', () => {
    const p = parseWebhookBody(Buffer.from(JSON.stringify(payinEvent(' PIN-9 '))));
    expect(p).toEqual({ ok: true, known: true, hint: { kind: 'payin', orderId: 'PIN-9', event: 'payin.succeeded' } });
  });
});

describe.each(BACKENDS)('payin webhooks confirmed by the API and stored (%s)', (kind) => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDb(kind);
  });
  afterAll(async () => db?.close());

  async function setup(faults: Parameters<Sandbox['setFaults']>[0] = {}) {
    let rxUrl = '';
    // The sandbox needs the receiver's URL and the handler the sandbox's: start the receiver on a fixed port first.
    const client = { current: undefined as ReturnType<typeof clientFor> | undefined };
    const handlerRef: { fn?: (h: WebhookHint) => Promise<string> } = {};
    const { rx } = await receiver({ onPayinHint: (h) => handlerRef.fn!(h), onPayoutHint: () => 'ignored' });
    rxUrl = rx.url;
    const sb = await sandbox({ webhookUrl: rxUrl, settleMs: 60_000, seed: 4, faults, webhookBaseDelayMs: 20 });
    sandboxes.push(sb);
    client.current = clientFor(sb);
    handlerRef.fn = payinHintHandler({ client: client.current, db: db.knex, logger: quietLogger });
    return { rx, sb, close: () => client.current!.close() };
  }

  it('duplicated and reordered webhooks: every payin stored once with the status the API gives', async () => {
    const { rx, sb, close } = await setup({ webhookDuplicateRate: 0.5, webhookReorder: true });
    try {
      const ids = Array.from({ length: 10 }, (_, i) => `WH-${kind}-${i}`);
      ids.forEach((id, i) => sb.createPayin({ orderId: id, amountPaise: BigInt(1000 + i), outcome: i % 3 === 0 ? 'Rejected' : 'Approved' }));
      await sb.webhooksIdle();
      await rx.idle();
      sb.settleAll();
      await sb.webhooksIdle();
      await rx.idle();
      const stats = rx.stats();
      expect(stats.duplicates).toBeGreaterThan(0);
      // 10 initiated + 10 settled, plus the duplicates.
      expect(stats.received).toBe(20 + stats.duplicates);
      const stored = (await listPayins(db.knex)).filter((r) => r.order_id.startsWith(`WH-${kind}-`));
      expect(stored.map((r) => r.order_id).sort()).toEqual([...ids].sort());
      for (const [i, id] of ids.entries()) {
        const r = stored.find((x) => x.order_id === id)!;
        expect(r.status, id).toBe(i % 3 === 0 ? 'Rejected' : 'Approved');
        expect(BigInt(r.request_amount_paise!)).toBe(BigInt(1000 + i));
        expect((r.raw_event as { event: string }).event).toMatch(/^payin\./);
      }
      expect(stats.handlerErrors).toBe(0);
    } finally {
      await close();
    }
  });

  it('forged bodies: a payin.succeeded for a payin the API says is Rejected stores Rejected; unknown order_ids store nothing', async () => {
    const { rx, sb, close } = await setup();
    try {
      sb.createPayin({ orderId: `F-${kind}-REJ`, amountPaise: 500n, outcome: 'Rejected' });
      sb.createPayin({ orderId: `F-${kind}-PEND`, amountPaise: 700n });
      sb.settleAll();
      sb.createPayin({ orderId: `F-${kind}-PEND2`, amountPaise: 900n });
      await sb.webhooksIdle();
      await rx.idle();
      const before = rx.stats().outcomes;

      // The attacker claims success (and a large amount) for a rejected payin, a pending one, and one that does not exist.
      for (const id of [`F-${kind}-REJ`, `F-${kind}-PEND2`, `F-${kind}-NOPE`]) {
        expect((await post(rx.url, payinEvent(id, 'payin.succeeded', { amount: 99_999_999, status: 'Approved' }))).status).toBe(200);
      }
      await rx.idle();
      const rej = (await getPayin(db.knex, `F-${kind}-REJ`))!;
      expect(rej.status).toBe('Rejected');
      expect(BigInt(rej.amount_paise!)).toBe(0n);
      expect((await getPayin(db.knex, `F-${kind}-PEND2`))!.status).toBe('Pending');
      expect(await getPayin(db.knex, `F-${kind}-NOPE`)).toBeUndefined();
      const after = rx.stats().outcomes;
      expect((after['unknown_order'] ?? 0) - (before['unknown_order'] ?? 0)).toBe(1);
    } finally {
      await close();
    }
  });
});

describe('payouts webhooks (the command, in-process)', () => {
  it('receives payin webhooks, stores them confirmed, checks payout hints against the database, stops on the signal', { timeout: 240_000 }, async () => {
    const sbHolder: { sb?: Sandbox } = {};
    const dataDir = tmpDir('webhooks-cmd-');
    const stop = new AbortController();
    const lines: string[] = [];
    let url = '';
    const listening = new Promise<void>((resolve) => {
      void (async () => {
        const sb = await sandbox({ settleMs: 60_000 });
        sbHolder.sb = sb;
        sandboxes.push(sb);
        const io: CommandIO = {
          out: (l) => lines.push(l),
          json: false,
          cwd: dataDir,
          stopSignal: stop.signal,
          logger: quietLogger,
          config: loadConfig(
            { webhookToken: TOKEN },
            { ALLIANCE_BASE_URL: sb.url, ALLIANCE_ACCESS_KEY: KEYS.accessKey, ALLIANCE_SECRET_KEY: KEYS.secretKey, PAYOUTS_DATA_DIR: dataDir },
          ),
        };
        done = webhooksCommand(io, {
          port: 0,
          host: '127.0.0.1',
          onListening: (u) => {
            url = u;
            resolve();
          },
        });
      })();
    });
    let done: Promise<number> | undefined;
    await listening;
    const sb = sbHolder.sb!;
    expect(lines[0]).toMatch(/^Receiving webhooks on http:\/\/127\.0\.0\.1:\d+\/alliance\/webhook\/<your --webhook-token>$/);
    expect(lines.join('\n')).not.toContain(TOKEN);
    sb.createPayin({ orderId: 'CMD-1', amountPaise: 4200n });
    sb.settleAll();
    expect((await post(url, payinEvent('CMD-1', 'payin.succeeded'))).status).toBe(200);
    expect((await post(url, { event: 'payout.succeeded', data: { order_id: 'PO-9' } })).status).toBe(200);
    // Stop at once: stopping waits for the confirmations in flight.
    stop.abort();
    expect(await done!).toBe(0);
    const last = lines[lines.length - 1]!;
    expect(last).toMatch(/^Stopped: 2 received, 2 hints \(/);
    expect(last).toMatch(/inserted 1/);
    // PO-9 is no payout of ours: the hint costs one database lookup and no API call.
    expect(last).toMatch(/unknown_order 1/);

    // The stored payin, read back through the same data directory.
    const { openDb } = await import('../src/db/connect.js');
    const db = await openDb({ dataDir });
    try {
      const r = await getPayin(db.knex, 'CMD-1');
      expect(r).toMatchObject({ status: 'Approved' });
    } finally {
      await db.close();
    }
  });

  it('refuses a webhook token that is too short (exit 2 as a configuration error)', async () => {
    const io: CommandIO = {
      out: () => {},
      json: false,
      cwd: tmpDir(),
      config: loadConfig({ webhookToken: 'short' }, { ALLIANCE_BASE_URL: 'http://127.0.0.1:9', ALLIANCE_ACCESS_KEY: 'a', ALLIANCE_SECRET_KEY: 'b' }),
    };
    await expect(webhooksCommand(io, { port: 0, host: '127.0.0.1' })).rejects.toMatchObject({ exitCode: 2, message: expect.stringMatching(/at least 16/) });
  });
});
