/**
 * Issue 7 cases 3 and 4: a misplaced quote must not merge two people into one record, and a file cut
 * short or still being written must not be paid as it is. Plus control totals, another delimiter, and
 * no user_id anywhere (issue 9): each refuses the file once, naming the line and the fix.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBatchRows, type FileIssue, type IngestOptions, type IngestRow } from '../src/batch/ingest.js';
import { validateFile } from '../src/batch/validateFile.js';
import { InputError } from '../src/errors.js';

const HEADER = 'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount,remarks';

/** Person i (1-based) on line i + 1. */
function person(i: number, over: { address?: string; amount?: string; mobile?: string } = {}): string {
  return [
    `Person ${i}`,
    `p${i}@example.in`,
    over.mobile ?? `9845000${String(i).padStart(3, '0')}`,
    over.address ?? `"Addr ${i}, Pune"`,
    'IMPS',
    `100000000${String(i).padStart(3, '0')}`,
    'SBI',
    'SBIN0016745',
    over.amount ?? `${1000 + i}`,
    `Salary ${i}`,
  ].join(',');
}

function people(n: number, over: Record<number, Parameters<typeof person>[1]> = {}): string[] {
  return Array.from({ length: n }, (_, k) => person(k + 1, over[k + 1]));
}

/** Issue 7 case 3 exactly: 10 people, row 4's address opens a quote that closes on row 5's line. */
const SWALLOWED = [HEADER, ...people(10, { 4: { address: '"Addr 4, Pune' }, 5: { address: 'Addr 5"' } })].join('\n') + '\n';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'batch-damaged-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
let n = 0;
async function file(content: string): Promise<string> {
  const p = join(dir, `f${n++}.csv`);
  await writeFile(p, content);
  return p;
}

/** Reads until the end or an InputError; returns what was yielded and the error. */
async function read(
  path: string,
  opts: Partial<IngestOptions> = {},
): Promise<{ rows: IngestRow[]; error: InputError | undefined; issues: FileIssue[] }> {
  const rows: IngestRow[] = [];
  const issues: FileIssue[] = [];
  try {
    for await (const r of readBatchRows(path, { batch: 'b', defaultUserId: 'u', onFileIssue: (i) => issues.push(i), ...opts })) rows.push(r);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    expect(e.exitCode).toBe(2);
    return { rows, error: e, issues };
  }
  return { rows, error: undefined, issues };
}

describe('issue 7 case 3: a quote that closes on the next line does not merge two people', () => {
  it('the fixture is the issue: a plain CSV reading of it gives 9 records for 10 people, one of them merged', () => {
    const records = parse(SWALLOWED, { relax_quotes: true, relax_column_count: true }) as string[][];
    expect(records).toHaveLength(10); // header + 9
    expect(records[4]![0]).toBe('Person 4');
    expect(records[4]![5]).toBe('100000000005'); // person 5's account under person 4's name
    expect(records[4]![3]).toContain('100000000004'); // person 4's account inside the address
    expect(records[4]).toHaveLength(10);
  });

  it('readBatchRows refuses the file at line 5 (where the quote opened), naming the column and the fix', async () => {
    const { rows, error, issues } = await read(await file(SWALLOWED));
    expect(error).toBeDefined();
    expect(error!.message).toMatch(/line 5: the value in "beneficiary_address" \(column 4\) opens a quote \("\) that closes only on line 6/);
    expect(error!.message).toMatch(/close the quote on line 5 or remove it/);
    // Nothing after the merged record was handed out; persons 1-3 came before it was seen.
    expect(rows.map((r) => r.rowNo)).toEqual([2, 3, 4]);
    expect(issues).toEqual([expect.objectContaining({ code: 'multiline_record', severity: 'error', line: 5, column: 'beneficiary_address' })]);
  });

  it('validate shows it: refused at line 5, not "9 rows: 9 valid"', async () => {
    const s = await validateFile(await file(SWALLOWED), { defaultUserId: 'u' });
    expect(s.refused).toBe(true);
    expect(s.file_issues).toHaveLength(1);
    expect(s.file_issues[0]).toMatchObject({ code: 'multiline_record', line: 5, column: 'beneficiary_address' });
    // The 8 rows that are whole were still checked (every problem in one pass); the merged record is no row.
    expect(s).toMatchObject({ rows: 8, valid: 8, invalid: 0 });
    expect(JSON.stringify(s, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))).not.toContain('100000000004');
  });

  it('every such record is listed, and a multi-line remarks is refused too (it would swallow the next row the same way)', async () => {
    const rows = people(8, { 2: { address: '"Addr 2' }, 3: { address: 'Addr 3"' } });
    rows[6] = rows[6]!.replace('Salary 7', '"Salary 7'); // remarks is the last column: the quote runs into line 9
    rows[7] = rows[7]!.replace('Person 8', 'Person 8"');
    const { error, issues } = await read(await file([HEADER, ...rows].join('\n') + '\n'));
    expect(issues.map((i) => [i.code, i.line, i.column])).toEqual([
      ['multiline_record', 3, 'beneficiary_address'],
      ['multiline_record', 8, 'remarks'],
    ]);
    expect(error!.message).toMatch(/refused \(2 problems\)/);
  });

  it('even a record of blanks that spans lines is refused (a quoted line break has no place in a payout file)', async () => {
    const { error, issues } = await read(await file([HEADER, person(1), ',,,"', '",,,', person(2)].join('\n') + '\n'));
    expect(issues.map((i) => [i.code, i.line, i.column])).toEqual([['multiline_record', 3, 'beneficiary_address']]);
    expect(error).toBeDefined();
  });

  it('a quote that never closes is reported at the line it opened (not the end of the file)', async () => {
    // No other quote further down: it really never closes (another quote would close it: see above).
    const rows = people(6, { 3: { address: '"Addr 3, Pune' }, 4: { address: 'Pune' }, 5: { address: 'Pune' }, 6: { address: 'Pune' } });
    const { error, issues } = await read(await file([HEADER, ...rows].join('\n') + '\n'));
    expect(issues.map((i) => [i.code, i.line, i.column])).toEqual([['unclosed_quote', 4, 'beneficiary_address']]);
    expect(error!.message).toMatch(/line 4: the value in "beneficiary_address" \(column 4\) opens a quote \("\) that is never closed/);
  });
});

describe('issue 7 case 4: a cut or unfinished file is held back, not paid', () => {
  const complete = [HEADER, ...people(9), person(10, { amount: '42500' })].join('\n') + '\n';
  const cut = complete.slice(0, complete.lastIndexOf('42500') + 3); // "…,425" and no line break

  it('a last line without a line break is held back and the file refused, naming the line', async () => {
    const { rows, error, issues } = await read(await file(cut));
    expect(cut.endsWith(',425')).toBe(true);
    expect(rows.map((r) => r.rowNo)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10]); // line 11 was never handed out
    expect(issues.map((i) => [i.code, i.line])).toEqual([['unterminated_last_line', 11]]);
    expect(error!.message).toMatch(/line 11, the last line, has no line break at its end: the file looks unfinished \(cut short, or still being written\)/);
  });

  it('the complete file reads as 10 rows; acceptUnterminated reads the cut one as the caller asked', async () => {
    const ok = await read(await file(complete));
    expect(ok.error).toBeUndefined();
    expect(ok.rows.at(-1)!.amountPaise).toBe(4250000n);
    const accepted = await read(await file(cut), { acceptUnterminated: true });
    expect(accepted.error).toBeUndefined();
    expect(accepted.rows.at(-1)).toMatchObject({ rowNo: 11, amountPaise: 42500n });
  });

  it('a file cut at a line break looks complete: only control totals catch it, naming both numbers', async () => {
    const nine = complete.slice(0, complete.indexOf('Person 10'));
    const path = await file(nine);
    expect((await read(path)).error).toBeUndefined();
    // 1001 + … + 1009 = 9,045 in the file; the payroll sheet says 10 rows and 9,045 + 42,500.
    const { error, issues } = await read(path, { expectRows: 10, expectTotalPaise: 5154500n });
    expect(issues.map((i) => i.code)).toEqual(['control_rows', 'control_total']);
    expect(error!.message).toMatch(/the file has 9 data rows, but 10 were expected/);
    expect(error!.message).toMatch(/add up to ₹9,045\.00, but ₹51,545\.00 was expected .*difference of ₹42,500\.00/);
    expect((await read(await file(complete), { expectRows: 10, expectTotalPaise: 5154500n })).error).toBeUndefined();
  });

  it('validate shows the held-back line and what the file would be without it', async () => {
    const s = await validateFile(await file(cut), { defaultUserId: 'u' });
    expect(s).toMatchObject({ refused: true, rows: 9, valid: 9 });
    expect(s.file_issues.map((i) => [i.code, i.line])).toEqual([['unterminated_last_line', 11]]);
  });
});

describe('control totals: every data row, valid or not', () => {
  const rows = [HEADER, ...people(4, { 2: { mobile: '12345' } })].join('\n') + '\n'; // row 3 invalid (mobile)
  const total = 100100n + 100200n + 100300n + 100400n;

  it('match: the invalid row counts (it is a person in the file) and its amount too', async () => {
    const { rows: got, error } = await read(await file(rows), { expectRows: 4, expectTotalPaise: total });
    expect(error).toBeUndefined();
    expect(got.filter((r) => r.errors.length > 0).map((r) => r.rowNo)).toEqual([3]);
  });

  it('a different count or total refuses the file after the last row, with both numbers', async () => {
    const r = await read(await file(rows), { expectRows: 3 });
    expect(r.error!.message).toMatch(/the file has 4 data rows, but 3 were expected \(--expect-rows\): there are extra rows/);
    const t = await read(await file(rows), { expectTotalPaise: total + 1n });
    expect(t.error!.message).toMatch(/add up to ₹4,010\.00, but ₹4,010\.01 was expected/);
  });

  it('a row whose amount cannot be read is named in the total mismatch', async () => {
    const bad = [HEADER, ...people(3, { 2: { amount: 'abc' } })].join('\n') + '\n';
    const t = await read(await file(bad), { expectTotalPaise: 300600n });
    expect(t.error!.message).toMatch(/1 row has an amount that could not be read \(line 3\) and adds nothing/);
  });
});

describe('refused before the first row: another delimiter, no user_id anywhere', () => {
  it('a semicolon-separated file says "semicolon", before any row', async () => {
    const csv = [HEADER.replaceAll(',', ';'), person(1).replaceAll(',', ';')].join('\n') + '\n';
    const { rows, error, issues } = await read(await file(csv));
    expect(rows).toEqual([]);
    expect(error!.message).toMatch(/separated by semicolons \(;\), not commas/);
    expect(issues.map((i) => i.code)).toEqual(['delimiter']);
  });

  it('a tab-separated file says tabs', async () => {
    const csv = [HEADER.replaceAll(',', '\t'), person(1).replaceAll(',', '\t')].join('\n') + '\n';
    expect((await read(await file(csv))).error!.message).toMatch(/separated by tabs, not commas/);
  });

  it('a semicolon file whose header names happen to contain commas is still recognised', async () => {
    const csv = ['"Name, full";Email;Mobile;Address;Mode;Account;IFSC;Amount', 'A;a@b.in;9845012345;Pune;IMPS;12345678;SBIN0016745;5'].join('\n') + '\n';
    expect((await read(await file(csv))).error!.message).toMatch(/semicolons/);
  });

  it('no user_id column and no default: one error before the first row', async () => {
    const path = await file([HEADER, ...people(300)].join('\n') + '\n');
    const seen: string[] = [];
    const { rows, error } = await read(path, { defaultUserId: undefined, onHeader: () => seen.push('header') });
    expect(rows).toEqual([]);
    expect(seen).toEqual([]);
    expect(error!.message).toMatch(/no user_id anywhere.*add a user_id column or pass --user-id/);
  });

  it('validate without --user-id: 300 rows, one file-level error, no row repeating it', async () => {
    const s = await validateFile(await file([HEADER, ...people(300)].join('\n') + '\n'));
    expect(s.refused).toBe(true);
    expect(s.file_issues.filter((i) => i.severity === 'error').map((i) => i.code)).toEqual(['user_id_missing']);
    expect(s).toMatchObject({ rows: 300, valid: 300, invalid: 0 });
    expect(s.problems).toEqual([]);
  });

  it('a user_id column makes --user-id unnecessary', async () => {
    const csv = [`${HEADER},user_id`, `${person(1)},M-1`].join('\n') + '\n';
    const { rows, error } = await read(await file(csv), { defaultUserId: undefined });
    expect(error).toBeUndefined();
    expect(rows[0]!.userId).toBe('M-1');
  });
});
