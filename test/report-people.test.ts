/**
 * Issue 20 point 8: what an accountant missed in the reports. The HTML lists the paid rows with their UTRs,
 * names the API host and the merchant user_id, carries the batch's approvals, labels every segment of the
 * chart (a thin "rejected" one too); a reason about a mobile number shows that number.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freshDb } from './helpers/db.js';
import { clientFor, quietLogger, sandbox, tmpDir } from './helpers/env.js';
import { runBatch } from '../src/engine/run.js';
import { approveBatch } from '../src/engine/decisions.js';
import { writeReports } from '../src/report/report.js';

const HEADER = 'employee id,beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount';

describe('the reports as people read them', () => {
  it('paid rows with UTRs, the API and user_id, approvals, every chart segment named, the mobile a reason is about', async () => {
    const sb = await sandbox({ settleMs: 20 });
    const db = await freshDb('pglite');
    const client = clientFor(sb);
    try {
      const dir = tmpDir('payouts-report-people-');
      const csv = path.join(dir, 'dec-input.csv');
      const lines = [HEADER];
      for (let i = 0; i < 20; i++) lines.push(`E${i},Payee ${i},p${i}@example.com,98765${String(20000 + i)},A,IMPS,${8400000 + i}1,SBI,SBIN0000691,${1000 + i}`);
      // One the bank rejects (the sandbox rejects accounts ending 0000), one with a mobile of 11 digits.
      lines.push('E90,Rejected One,r@example.com,9876520090,A,IMPS,84990000,SBI,SBIN0000691,500');
      lines.push('E91,Bad Mobile,m@example.com,98765432101,A,IMPS,84990011,SBI,SBIN0000691,500');
      writeFileSync(csv, lines.join('\n') + '\n');
      const first = await runBatch({ batch: 'dec', csvPath: csv, defaultUserId: 'M-777', yes: false, reportDir: dir, rate: 500 }, { db: db.knex, client, logger: quietLogger });
      expect(first.exitCode).toBe(3);
      await approveBatch({ db: db.knex }, 'dec', { note: 'checked by finance', by: 'asha@ops' });
      const res = await runBatch({ batch: 'dec', reportDir: dir, rate: 500, pollIntervalMs: 20, pollMaxIntervalMs: 50 }, { db: db.knex, client, logger: quietLogger });
      expect(res.exitCode).toBe(1);
      const html = readFileSync(res.report!.html, 'utf8');
      const host = new URL(sb.url).host;
      expect(html).toContain(`Paid through the API at ${host}`);
      expect(html).toContain('merchant user_id M-777');
      // Every paid row with its UTR, as the ledger has it.
      const paidTable = html.slice(html.indexOf('data-table="paid"'));
      for (const e of sb.ledger().filter((x) => x.status === 'Approved')) expect(paidTable).toContain(`<td data-utr>${e.transactionId}</td>`);
      expect((paidTable.match(/<td data-utr>/g) ?? []).length).toBe(20);
      // The approval, by whom and of which revision.
      expect(html).toMatch(/data-table="approvals".*<td class="n">1<\/td><td>approved<\/td><td>asha@ops<\/td>/s);
      // A thin rejected segment is named (under the bar when it does not fit inside).
      expect(html).toMatch(/data-label="rejected"[^>]*>(Rejected by the bank |rejected by the bank )?1</i);
      // The reason shows the mobile it complains about; accounts stay masked.
      const json = JSON.parse(readFileSync(res.report!.json, 'utf8')) as { summary: Record<string, unknown>; rows: { row: number; reason: string; account: string }[] };
      const bad = json.rows.find((r) => r.reason.includes('Invalid'))!;
      expect(bad.reason).toContain('98765432101');
      expect(bad.account).toMatch(/^X+0011$/);
      expect(json.summary).toMatchObject({ api_host: host, user_ids: ['M-777'], approvals: [{ revision: 1, decision: 'approved', by: 'asha@ops', note: 'checked by finance' }] });
      // `payouts report` again: the same, from the database.
      const again = await writeReports(db.knex, 'dec', path.join(dir, 'again'), { apiHost: host });
      expect(readFileSync(again.html, 'utf8')).toContain('<td data-utr>');
    } finally {
      await client.close();
      await db.close();
      await sb.close();
    }
  });
});
