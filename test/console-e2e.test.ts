/// <reference lib="dom" />
/**
 * Issue 19, done when: the ops console driven in a real headless Chromium (Debian's, through playwright-core),
 * as the people of a payroll team use it: upload, a refused self-approval, a first approval, a second one above
 * the threshold, live progress to completion against the sandbox without a reload, the report downloads, the
 * change plan flagging a known payee's new account; and the security cases (no session, a bad CSRF token, a
 * wrong password, a viewer approving, a disabled user). Every page is saved as a screenshot in
 * test-artifacts/console/. The far side is checked too: what the sandbox executed, what the browser keeps as
 * the session cookie, and that no page asks for anything from anywhere else.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_COOKIE } from '../src/console/server.js';
import { consoleWorld, PASSWORDS, payrollCsv, type ConsoleWorld } from './helpers/console.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = path.resolve(import.meta.dirname, '..', 'test-artifacts', 'console');
// CI installs Chromium (.ci/run); a developer without it gets a skipped test, never a false pass.
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env['CI']) throw new Error(`${CHROMIUM} is missing: .ci/run installs it (apt-get install -y chromium)`);

describe.skipIf(!haveChromium)('the ops console in headless Chromium', () => {
  let w: ConsoleWorld;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  /** Requests for anything but the console itself: the pages must fetch nothing from anywhere else. */
  const elsewhere: string[] = [];
  const pageErrors: string[] = [];
  const shots: string[] = [];

  beforeAll(async () => {
    // Payouts stay pending until the test settles them, so the live counts can be watched moving.
    w = await consoleWorld({ loginRateLimit: { max: 50, timeWindowMs: 60_000 } }, { settleMs: 600_000 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    mkdirSync(SHOTS, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await w?.close();
  });

  /** A person's own browser profile: cookies of their own, every request outside the console refused and recorded. */
  async function person(): Promise<Page> {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    contexts.push(ctx);
    await ctx.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(`${w.url}/`)) return route.continue();
      elsewhere.push(url);
      return route.abort();
    });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      // The refusals this test provokes (401, 403) are asserted where they happen; anything else is a fault.
      if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of 40[13] /.test(m.text())) pageErrors.push(m.text());
    });
    return page;
  }

  async function shot(page: Page, name: string): Promise<void> {
    const file = path.join(SHOTS, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    shots.push(file);
  }

  async function logIn(page: Page, name: string, password = PASSWORDS[name]!): Promise<void> {
    if (!page.url().includes('/login')) await page.goto(`${w.url}/login`);
    await page.fill('#username', name);
    await page.fill('#password', password);
    await Promise.all([page.waitForLoadState('load'), page.click('button:has-text("Log in")')]);
  }

  const flash = (page: Page) => page.locator('[data-flash]').innerText();
  const tile = (page: Page, status: string) => page.locator(`[data-status="${status}"] [data-count]`);

  /** A POST the page's own script could make, with the session's CSRF token from its forms: what a forged button would do. */
  async function postFromPage(page: Page, p: string): Promise<{ status: number; message: string }> {
    return page.evaluate(async (url) => {
      const token = (document.querySelector('input[name="_csrf"]') as HTMLInputElement).value;
      const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': token }, body: '{}' });
      const body = (await r.json()) as { error?: { message: string } };
      return { status: r.status, message: body.error?.message ?? '' };
    }, p);
  }

  it('upload, a refused self-approval, two approvals above the threshold, live progress to completion, the reports', async () => {
    const before = w.sb.ledger().length;
    // asha, a checker, uploads: ₹1,000 + 1,010 + 1,020 = ₹3,030 valid (above ₹2,000: two checkers besides her) and one bad IFSC.
    const asha = await person();
    await asha.goto(`${w.url}/`);
    expect(new URL(asha.url()).pathname).toBe('/login');
    await shot(asha, '01-login');
    await logIn(asha, 'asha');
    expect(new URL(asha.url()).pathname).toBe('/batches');
    expect(await asha.locator('[data-user]').innerText()).toBe('asha (checker)');

    // The session cookie as the browser keeps it (and sends back over http://127.0.0.1, or nothing below works).
    const cookie = (await asha.context().cookies()).find((c) => c.name === SESSION_COOKIE)!;
    expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict', domain: '127.0.0.1', path: '/' });
    expect(await asha.evaluate(() => document.cookie)).not.toContain(SESSION_COOKIE);

    await asha.setInputFiles('form[data-form="upload"] input[type="file"]', { name: 'nov.csv', mimeType: 'text/csv', buffer: Buffer.from(payrollCsv(3, { invalid: 1, tag: 'nov' })) });
    await asha.fill('form[data-form="upload"] input[name="batch"]', 'nov');
    await Promise.all([asha.waitForURL(`${w.url}/batches/nov`), asha.click('button:has-text("Upload and check")')]);
    expect(await flash(asha)).toMatch(/nov\.csv uploaded as batch nov \(revision 1\): 3 valid rows totalling ₹3,030\.00, 1 invalid\. Nothing is sent until it is approved\./);
    expect(await asha.locator('[data-batch-state]').innerText()).toBe('awaiting approval');
    expect(await tile(asha, 'not_sent').innerText()).toBe('3');
    expect(await tile(asha, 'invalid').innerText()).toBe('1');
    expect(await asha.locator('[data-balance-after]').innerText()).toBe('₹9,99,96,970.00');
    const invalid = asha.locator('table[data-table="invalid"] tbody tr');
    expect(await invalid.count()).toBe(1);
    expect(await invalid.first().innerText()).toMatch(/ifsc/i);
    // Account numbers masked on the page: no full number of the file anywhere in it.
    const text = await asha.locator('body').innerText();
    for (let i = 0; i < 3; i++) expect(text).not.toContain(`${7600000000 + i}1`);
    expect(text).toMatch(/no earlier batch paid any of these payees: everyone is new/);

    // The uploader may not approve: no button, the page says why, and a forged POST is refused by the engine.
    expect(await asha.locator('form[data-form="approve"]').count()).toBe(0);
    expect(await asha.locator('[data-cannot-approve]').innerText()).toMatch(/You uploaded this batch: another checker must approve or reject it/);
    const self = await postFromPage(asha, '/api/batches/nov/approve');
    expect(self).toEqual({ status: 403, message: expect.stringMatching(/"asha" uploaded batch "nov": another checker must approve it/) });
    await shot(asha, '02-uploaded-self-approval-refused');
    expect(w.sb.ledger().length).toBe(before);

    // bala approves: one checker is not enough above ₹2,000, nothing is sent.
    const bala = await person();
    await bala.goto(`${w.url}/batches/nov`);
    expect(new URL(bala.url()).pathname).toBe('/login');
    await logIn(bala, 'bala');
    expect(new URL(bala.url()).pathname).toBe('/batches/nov'); // back where the link pointed
    await bala.fill('form[data-form="approve"] input[name="note"]', 'checked the plan');
    await Promise.all([bala.waitForLoadState('load'), bala.click('button:has-text("Approve revision 1")')]);
    expect(await flash(bala)).toMatch(/Approved by bala: .*a second one because its total is above ₹2,000\.00/);
    expect(await bala.locator('[data-approved-by]').innerText()).toBe('bala');
    await shot(bala, '03-first-approval');
    await w.console.runs.idle();
    expect(w.sb.ledger().length).toBe(before);

    // cara's approval meets the policy: the batch runs in the console, and her page follows it without a reload.
    const cara = await person();
    await logIn(cara, 'cara');
    await cara.goto(`${w.url}/batches/nov`);
    await Promise.all([cara.waitForLoadState('load'), cara.click('button:has-text("Approve revision 1")')]);
    expect(await flash(cara)).toMatch(/Approved by cara: the policy is met: the batch is running/);
    await cara.evaluate(() => ((window as unknown as { sameDocument: boolean }).sameDocument = true));
    await cara.waitForFunction(() => document.querySelector('[data-status="pending"] [data-count]')?.textContent === '3', undefined, { timeout: 30_000 });
    expect(await cara.locator('[data-status="pending"] [data-amount]').innerText()).toBe('₹3,030.00');
    expect(await tile(cara, 'not_sent').innerText()).toBe('0');
    await shot(cara, '04-live-progress-pending');
    expect(w.sb.ledger().length - before).toBe(3);
    w.sb.settleAll();
    await cara.waitForFunction(() => /finished/.test(document.querySelector('[data-last-run]')?.textContent ?? ''), undefined, { timeout: 30_000 });
    expect(await tile(cara, 'approved').innerText()).toBe('3');
    expect(await cara.locator('[data-status="approved"] [data-amount]').innerText()).toBe('₹3,030.00');
    expect(await tile(cara, 'pending').innerText()).toBe('0');
    expect(await cara.locator('[data-batch-state]').innerText()).toBe('finished');
    expect(await cara.locator('[data-phase]').innerText()).toBe('done');
    expect(await cara.locator('[data-last-run]').innerText()).toMatch(/run finished \(exit 1\): finished: 3 paid, 1 not paid \(1 invalid\)/); // exit 1: the invalid row
    expect(await cara.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument)).toBe(true); // no reload
    await shot(cara, '05-live-progress-finished');
    // The far side: each of the three payouts executed once.
    const created = w.sb.ledger().slice(before);
    expect(created).toHaveLength(3);
    for (const e of created) expect(w.sb.executions(e.orderId)).toBe(1);

    // The list: state, totals and who did what.
    await cara.goto(`${w.url}/batches`);
    const row = cara.locator('tr[data-batch-row="nov"]');
    expect(await row.locator('[data-state]').innerText()).toBe('finished');
    expect(await row.innerText()).toMatch(/3 · ₹3,030\.00[\s\S]*asha[\s\S]*bala, cara/);
    await shot(cara, '06-batches');

    // The downloads: the CSV as a file, masked; the HTML report opened in the browser.
    await cara.goto(`${w.url}/batches/nov`);
    const [download] = await Promise.all([cara.waitForEvent('download'), cara.click('a[data-report="csv"]')]);
    expect(download.suggestedFilename()).toBe('nov.csv');
    const csv = readFileSync((await download.path())!, 'utf8');
    expect(csv.split('\n').filter((l) => /,paid,/.test(l))).toHaveLength(3);
    for (let i = 0; i < 3; i++) expect(csv).not.toContain(`${7600000000 + i}1`);
    const [json] = await Promise.all([cara.waitForEvent('download'), cara.click('a[data-report="json"]')]);
    const report = JSON.parse(readFileSync((await json.path())!, 'utf8')) as { summary: { paid: unknown; approvals: { by: string }[] } };
    expect(report.summary.paid).toEqual({ count: 3, amount: '3030.00' });
    expect(report.summary.approvals.map((a) => a.by)).toEqual(['bala', 'cara']);
    await Promise.all([cara.waitForURL(`${w.url}/api/batches/nov/report.html`), cara.click('a[data-report="html"]')]);
    expect(await cara.title()).toBe('Payout report: nov');
    await shot(cara, '07-html-report');
  }, 180_000);

  it("the change plan on the approval page flags a known payee's new account, masked to the last 4 digits", async () => {
    // December's file: the same three people, Payee dec1 (E2) with another account; other amounts, so no repeat.
    const maya = await person();
    await logIn(maya, 'maya');
    const csv = payrollCsv(3, { base: 1500, tag: 'nov', accountOf: (i) => (i === 1 ? '99887766554321' : `${7600000000 + i}1`) });
    await maya.setInputFiles('form[data-form="upload"] input[type="file"]', { name: 'dec.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
    await Promise.all([maya.waitForURL(`${w.url}/batches/dec`), maya.click('button:has-text("Upload and check")')]);
    const bala = await person();
    await logIn(bala, 'bala');
    await bala.goto(`${w.url}/batches/dec`);
    const changed = bala.locator('[data-plan="bank-changed"]');
    expect(await changed.count()).toBe(1);
    const line = await changed.innerText();
    expect(line).toMatch(/CHANGED BANK DETAILS: row 3 Payee nov1/);
    expect(line).toMatch(/account X+0011 → X+4321/); // old 76000000011, new 99887766554321, both masked
    expect(line).not.toMatch(/76000000011|99887766554321/);
    expect(await bala.locator('body').innerText()).toMatch(/compared with batch nov, the previous batch that paid these payees/);
    await shot(bala, '08-change-plan-bank-changed');
  }, 60_000);

  it('security: no session, a wrong password, a bad CSRF token, a viewer approving, a disabled user', async () => {
    // No session: pages send to the login, the API and downloads answer 401.
    const anon = await person();
    await anon.goto(`${w.url}/batches/nov`);
    expect(anon.url()).toBe(`${w.url}/login?next=%2Fbatches%2Fnov`);
    const dl = await anon.request.get(`${w.url}/api/batches/nov/report.csv`);
    expect(dl.status()).toBe(401);
    expect(await dl.text()).not.toMatch(/Payee/);
    await shot(anon, '09-no-session-login');

    // A wrong password: 401, the page says so, no cookie kept.
    const [resp] = await Promise.all([anon.waitForResponse((r) => r.url() === `${w.url}/login` && r.request().method() === 'POST'), logIn(anon, 'maya', 'not-her-password')]);
    expect(resp.status()).toBe(401);
    expect(await anon.locator('[data-flash="error"]').innerText()).toMatch(/wrong user name or password/);
    expect((await anon.context().cookies()).map((c) => c.name)).not.toContain(SESSION_COOKIE);
    await shot(anon, '10-wrong-password');

    // A bad CSRF token on a real form: 403, nothing stored.
    const maya = await person();
    await logIn(maya, 'maya');
    await maya.setInputFiles('form[data-form="upload"] input[type="file"]', { name: 'forged.csv', mimeType: 'text/csv', buffer: Buffer.from(payrollCsv(2, { base: 200, tag: 'forged' })) });
    await maya.evaluate(() => ((document.querySelector('form[data-form="upload"] input[name="_csrf"]') as HTMLInputElement).value = 'forged-token'));
    const [up] = await Promise.all([maya.waitForResponse((r) => r.url() === `${w.url}/api/batches` && r.request().method() === 'POST'), maya.click('button:has-text("Upload and check")')]);
    expect(up.status()).toBe(403);
    await maya.waitForLoadState('load');
    expect(await maya.locator('[data-status-code]').innerText()).toMatch(/Not allowed \(403\)/);
    expect(await maya.locator('[data-error]').innerText()).toMatch(/refused, nothing changed: the request's CSRF token is missing or not this session's .*reload it and try again/);
    await shot(maya, '11-bad-csrf-token');
    await maya.goto(`${w.url}/batches`);
    expect(await maya.locator('tr[data-batch-row="forged"]').count()).toBe(0);

    // A viewer: no approve button, and a forged approval is refused.
    const vik = await person();
    await logIn(vik, 'vik');
    expect(await vik.locator('form[data-form="upload"]').count()).toBe(0);
    await vik.goto(`${w.url}/batches/dec`);
    expect(await vik.locator('form[data-form="approve"]').count()).toBe(0);
    expect(await vik.locator('body').innerText()).toMatch(/Only a checker other than its uploader approves or rejects a batch; you are a viewer/);
    expect(await postFromPage(vik, '/api/batches/dec/approve')).toEqual({ status: 403, message: expect.stringMatching(/for checker users; "vik" is a viewer/) });
    await shot(vik, '12-viewer-cannot-approve');

    // A disabled user: dan is logged in; the admin disables him; his next click lands on the login, which refuses him.
    const dan = await person();
    await logIn(dan, 'dan');
    await dan.goto(`${w.url}/batches/dec`);
    expect(await dan.locator('form[data-form="approve"]').count()).toBe(1);
    const ravi = await person();
    await logIn(ravi, 'ravi');
    await ravi.goto(`${w.url}/users`);
    await Promise.all([ravi.waitForLoadState('load'), ravi.locator('tr[data-user-row="dan"] button:has-text("Disable")').click()]);
    expect(await ravi.locator('tr[data-user-row="dan"]').innerText()).toMatch(/disabled/);
    await shot(ravi, '13-admin-disabled-dan');
    const [refused] = await Promise.all([dan.waitForResponse((r) => r.url().endsWith('/api/batches/dec/approve')), dan.click('button:has-text("Approve revision 1")')]);
    expect(refused.status()).toBe(303);
    await dan.waitForURL(/\/login\?next=/);
    await logIn(dan, 'dan');
    expect(new URL(dan.url()).pathname).toBe('/login');
    expect(await dan.locator('[data-flash="error"]').innerText()).toMatch(/disabled/);
    await shot(dan, '14-disabled-user');
    // Nothing of dec was approved by dan, and nothing sent for it.
    const api = await vik.request.get(`${w.url}/api/batches/dec`);
    const d = (await api.json()) as { approval: { approved_by: string[] }; counts: { not_sent: number } };
    expect(d.approval.approved_by).toEqual([]);
    expect(d.counts.not_sent).toBe(3);
  }, 120_000);

  it('no page asked for anything outside the console, and no script failed', () => {
    expect(elsewhere).toEqual([]);
    expect(pageErrors).toEqual([]);
    expect(shots.length).toBe(14);
    for (const s of shots) expect(readFileSync(s).subarray(1, 4).toString()).toBe('PNG');
  });
});
