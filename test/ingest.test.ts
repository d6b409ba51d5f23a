import { appendFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, freshDb, type TestDb } from './helpers/db.js';
import { clientFor, quietLogger, sandbox, tmpDir } from './helpers/env.js';
import { expectedInvalidRows, generateCsv } from '../bench/gen-csv.js';
import { ingestFile } from '../src/engine/ingest.js';
import { runBatch } from '../src/engine/run.js';
import { BatchNotFoundError, InputError } from '../src/errors.js';
import { countByState } from '../src/db/rows.js';

describe.each(BACKENDS)('ingest on %s', (kind) => {
  let db: TestDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDb(kind);
    dir = tmpDir('payouts-ingest-');
  });
  afterAll(async () => db?.close());

  it('stores every row of a multi-chunk file, valid or not, once', async () => {
    const csv = path.join(dir, 'big.csv');
    await generateCsv(csv, 2500, { invalidEvery: 10, seed: 5 });
    const res = await ingestFile(db.knex, { batch: 'big', csvPath: csv, defaultUserId: 'u', chunkSize: 300 });
    expect(res).toMatchObject({ kind: 'new', rows: 2500, invalid: expectedInvalidRows(2500, 10) });
    const c = await countByState(db.knex, 'big');
    expect((c.ready ?? 0) + (c.invalid ?? 0)).toBe(2500);
    expect(c.invalid).toBe(expectedInvalidRows(2500, 10));
    const rowNos = (await db.knex('payout_rows').where({ batch: 'big' }).pluck('row_no')) as number[];
    expect(new Set(rowNos).size).toBe(2500);
    expect(Math.min(...rowNos)).toBe(2);
    expect(Math.max(...rowNos)).toBe(2501);
    // The same file again reads nothing.
    expect((await ingestFile(db.knex, { batch: 'big', csvPath: csv, defaultUserId: 'u' })).kind).toBe('unchanged');
  });

  it('never sends a file that failed part-way, and says how to fix it', async () => {
    const csv = path.join(dir, 'broken.csv');
    await generateCsv(csv, 1500, { seed: 6 });
    appendFileSync(csv, 'Broken,"unterminated quote,x@y.in\n'); // an unclosed quote at the end: the file is rejected
    await expect(ingestFile(db.knex, { batch: 'broken', csvPath: csv, defaultUserId: 'u', chunkSize: 500 })).rejects.toBeInstanceOf(InputError);
    // A file refused part-way leaves nothing stored: no batch, no rows (the first chunks were written, then rolled back).
    expect(await db.knex('batches').where({ name: 'broken' }).first()).toBeUndefined();
    expect(Number(((await db.knex('payout_rows').where({ batch: 'broken' }).count('* as n').first()) as { n: string }).n)).toBe(0);
    const sb = await sandbox();
    const client = clientFor(sb);
    try {
      await expect(
        runBatch({ batch: 'broken', reportDir: path.join(dir, 'r'), yes: true }, { db: db.knex, client, logger: quietLogger }),
      ).rejects.toBeInstanceOf(BatchNotFoundError);
      expect(sb.requestCount()).toBe(0);
      // The fixed file under the same batch: read whole.
      await generateCsv(csv, 1500, { seed: 6 });
      const res = await ingestFile(db.knex, { batch: 'broken', csvPath: csv, defaultUserId: 'u', chunkSize: 500 });
      expect(res.rows).toBe(1500);
      const n = await db.knex('payout_rows').where({ batch: 'broken' }).count('* as n').first();
      expect(Number((n as { n: string }).n)).toBe(1500);
    } finally {
      await client.close();
      await sb.close();
    }
  });

  it('rejects an explicit order_id that another batch already used', async () => {
    const header = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount,order_id';
    const line = 'A B,a@b.in,9876543210,Addr,IMPS,123456789,SBI,SBIN0000691,100,ORD-1';
    writeFileSync(path.join(dir, 'o1.csv'), `${header}\n${line}\n`);
    writeFileSync(path.join(dir, 'o2.csv'), `${header}\n${line}\n`);
    await ingestFile(db.knex, { batch: 'o1', csvPath: path.join(dir, 'o1.csv'), defaultUserId: 'u' });
    // The same file under another name would be refused as a duplicate upload; here the order_id rule is what is tested.
    const res = await ingestFile(db.knex, { batch: 'o2', csvPath: path.join(dir, 'o2.csv'), defaultUserId: 'u', allowDuplicateFile: true });
    expect(res.invalid).toBe(1);
    const row = await db.knex('payout_rows').where({ batch: 'o2' }).first();
    expect(row.state).toBe('invalid');
    expect(JSON.stringify(row.errors)).toMatch(/already used in batch o1/);
  });
});
