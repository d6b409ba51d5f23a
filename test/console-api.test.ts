/**
 * Issue 19 point 4: the console's JSON API, in-process on port 0 over PGlite and the sandbox. Sessions and
 * their cookie, 401 without one, 403 without (or with a wrong) CSRF token, wrong passwords, disabled users,
 * the login's rate limit, the roles (a viewer or maker approving, the uploader approving their own upload),
 * a second approval above the threshold, and upload → approvals → a run to completion → the reports.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, consoleWorld, payrollCsv, type ConsoleWorld } from './helpers/console.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function json(r: Response): Promise<Json> {
  return (await r.json()) as Json;
}

describe('the console API', () => {
  let w: ConsoleWorld;
  beforeAll(async () => {
    w = await consoleWorld({ loginRateLimit: { max: 30, timeWindowMs: 60_000 } });
  }, 60_000);
  afterAll(async () => w?.close());
  const as = async (name: string) => {
    const c = new ApiClient(w.url);
    const r = await c.login(name);
    expect(r.status, `login of ${name}`).toBe(200);
    return c;
  };

  it('no session: 401 for every API path and download, a redirect to the login for pages', async () => {
    const anon = new ApiClient(w.url);
    for (const [m, p] of [
      ['GET', '/api/batches'],
      ['GET', '/api/batches/x'],
      ['GET', '/api/batches/x/report.csv'],
      ['GET', '/api/batches/x/report.html'],
      ['GET', '/api/batches/x/events'],
      ['POST', '/api/batches/x/approve'],
      ['GET', '/api/users'],
      ['GET', '/api/audit'],
    ] as const) {
      const r = await anon.req(m, p, m === 'POST' ? { json: {} } : {});
      expect(r.status, `${m} ${p}`).toBe(401);
    }
    expect((await anon.upload(payrollCsv(1), 'a.csv')).status).toBe(401);
    const page = await anon.req('GET', '/batches');
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe('/login?next=%2Fbatches');
    // A made-up cookie is no session.
    anon.cookie = 'payouts_session=forged';
    expect((await anon.req('GET', '/api/batches')).status).toBe(401);
  });

  it('login: a cookie that is HttpOnly, SameSite=Strict and Secure, and a CSRF token; wrong password 401; logout ends the session', async () => {
    const c = new ApiClient(w.url);
    const bad = await c.login('maya', 'not-her-password');
    expect(bad.status).toBe(401);
    expect(bad.headers.get('set-cookie') ?? '').not.toMatch(/payouts_session=/);
    expect((await json(bad)).error.message).toMatch(/wrong user name or password/);
    expect((await c.login('nobody-here', 'whatever-pass')).status).toBe(401);
    const ok = await c.login('maya');
    expect(ok.status).toBe(200);
    expect(c.setCookie).toMatch(/payouts_session=[\w-]{43};/);
    expect(c.setCookie).toMatch(/HttpOnly/i);
    expect(c.setCookie).toMatch(/SameSite=Strict/i);
    expect(c.setCookie).toMatch(/Secure/i);
    expect(c.csrf).toMatch(/\S{20,}/);
    const me = await json(await c.req('GET', '/api/session'));
    expect(me).toMatchObject({ user: 'maya', role: 'maker' });
    // Logout is a state change: it needs the token too.
    expect((await c.req('DELETE', '/api/session', { csrf: false })).status).toBe(403);
    expect((await c.req('DELETE', '/api/session')).status).toBe(204);
    expect((await c.req('GET', '/api/batches')).status).toBe(401);
  });

  it('CSRF: a state-changing request without the token, with a wrong one or with another session\'s is 403 and changes nothing', async () => {
    const maya = await as('maya');
    const other = await as('ravi');
    const csv = payrollCsv(2, { base: 100, tag: 'csrf' });
    for (const csrf of [false, 'not-a-token', other.csrf!] as const) {
      const r = await maya.upload(csv, 'csrf-test.csv', {}, { csrf });
      expect(r.status, String(csrf)).toBe(403);
    }
    expect((await json(await maya.req('GET', '/api/batches'))).batches.map((b: Json) => b.batch)).not.toContain('csrf-test');
    // The right token works.
    const r = await maya.upload(csv, 'csrf-test.csv');
    expect(r.status).toBe(201);
    // And a JSON action: approving without the token is refused before the role is even looked at.
    const asha = await as('asha');
    expect((await asha.req('POST', '/api/batches/csrf-test/approve', { json: {}, csrf: false })).status).toBe(403);
    expect((await json(await asha.req('GET', '/api/batches/csrf-test'))).approvals).toEqual([]);
  });

  it('a disabled user cannot log in, and a session they had ends at once', async () => {
    const dan = await as('dan');
    expect((await dan.req('GET', '/api/batches')).status).toBe(200);
    const ravi = await as('ravi');
    const maya = await as('maya');
    // Only an admin disables.
    expect((await maya.req('POST', '/api/users/dan/disable', { json: {} })).status).toBe(403);
    const off = await ravi.req('POST', '/api/users/dan/disable', { json: {} });
    expect(off.status).toBe(200);
    expect((await dan.req('GET', '/api/batches')).status).toBe(401);
    const again = await new ApiClient(w.url).login('dan');
    expect(again.status).toBe(401);
    expect((await json(again)).error.message).toMatch(/disabled/);
    const users = await json(await ravi.req('GET', '/api/users'));
    expect(users.users.find((u: Json) => u.name === 'dan').disabled_at).toBeTruthy();
  });

  it('upload → 201 with the validation summary; a viewer may not upload; approvals by role; a second above the threshold; the run; the reports', async () => {
    const asha = await as('asha');
    const bala = await as('bala');
    const cara = await as('cara');
    const maya = await as('maya');
    const vik = await as('vik');
    // ₹1,000 + 1,010 + 1,020 = ₹3,030 valid: above ₹2,000, so two checkers besides the uploader; one invalid row.
    const csv = payrollCsv(3, { invalid: 1, tag: 'nov' });
    expect((await vik.upload(csv, 'nov.csv')).status).toBe(403);
    const up = await asha.upload(csv, 'nov.csv', { user_id: 'M1' });
    const body = await json(up);
    expect(up.status, JSON.stringify(body)).toBe(201);
    expect(body.batch).toBe('nov');
    expect(body.validation).toMatchObject({ refused: false, rows: 4, valid: 3, invalid: 1, total: '3030.00' });
    expect(body.validation.problems.some((p: Json) => p.row === 5 && p.field === 'ifsc' && p.severity === 'error')).toBe(true);
    const before = w.sb.ledger().length;
    const view = await json(await maya.req('GET', '/api/batches/nov'));
    expect(view).toMatchObject({ batch: 'nov', state: 'awaiting approval', uploaded_by: 'asha' });
    expect(view.counts).toMatchObject({ not_sent: 3, invalid: 1 });
    expect(view.totals.not_sent.amount).toBe('3030.00');
    expect(view.invalid_rows[0].reason).toMatch(/ifsc/i);
    expect(view.balance.amount).toBe('100000000.00');
    expect(view.balance.after).toBe('99996970.00');

    // A viewer or a maker may not approve; the uploader may not approve their own upload (the engine's reason).
    const byViewer = await vik.req('POST', '/api/batches/nov/approve', { json: {} });
    expect(byViewer.status).toBe(403);
    expect((await json(byViewer)).error.message).toMatch(/for checker users; "vik" is a viewer/);
    expect((await maya.req('POST', '/api/batches/nov/approve', { json: {} })).status).toBe(403);
    const self = await asha.req('POST', '/api/batches/nov/approve', { json: {} });
    expect(self.status).toBe(403);
    expect((await json(self)).error.message).toMatch(/"asha" uploaded batch "nov": another checker must approve it/);
    expect((await asha.req('POST', '/api/batches/nov/reject', { json: {} })).status).toBe(403);
    // Resume by a viewer is refused; by a maker it is started, and the policy holds it back: nothing sent.
    expect((await vik.req('POST', '/api/batches/nov/resume', { json: {} })).status).toBe(403);
    expect((await maya.req('POST', '/api/batches/nov/resume', { json: {} })).status).toBe(202);
    await w.console.runs.idle();
    expect(w.sb.ledger().length).toBe(before);
    expect((await json(await maya.req('GET', '/api/batches/nov'))).last_run.message).toMatch(/not approved: it needs 2 approvals/);

    // One checker is not enough above ₹2,000.
    const one = await bala.req('POST', '/api/batches/nov/approve', { json: { note: 'checked the plan' } });
    const oneBody = await json(one);
    expect(one.status).toBe(200);
    expect(oneBody).toMatchObject({ decision: 'approved', by: 'bala', started: false });
    expect(oneBody.approval).toMatchObject({ met: false, needed: 2, approved_by: ['bala'] });
    expect(oneBody.approval.missing).toMatch(/a second one because its total is above ₹2,000\.00/);
    // The same checker twice is still one.
    expect((await json(await bala.req('POST', '/api/batches/nov/approve', { json: {} }))).approval.met).toBe(false);
    await w.console.runs.idle();
    expect(w.sb.ledger().length).toBe(before);

    // The second, different checker: the policy is met and the batch runs in the console.
    const two = await json(await cara.req('POST', '/api/batches/nov/approve', { json: { revision: 1 } }));
    expect(two).toMatchObject({ started: true, approval: { met: true, approved_by: ['bala', 'cara'] } });
    await w.console.runs.idle();
    expect(w.sb.ledger().length - before).toBe(3);
    const done = await json(await vik.req('GET', '/api/batches/nov'));
    expect(done.state).toBe('finished');
    expect(done.counts).toMatchObject({ approved: 3, invalid: 1, not_sent: 0, sending: 0, pending: 0 });
    expect(done.totals.approved.amount).toBe('3030.00');
    expect(done.approvals.map((a: Json) => [a.by, a.from])).toEqual([
      ['bala', '127.0.0.1'],
      ['bala', '127.0.0.1'],
      ['cara', '127.0.0.1'],
    ]);

    // The list: state, totals and who did what.
    const list = await json(await vik.req('GET', '/api/batches'));
    expect(list.batches.find((b: Json) => b.batch === 'nov')).toMatchObject({ state: 'finished', uploaded_by: 'asha', approval: { approved_by: ['bala', 'cara'] }, paid: { count: 3, amount: '3030.00' } });

    // Downloads, by the report code of every run: the viewer may read them.
    const csvR = await vik.req('GET', '/api/batches/nov/report.csv');
    expect(csvR.status).toBe(200);
    expect(csvR.headers.get('content-type')).toMatch(/text\/csv/);
    expect(csvR.headers.get('content-disposition')).toMatch(/attachment; filename="nov.csv"/);
    const csvText = await csvR.text();
    expect(csvText.split('\n').filter((l) => /,paid,/.test(l))).toHaveLength(3);
    expect(csvText).not.toMatch(/76000000001/);
    const jsonR = await json(await vik.req('GET', '/api/batches/nov/report.json'));
    expect(jsonR.summary.paid).toEqual({ count: 3, amount: '3030.00' });
    expect(jsonR.summary.approvals.map((a: Json) => a.by)).toEqual(['bala', 'bala', 'cara']);
    const htmlR = await vik.req('GET', '/api/batches/nov/report.html');
    expect(htmlR.status).toBe(200);
    expect(await htmlR.text()).toMatch(/<title>Payout report: nov<\/title>/);
    expect((await vik.req('GET', '/api/batches/nov/report.xml')).status).toBe(404);

    // The audit: who, what, from where.
    const audit = (await json(await vik.req('GET', '/api/audit?batch=nov'))).audit as Json[];
    const trail = audit.map((a) => `${a.actor} ${a.action} ${a.from}`).reverse();
    // (maya's resume refused by the policy sent nothing, and the engine records only a resume that runs, as in the CLI.)
    expect(trail).toEqual(['asha upload 127.0.0.1', 'bala approve 127.0.0.1', 'bala approve 127.0.0.1', 'cara approve 127.0.0.1', 'cara resume 127.0.0.1']);
  });

  it('a rejection stops the revision; cancel and reconcile are started in the background; one job per batch', async () => {
    const maya = await as('maya');
    const bala = await as('bala');
    const vik = await as('vik');
    expect((await maya.upload(payrollCsv(2, { base: 300, tag: 'dec', accountOf: (i) => `${5500000000 + i}3` }), 'dec.csv')).status).toBe(201);
    const rej = await json(await bala.req('POST', '/api/batches/dec/reject', { json: { note: 'wrong month' } }));
    expect(rej).toMatchObject({ decision: 'rejected', approval: { met: false, rejected_by: ['bala'] } });
    expect((await json(await vik.req('GET', '/api/batches/dec'))).state).toBe('rejected');
    expect((await vik.req('POST', '/api/batches/dec/cancel', { json: {} })).status).toBe(403);
    expect((await maya.req('POST', '/api/batches/dec/cancel', { json: {} })).status).toBe(202);
    await w.console.runs.idle();
    const after = await json(await vik.req('GET', '/api/batches/dec'));
    expect(after.state).toBe('cancelled');
    expect(after.counts.cancelled).toBe(2);
    // One job per batch: a reconcile of a slow API is still running when the second is asked for.
    w.sb.setFaults({ latencyMs: 400 });
    try {
      expect((await maya.req('POST', '/api/batches/nov/reconcile', { json: {} })).status).toBe(202);
      const busy = await maya.req('POST', '/api/batches/nov/resume', { json: {} });
      expect(busy.status).toBe(409);
      expect((await json(busy)).error.message).toMatch(/already being worked on here \(reconcile, started by maya\)/);
      await w.console.runs.idle();
    } finally {
      w.sb.setFaults({});
    }
    expect((await json(await vik.req('GET', '/api/batches/nov'))).last_run.message).toMatch(/3 rows checked against the API, 3 agree/);
    expect((await maya.req('POST', '/api/batches/nope/resume', { json: {} })).status).toBe(404);
  });

  it('live progress: the events stream sends the counts and rupees per status', async () => {
    const vik = await as('vik');
    const r = await vik.req('GET', '/api/batches/nov/events');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = r.body!.getReader();
    let text = '';
    while (!/\n\n/.test(text)) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    const m = /event: summary\ndata: (.*)\n\n/.exec(text);
    expect(m).not.toBeNull();
    expect(JSON.parse(m![1]!)).toMatchObject({ batch: 'nov', state: 'finished', counts: { approved: 3 }, totals: { approved: { count: 3, amount: '3030.00' } } });
  });

  it('admins manage users and the policy; nobody else', async () => {
    const ravi = await as('ravi');
    const asha = await as('asha');
    expect((await asha.req('POST', '/api/users', { json: { name: 'eve', role: 'checker', password: 'eve-secret-01' } })).status).toBe(403);
    expect((await asha.req('GET', '/api/users')).status).toBe(403);
    const add = await ravi.req('POST', '/api/users', { json: { name: 'eve', role: 'checker', password: 'eve-secret-01' } });
    expect(add.status).toBe(201);
    expect((await new ApiClient(w.url).login('eve', 'eve-secret-01')).status).toBe(200);
    expect((await asha.req('POST', '/api/policy', { json: { checkers: 2 } })).status).toBe(403);
    const pol = await json(await ravi.req('POST', '/api/policy', { json: { checkers: 2, second_above: '10,00,000' } }));
    expect(pol).toMatchObject({ enabled: true, checkers: 2, second_above: '1000000.00' });
    expect((await json(await ravi.req('POST', '/api/policy', { json: { checkers: 1, second_above: '2,000' } }))).checkers).toBe(1);
  });
});

describe('the console login rate limit', () => {
  let w: ConsoleWorld;
  beforeAll(async () => {
    w = await consoleWorld({ loginRateLimit: { max: 3, timeWindowMs: 60_000 } });
  }, 60_000);
  afterAll(async () => w?.close());

  it('the fourth login attempt in the window is 429, even with the right password', async () => {
    const c = new ApiClient(w.url);
    for (let i = 0; i < 3; i++) expect((await c.login('maya', 'wrong-password-x')).status).toBe(401);
    const r = await c.login('maya');
    expect(r.status).toBe(429);
    expect(c.cookie).toBeUndefined();
  });
});
