/** `payouts validate` prints validateFile's summary: file problems once, row problems per row. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateCommand } from '../src/commands/validate.js';
import type { CommandIO } from '../src/commands/context.js';
import { InputError } from '../src/errors.js';

const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount,remarks';
const person = (i: number, address = `"Addr ${i}, Pune"`) =>
  `Person ${i},p${i}@example.in,9845000${String(i).padStart(3, '0')},${address},IMPS,100000000${String(i).padStart(3, '0')},SBI,SBIN0016745,${1000 + i},Salary ${i}`;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'validate-cmd-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function validate(content: string, o: { userId?: string; json?: boolean } = {}) {
  const csv = join(dir, `v${Math.random().toString(36).slice(2)}.csv`);
  await writeFile(csv, content);
  const out: string[] = [];
  const io = { out: (l: string) => out.push(l), json: o.json ?? false, cwd: dir, config: {} } as unknown as CommandIO;
  try {
    const code = await validateCommand(io, { csv, ...(o.userId ? { userId: o.userId } : {}) });
    return { code, out, error: undefined };
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    return { code: e.exitCode, out, error: e };
  }
}

describe('validateCommand', () => {
  it('the swallowed-row file of issue 7: exit 2 naming line 5, where it used to say "9 rows: 9 valid"', async () => {
    const lines = [HEADER, ...Array.from({ length: 10 }, (_, k) => person(k + 1))];
    lines[4] = person(4, '"Addr 4, Pune');
    lines[5] = person(5, 'Addr 5"');
    const r = await validate(lines.join('\n') + '\n', { userId: 'M1' });
    expect(r.code).toBe(2);
    expect(r.error!.message).toMatch(/^line 5: the value in "beneficiary_address" \(column 4\) opens a quote/);
    expect(r.out.at(-1)).toMatch(/^8 rows: 8 valid totalling ₹8,046\.00, 0 invalid, 0 with warnings; the file is refused as a whole/);
    expect(r.out.join('\n')).not.toMatch(/9 rows/);
  });

  it('no user_id anywhere: said once, not on each of 300 rows', async () => {
    const r = await validate([HEADER, ...Array.from({ length: 300 }, (_, k) => person(k + 1))].join('\n') + '\n');
    expect(r.code).toBe(2);
    expect(r.error!.message).toMatch(/^no user_id anywhere/);
    expect(r.out).toEqual([expect.stringMatching(/^300 rows: 300 valid .*; the file is refused as a whole/)]);
  });

  it('--json carries the file issues, ignored columns and rupee strings', async () => {
    const r = await validate([`${HEADER},Department`, `${person(1)},Sales`, `${person(2).replace('9845000002', '123')},Ops`].join('\n') + '\n', {
      userId: 'M1',
      json: true,
    });
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out.join('\n'));
    expect(j).toMatchObject({ refused: false, rows: 2, valid: 1, invalid: 1, valid_total: '1001.00', valid_total_paise: '100100' });
    expect(j.ignored_columns).toEqual(['Department (column 11)']);
    expect(j.file_issues.map((i: { code: string }) => i.code)).toEqual(['ignored_columns']);
    expect(j.problems).toEqual([{ row: 3, errors: [expect.stringMatching(/mobile/)], warnings: [] }]);
  });
});
