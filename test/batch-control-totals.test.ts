import { describe, expect, it } from 'vitest';
import { assertControlTotals, controlTotalIssues, parseExpectedRows, parseExpectedTotal } from '../src/batch/controlTotals.js';
import { InputError, UsageError } from '../src/errors.js';

const totals = { rows: 300, totalPaise: 1_90_58_324_00n, unreadableAmountLines: [], unreadableAmounts: 0 };

describe('control totals', () => {
  it('match: no issue', () => {
    expect(controlTotalIssues(totals, { expectRows: 300, expectTotalPaise: 1_90_58_324_00n })).toEqual([]);
    expect(controlTotalIssues(totals, {})).toEqual([]);
    expect(() => assertControlTotals(totals, { expectRows: 300 })).not.toThrow();
  });

  it('a mismatch names both numbers; assertControlTotals throws an InputError (exit 2)', () => {
    const issues = controlTotalIssues(totals, { expectRows: 301, expectTotalPaise: 1_90_58_424_00n });
    expect(issues.map((i) => i.message)).toEqual([
      expect.stringMatching(/^the file has 300 data rows, but 301 were expected \(--expect-rows\): rows are missing/),
      expect.stringMatching(/^the amounts in the file add up to ₹1,90,58,324\.00, but ₹1,90,58,424\.00 was expected \(--expect-total\), a difference of ₹100\.00/),
    ]);
    let thrown: unknown;
    try {
      assertControlTotals(totals, { expectRows: 299 }, 'payroll.csv');
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(InputError);
    expect((thrown as InputError).message).toMatch(/^payroll\.csv is refused: the file has 300 data rows, but 299 were expected/);
  });

  it.each([
    ['425000', 42500000n],
    ['4,25,000.50', 42500050n],
    ['₹4,25,000', 42500000n],
    ['Rs. 4,25,000/-', 42500000n],
  ])('parseExpectedTotal(%j)', (text, paise) => {
    expect(parseExpectedTotal(text)).toBe(paise);
  });

  it('parseExpectedTotal and parseExpectedRows refuse what is not an amount or a count (UsageError, exit 2)', () => {
    for (const bad of ['', 'abc', '-5', '0', '1.234']) expect(() => parseExpectedTotal(bad)).toThrow(UsageError);
    expect(parseExpectedRows('1,000')).toBe(1000);
    expect(parseExpectedRows(12)).toBe(12);
    for (const bad of ['0', '-1', '1.5', 'x']) expect(() => parseExpectedRows(bad)).toThrow(UsageError);
  });
});
