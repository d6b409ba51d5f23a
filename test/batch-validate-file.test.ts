import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateFile } from '../src/batch/validateFile.js';

const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount,remarks';
const row = (name: string, acc: string, amount = '100', mobile = '9845012345') =>
  `${name},x@y.in,${mobile},Pune,IMPS,${acc},SBI,SBIN0016745,${amount},salary`;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'validate-file-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
let n = 0;
async function file(lines: string[], end = '\n'): Promise<string> {
  const p = join(dir, `f${n++}.csv`);
  await writeFile(p, lines.join('\n') + end);
  return p;
}

describe('validateFile', () => {
  it('counts rows, lists each row problem with row, field and message, masks account numbers, totals the valid rows', async () => {
    const s = await validateFile(
      await file([
        `${HEADER},Department,Emp ID`,
        `${row('A', '123456789012', '"1,500.50"')},Sales,E1`,
        `${row('B', '223456789012', '100', '12345')},Sales,E2`,
        `${row('C', '7.87879E+11')},Ops,E3`,
        `${row('D', '323456789012')},Ops,E4`,
        `${row('E', '323456789012')},Ops,E5`,
      ]),
      { defaultUserId: 'M1' },
    );
    expect(s).toMatchObject({ refused: false, rows: 5, valid: 3, invalid: 2, warnings: 1, total_paise: 170050n, problems_omitted: 0 });
    expect(s.ignored_columns).toEqual(['Department (column 11)']);
    expect(s.reference_column).toBe('Emp ID');
    expect(s.file_issues).toEqual([
      { code: 'ignored_columns', severity: 'warning', line: 1, message: expect.stringMatching(/ignored column not used by the API: Department \(column 11\)/) },
    ]);
    expect(s.problems.map((p) => [p.row, p.field, p.code, p.severity])).toEqual([
      [3, 'beneficiary_mobile_no', 'mobile_format', 'error'],
      [4, 'beneficiary_acc_no', 'scientific_notation', 'error'],
      [6, 'row', 'possible_duplicate', 'warning'],
    ]);
    expect(s.problems[0]!.message).toMatch(/^beneficiary_mobile_no "12345" has 5 digits/);
    expect(JSON.stringify(s.problems)).not.toMatch(/123456789012|223456789012|323456789012/);
  });

  it('masks an account number quoted in a message', async () => {
    const s = await validateFile(await file([HEADER, row('A', '12345 67890')]), { defaultUserId: 'M1' });
    expect(s.problems[0]!.field).toBe('beneficiary_acc_no');
    expect(s.problems[0]!.message).toContain('XXXXXXX7890');
    expect(s.problems[0]!.message).not.toContain('12345 67890');
  });

  it('lists at most maxProblems and counts the rest', async () => {
    const lines = [HEADER, ...Array.from({ length: 30 }, (_, i) => row(`P${i}`, `1000000${i + 10}`, '100', '123'))];
    const s = await validateFile(await file(lines), { defaultUserId: 'M1', maxProblems: 10 });
    expect(s.invalid).toBe(30);
    expect(s.problems).toHaveLength(10);
    expect(s.problems_omitted).toBe(20);
  });

  it('a file that cannot be read is one refusing file issue, not a throw', async () => {
    const missing = await validateFile(join(dir, 'nope.csv'));
    expect(missing).toMatchObject({ refused: true, rows: 0 });
    expect(missing.file_issues).toEqual([{ code: 'unreadable', severity: 'error', message: expect.stringMatching(/not found/) }]);
    const noRows = await validateFile(await file([HEADER]), { defaultUserId: 'M1' });
    expect(noRows.file_issues.map((i) => i.code)).toEqual(['no_rows']);
    const missingCol = await validateFile(await file([HEADER.replace(',ifsc', ''), 'x']), { defaultUserId: 'M1' });
    expect(missingCol.file_issues.map((i) => [i.code, i.severity])).toEqual([['header', 'error']]);
    expect(missingCol.file_issues[0]!.message).toMatch(/missing the required column ifsc/);
  });

  it('passes control totals and acceptUnterminated through', async () => {
    const p = await file([HEADER, row('A', '123456789012'), row('B', '223456789012')], '');
    expect((await validateFile(p, { defaultUserId: 'M1' })).file_issues.map((i) => i.code)).toEqual(['unterminated_last_line']);
    const s = await validateFile(p, { defaultUserId: 'M1', acceptUnterminated: true, expectRows: 3, expectTotalPaise: 20000n });
    expect(s.file_issues.map((i) => i.code)).toEqual(['control_rows']);
    expect(s.rows).toBe(2);
  });
});
