/**
 * Issue 7: exactly-once across a POST the server executes long after the client gave up. The payout is
 * executed 600 ms after its request arrived; the client's timeout is 300 ms. A 404 from status is trusted
 * only after the grace period; the API's refusal of a repeated order_id is the other half of the contract.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDb, type TestDb } from './helpers/db.js';
import { clientFor, quietLogger, sandbox, tmpDir } from './helpers/env.js';
import { runBatch, type RunOptions } from '../src/engine/run.js';
import { rowsOfBatch } from '../src/db/rows.js';

const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount';

const FAST: Partial<RunOptions> = {
  yes: true,
  rate: 200,
  concurrency: 1,
  requestTimeoutMs: 300,
  leaseMs: 3000,
  leaseMarginMs: 50,
  pollIntervalMs: 50,
  pollMaxIntervalMs: 100,
  pollTimeoutMs: 10_000,
  maxSendsPerRow: 5,
  retry: { retries: 1, baseMs: 5, maxMs: 20 },
};

describe('a POST executed after the client gave up', () => {
  let db: TestDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDb('pglite');
    dir = tmpDir('payouts-slowpost-');
  });
  afterAll(async () => db?.close());

  async function pay(name: string, account: string, dedup: boolean, graceMs: number) {
    // Only the first initiate is slow: the question is what the runner does while it is still being executed.
    const sb = await sandbox({ seed: 61, settleMs: 50, dedupOrderIds: dedup, faults: { executeDelayMs: 600, onlyPaths: ['api/v1/payout/initiate'] } });
    const client = clientFor(sb, { timeoutMs: 300 });
    try {
      const csv = path.join(dir, `${name}.csv`);
      writeFileSync(csv, `${HEADER}\nP 1,p@example.com,9876543210,A,IMPS,${account},B,SBIN0000691,700\n`);
      const res = await runBatch({ batch: name, csvPath: csv, defaultUserId: 'M1', reportDir: path.join(dir, 'r'), ...FAST, ambiguousGraceMs: graceMs }, { db: db.knex, client, logger: quietLogger });
      await new Promise((r) => setTimeout(r, 900)); // every slow execution has landed
      const [row] = await rowsOfBatch(db.knex, name);
      return { res, row: row!, executions: sb.executions(row!.order_id!) };
    } finally {
      await client.close();
      await sb.close();
    }
  }

  it('with a grace period longer than the server takes, the late payout is found and adopted: paid once, even without the API\'s de-duplication', async () => {
    const { row, executions } = await pay('slow-grace', '99911122201', false, 1500);
    expect(executions).toBe(1);
    expect(row.state).toBe('approved');
  });

  it('with a grace period too short, the API refusing the repeated order_id is what keeps it to one payment', async () => {
    const { row, executions } = await pay('slow-dedup', '99911122202', true, 50);
    expect(executions).toBe(1);
    expect(row.state).toBe('approved');
  });

  it('with a grace period too short and an API that does not refuse a repeated order_id, it would be paid twice: why both halves are needed', async () => {
    const { executions } = await pay('slow-nodedup', '99911122203', false, 50);
    expect(executions).toBe(2);
  });
});
