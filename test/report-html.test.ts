/**
 * The HTML report as a person sees it: opened in a real headless Chromium (Debian's, driven by
 * playwright-core) from the file, with every network request refused, and read back from the rendered
 * page. Its numbers must equal the JSON report's summary; a screenshot is kept in test-artifacts/.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDb, type TestDb } from './helpers/db.js';
import { tmpDir } from './helpers/env.js';
import { FIXTURE_ACCOUNTS, insertFixture } from './helpers/report-fixture.js';
import { writeReports } from '../src/report/report.js';
import type { BatchSummary } from '../src/report/summary.js';
import type { ReportRow } from '../src/report/rows.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.resolve(import.meta.dirname, '..', 'test-artifacts');
// CI installs Chromium (.ci/run); a developer without it gets a skipped test, never a false pass.
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env['CI']) throw new Error(`${CHROMIUM} is missing: .ci/run installs it (apt-get install -y chromium)`);

/** "₹2,50,000.00" -> "250000.00": the page's rupees back in the JSON's form. */
function plain(text: string | null): string {
  return (text ?? '').replace(/[₹,\s]/g, '');
}

describe.skipIf(!haveChromium)('the HTML report in headless Chromium', () => {
  let db: TestDb;
  let ctx: BrowserContext;
  let page: Page;
  let html: string;
  let json: { summary: BatchSummary; rows: (ReportRow & { sent_at: string | null })[] };
  const external: string[] = [];
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    db = await freshDb('pglite');
    await insertFixture(db.knex, 'nov-2026');
    const dir = tmpDir('payouts-html-');
    const paths = await writeReports(db.knex, 'nov-2026', dir);
    html = readFileSync(paths.html, 'utf8');
    json = JSON.parse(readFileSync(paths.json, 'utf8')) as typeof json;
    ctx = await chromium.launchPersistentContext(tmpDir('payouts-chromium-profile-'), {
      executablePath: CHROMIUM,
      headless: true,
      offline: true,
      viewport: { width: 1200, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    // Self-contained means it asks for nothing: any request but the file itself is recorded and refused.
    await ctx.route('**/*', (route) => {
      const url = route.request().url();
      if (url === pathToFileURL(paths.html).href) return route.continue();
      external.push(url);
      return route.abort();
    });
    page = ctx.pages()[0] ?? (await ctx.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    await page.goto(pathToFileURL(paths.html).href, { waitUntil: 'load' });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'report.png'), fullPage: true });
  }, 120_000);

  afterAll(async () => {
    await ctx?.close();
    await db?.close();
  });

  it('renders from the file alone: no request, no script, no error; the screenshot is saved', async () => {
    expect(external).toEqual([]);
    expect(consoleErrors).toEqual([]);
    expect(await page.title()).toBe('Payout report: nov-2026');
    expect(await page.locator('script').count()).toBe(0);
    // Nothing that would fetch: no linked or embedded resource, no CSS import or url().
    expect(html).not.toMatch(/<(?:link|img|iframe|object|embed|script|base)\b|@import|url\(|\s(?:src|href|srcset)=/i);
    expect(existsSync(path.join(ARTIFACTS, 'report.png'))).toBe(true);
    // The chart is drawn, with a size.
    const box = await page.locator('svg.chart').boundingBox();
    expect(box!.width).toBeGreaterThan(500);
    expect(box!.height).toBeGreaterThan(40);
  });

  it('shows the same counts and rupees as the JSON summary in its tiles', async () => {
    const s = json.summary;
    const expected: Record<string, { count: number; amount: string }> = {
      paid: s.paid,
      rejected: s.totals.rejected,
      invalid: s.totals.invalid,
      awaiting: s.awaiting,
      not_sent: s.totals.not_sent,
      failed: s.totals.failed,
      needs_review: s.totals.needs_review,
      cancelled: s.totals.cancelled,
    };
    for (const [key, t] of Object.entries(expected)) {
      const tile = page.locator(`[data-tile="${key}"]`);
      expect(await tile.locator('[data-count]').textContent(), key).toBe(String(t.count));
      expect(plain(await tile.locator('[data-amount]').textContent()), key).toBe(t.amount);
    }
    expect(plain(await page.locator('[data-tile="charges"] [data-amount]').textContent())).toBe(s.charges);
    expect(plain(await page.locator('[data-tile="debited"] [data-amount]').textContent())).toBe(s.debited);
    expect(plain(await page.locator('[data-tile="possibly_debited"] [data-amount]').textContent())).toBe(s.possibly_debited.amount);
    // And the numbers are the fixture's, worked out by hand: paid 1500.50 + 2000 + 10; debited adds the
    // pending 500 and the charges of paid and pending (5.90 + 5.90 + 1.00 + 2.00), not the rejected one.
    expect(s.paid).toEqual({ count: 3, amount: '3510.50' });
    expect(s.charges).toBe('14.80');
    expect(s.debited).toBe('4025.30');
  });

  it('draws the breakdown chart from the same numbers, widths in proportion', async () => {
    const s = json.summary;
    for (const kind of ['rows', 'amount'] as const) {
      const rects = await page.locator(`svg.chart rect[data-kind="${kind}"]`).evaluateAll((els) =>
        els.map((e) => ({ status: e.getAttribute('data-status')!, value: e.getAttribute('data-value')!, width: Number(e.getAttribute('width')) })),
      );
      const statuses = Object.entries(s.counts).filter(([, n]) => n > 0).map(([k]) => k);
      expect(rects.map((r) => r.status).sort()).toEqual(statuses.sort());
      const total = rects.reduce((a, r) => a + Number(r.value), 0);
      const width = rects.reduce((a, r) => a + r.width, 0);
      for (const r of rects) {
        const st = r.status as keyof BatchSummary['counts'];
        expect(r.value).toBe(kind === 'rows' ? String(s.counts[st]) : s.totals[st].amount);
        expect(r.width / width).toBeCloseTo(Number(r.value) / total, 2);
      }
    }
  });

  it('tables by method and by bank equal the summary', async () => {
    const s = json.summary;
    for (const m of s.by_method) {
      const cells = await page.locator(`[data-table="method"] tr[data-method="${m.method ?? ''}"] td`).allTextContents();
      expect(cells[0]).toBe(m.method);
      expect(Number(cells[1])).toBe(m.rows);
      expect(plain(cells[2]!)).toBe(m.amount);
      expect(Number(cells[3])).toBe(m.counts.approved);
      expect(plain(cells[4]!)).toBe(m.totals.approved.amount);
      expect(plain(cells[8]!)).toBe(m.charges);
      expect(plain(cells[9]!)).toBe(m.debited);
    }
    for (const b of s.by_bank) {
      const cells = await page.locator(`[data-table="bank"] tr[data-bank="${b.bank_code ?? ''}"] td`).allTextContents();
      expect(cells[0]).toBe(b.bank_name);
      expect(Number(cells[2])).toBe(b.rows);
      expect(plain(cells[10]!)).toBe(b.debited);
    }
    expect(await page.locator('[data-table="bank"] tr[data-bank="SBIN"] td').first().textContent()).toBe('State Bank of India');
  });

  it('lists every row not paid with its reason, names shown as text (escaped), accounts masked', async () => {
    const notPaid = json.rows.filter((r) => r.status !== 'approved');
    const shown = page.locator('[data-table="not-paid"] tbody tr');
    expect(await shown.count()).toBe(notPaid.length);
    for (const r of notPaid) {
      const tr = page.locator(`[data-table="not-paid"] tr[data-row="${r.row}"]`);
      const cells = await tr.locator('td').allTextContents();
      expect(cells[2]).toBe(r.beneficiary_name);
      expect(cells[3]).toBe(r.account);
      expect(cells[6]).toContain(r.reason);
    }
    // A name with markup is text on the page, not markup; Hindi survives.
    expect(await page.locator('[data-row="5"] td').nth(2).textContent()).toBe('Bad Ifsc <b>&amp;</b>');
    expect(await page.locator('b').count()).toBe(0);
    expect(await page.locator('[data-row="9"] td').nth(2).textContent()).toBe('मोहन लाल & Sons');
    const text = await page.locator('body').innerText();
    for (const acc of FIXTURE_ACCOUNTS) expect(text).not.toContain(acc);
    for (const acc of FIXTURE_ACCOUNTS) expect(html).not.toContain(acc);
  });

  it('shows the timings in IST with the offset', async () => {
    const s = json.summary;
    expect(await page.locator('[data-time="Started sending"]').textContent()).toBe(s.started_at!.replace('T', ' ').replace('+05:30', ' +05:30'));
    expect(await page.locator('[data-time="Started sending"]').textContent()).toBe('2026-11-27 14:05:09 +05:30');
    expect(await page.locator('[data-time="Finished"]').textContent()).toBe('—');
  });
});
