import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedInvalidRows, generateCsv, INVALID_KINDS } from '../bench/gen-csv.js';
import { readBatchRows, type IngestRow } from '../src/batch/ingest.js';
import { formatRupees } from '../src/money.js';

const SAMPLE = fileURLToPath(new URL('../samples/payroll.csv', import.meta.url));

async function collect(path: string): Promise<IngestRow[]> {
  const rows: IngestRow[] = [];
  for await (const r of readBatchRows(path, { batch: 'sample', defaultUserId: 'demo-user' })) rows.push(r);
  return rows;
}

describe('samples/payroll.csv', () => {
  let rows: IngestRow[];
  beforeAll(async () => {
    rows = await collect(SAMPLE);
  });

  it('has 50 rows: 46 valid, 4 invalid (bad IFSC, bad mobile, UPI over limit, scientific account)', () => {
    expect(rows).toHaveLength(50);
    const invalid = rows.filter((r) => r.errors.length > 0);
    expect(invalid.map((r) => r.errors.map((e) => `${e.field}:${e.code}`))).toEqual([
      ['ifsc:ifsc_format'],
      ['beneficiary_mobile_no:mobile_format'],
      ['amount:method_limit'],
      ['beneficiary_acc_no:scientific_notation'],
    ]);
    expect(invalid.map((r) => r.rowNo)).toEqual([22, 30, 38, 49]);
  });

  it('valid rows: 3 accounts ending 0000 (the sandbox rejects them), one RTGS, a few UPI, total 15-25 lakh', () => {
    const valid = rows.filter((r) => r.errors.length === 0);
    expect(valid.every((r) => r.orderIdSource === 'derived' && /^PO[A-Z2-7]{28}$/.test(r.orderId!))).toBe(true);
    expect(new Set(valid.map((r) => r.orderId)).size).toBe(valid.length);
    expect(valid.filter((r) => r.accountNumber.endsWith('0000'))).toHaveLength(3);
    const rtgs = valid.filter((r) => r.method === 'RTGS');
    expect(rtgs).toHaveLength(1);
    expect(rtgs[0]!.amountPaise! >= 2_00_000_00n).toBe(true);
    expect(valid.filter((r) => r.method === 'UPI').length).toBeGreaterThanOrEqual(3);
    const total = valid.reduce((s, r) => s + r.amountPaise!, 0n);
    expect(formatRupees(total)).toBe('2324250.25');
    const approvedExpected = valid.filter((r) => !r.accountNumber.endsWith('0000')).reduce((s, r) => s + r.amountPaise!, 0n);
    expect(formatRupees(approvedExpected)).toBe('2207750.25');
    expect(total > 15_00_000_00n && total < 25_00_000_00n).toBe(true);
  });

  it('has non-ASCII names, a "/" address, and only two warnings (unknown SBI branch, filled bank name)', () => {
    expect(rows.some((r) => r.name === 'José Fernandes')).toBe(true);
    expect(rows.some((r) => /[\u0900-\u097F]/.test(r.name))).toBe(true);
    expect(rows.some((r) => r.address.startsWith('12/3 MG Road'))).toBe(true);
    expect(rows.flatMap((r) => r.warnings.map((w) => w.code)).sort()).toEqual(['bank_name_filled', 'ifsc_unknown_branch']);
  });
});

describe('bench/gen-csv generateCsv', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gen-csv-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes rows that ingest cleanly, with exactly the requested invalid rows, deterministically', async () => {
    const p = join(dir, 'g.csv');
    await generateCsv(p, 3000, { invalidEvery: 50, seed: 7 });
    const rows = await collect(p);
    expect(rows).toHaveLength(3000);
    const invalid = rows.filter((r) => r.errors.length > 0);
    expect(invalid).toHaveLength(expectedInvalidRows(3000, 50));
    expect(invalid.every((r) => (r.rowNo - 1) % 50 === 0)).toBe(true);
    expect(new Set(invalid.map((r) => r.errors[0]!.code)).size).toBe(INVALID_KINDS.length);
    const unknownBranch = rows.filter((r) => r.warnings.some((w) => w.code === 'ifsc_unknown_branch'));
    expect(unknownBranch).toHaveLength(0);

    const p2 = join(dir, 'g2.csv');
    await generateCsv(p2, 3000, { invalidEvery: 50, seed: 7 });
    const rows2 = await collect(p2);
    expect(rows2.map((r) => r.orderId)).toEqual(rows.map((r) => r.orderId));
  });
});
