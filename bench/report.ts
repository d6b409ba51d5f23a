/**
 * The report benchmark (not a test): how long writeReports (CSV + JSON + HTML) takes for a large batch,
 * and the memory it needs, on PGlite or PostgreSQL. Numbers go in BENCHMARKS.md.
 *
 *   npm run build && node dist/bench/report.js                 # 100,000 rows on PGlite
 *   BENCH_REPORT_ROWS=1000000 node dist/bench/report.js
 *   DATABASE_URL=postgres://… node dist/bench/report.js        # on a fresh database of that server
 *
 * Rows are generated in the database (generate_series): 90 % approved, 4 % rejected, 3 % invalid,
 * 1 % failed, 1 % pending, 1 % not sent; 30 banks, four methods.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import knexFactory from 'knex';
import { openDb } from '../src/db/connect.js';
import { insertBatch } from '../src/db/batches.js';
import { writeReport, writeReports } from '../src/report/report.js';

const ROWS = Number(process.env['BENCH_REPORT_ROWS'] ?? 100_000);
const URL_ = process.env['DATABASE_URL'] || undefined;

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-report-'));
  let dbName: string | undefined;
  let url = URL_;
  if (url) {
    dbName = `bench_report_${randomBytes(4).toString('hex')}`;
    const admin = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
    await admin.raw(`CREATE DATABASE ${dbName}`);
    await admin.destroy();
    const u = new URL(url);
    u.pathname = `/${dbName}`;
    url = u.toString();
  }
  const db = url ? await openDb({ databaseUrl: url }) : await openDb({ dataDir: path.join(dir, 'db') });
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  try {
    await insertBatch(db.knex, { name: 'bench', sourceFile: '/bench.csv', sha256: 'h', defaultUserId: 'u' });
    const t0 = Date.now();
    await db.knex.raw(
      `INSERT INTO payout_rows (batch, row_no, order_id, order_id_source, state, name, email, mobile, address, method, account_no,
         bank_name, ifsc, amount_paise, remarks, user_id, errors, charge_paise, transaction_id, api_status, api_message,
         first_claimed_at, finalized_at, reference)
       SELECT 'bench', g + 1, CASE WHEN g % 100 BETWEEN 94 AND 96 THEN NULL ELSE 'PO' || g END, 'derived',
         CASE WHEN g % 100 < 90 THEN 'approved' WHEN g % 100 < 94 THEN 'rejected' WHEN g % 100 < 97 THEN 'invalid'
              WHEN g % 100 < 98 THEN 'failed' WHEN g % 100 < 99 THEN 'pending' ELSE 'ready' END,
         'Beneficiary ' || g, 'b' || g || '@example.com', '98765' || lpad((g % 100000)::text, 5, '0'), 'Address ' || g,
         (ARRAY['IMPS','NEFT','RTGS','UPI'])[g % 4 + 1], lpad(g::text, 12, '7'),
         'Bank ' || (g % 30), (ARRAY['SBIN','HDFC','ICIC','UTIB','PUNB','BARB','CNRB','UBIN','IDIB','KKBK'])[g % 10 + 1] || '0000' || lpad((g % 30)::text, 3, '0'),
         100000 + (g % 5000) * 37, 'Nov salary', 'u',
         CASE WHEN g % 100 BETWEEN 94 AND 96 THEN '[{"field":"ifsc","code":"x","message":"ifsc is not valid"}]'::jsonb ELSE '[]'::jsonb END,
         CASE WHEN g % 100 < 94 OR g % 100 = 98 THEN 590 END,
         CASE WHEN g % 100 < 90 THEN lpad((g * 7919 % 1000000000000)::text, 12, '0') END,
         CASE WHEN g % 100 < 90 THEN 'Approved' WHEN g % 100 < 94 THEN 'Rejected' WHEN g % 100 = 98 THEN 'Pending' END,
         CASE WHEN g % 100 < 90 THEN 'Payout has been approved.' WHEN g % 100 < 94 THEN 'Beneficiary account closed.'
              WHEN g % 100 = 97 THEN 'Invalid beneficiary name.' WHEN g % 100 = 98 THEN 'Payout has been processing.' END,
         CASE WHEN g % 100 < 99 AND NOT (g % 100 BETWEEN 94 AND 96) THEN now() END,
         CASE WHEN g % 100 < 94 OR g % 100 = 97 THEN now() END,
         'EMP' || g
       FROM generate_series(0, ? - 1) g`,
      [ROWS],
    );
    const insertS = (Date.now() - t0) / 1000;
    const results: [string, number, number, number][] = [];
    for (const what of ['all', 'csv', 'json', 'html'] as const) {
      const out = path.join(dir, `out-${what}`);
      const t = Date.now();
      const cpu0 = process.cpuUsage();
      let bytes = 0;
      if (what === 'all') {
        const r = await writeReports(db.knex, 'bench', out);
        bytes = statSync(r.csv).size + statSync(r.json).size + statSync(r.html).size;
      } else {
        bytes = statSync((await writeReport(db.knex, 'bench', out, what)).file).size;
      }
      const cpu = process.cpuUsage(cpu0);
      results.push([what, (Date.now() - t) / 1000, (cpu.user + cpu.system) / 1e6, bytes]);
    }
    clearInterval(sampler);
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
    console.log(`${ROWS.toLocaleString('en-US')} rows on ${url ? 'PostgreSQL' : 'PGlite'} (inserted in ${insertS.toFixed(1)} s)`);
    // CPU seconds of this process (PGlite runs inside it) are steadier than wall time on a shared machine.
    console.log('| report | wall s | CPU s | rows/s (wall) | size |');
    console.log('|---|---|---|---|---|');
    for (const [what, s, cpu, bytes] of results) {
      console.log(`| ${what === 'all' ? 'writeReports (csv + json + html)' : what} | ${s.toFixed(1)} | ${cpu.toFixed(1)} | ${Math.round(ROWS / s).toLocaleString('en-US')} | ${mib(bytes)} |`);
    }
    console.log(`peak RSS ${mib(Math.max(peak, process.resourceUsage().maxRSS * 1024))} (process, database included when embedded)`);
  } finally {
    clearInterval(sampler);
    await db.close();
    rmSync(dir, { recursive: true, force: true });
    if (dbName && URL_) {
      const admin = knexFactory({ client: 'pg', connection: URL_, pool: { min: 0, max: 1 } });
      await admin.raw(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => {});
      await admin.destroy();
    }
  }
}

await main();
