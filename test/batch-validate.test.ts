import { describe, expect, it } from 'vitest';
import type { CanonicalField } from '../src/batch/columns.js';
import { METHOD_LIMITS, parseAmount, validateRow, type RawRow, type ValidatedRow } from '../src/batch/validate.js';

function good(over: Partial<RawRow> = {}): RawRow {
  return {
    beneficiary_name: 'Test Name',
    beneficiary_email: 'test.test@gmail.com',
    beneficiary_mobile_no: '7878787878',
    beneficiary_address: 'NOIDA',
    payment_method: 'IMPS',
    beneficiary_acc_no: '99999999999',
    bank_name: 'SBI',
    ifsc: 'SBIN0016745',
    amount: '100',
    remarks: undefined,
    order_id: undefined,
    user_id: undefined,
    ...over,
  };
}

const opts = { defaultUserId: 'merchant-1' };

function check(over: Partial<RawRow>, rowNo = 7): ValidatedRow {
  return validateRow(good(over), rowNo, opts);
}

function errorFields(r: ValidatedRow): string[] {
  return r.errors.map((e) => e.field);
}

function expectOnlyError(over: Partial<RawRow>, field: CanonicalField | string, code?: string, msg?: RegExp) {
  const r = check(over);
  expect(r.errors, JSON.stringify(r.errors)).toHaveLength(1);
  expect(r.errors[0]!.field).toBe(field);
  if (code) expect(r.errors[0]!.code).toBe(code);
  if (msg) expect(r.errors[0]!.message).toMatch(msg);
  expect(r.rowNo).toBe(7);
  return r;
}

describe('validateRow: a good row', () => {
  it('passes the document example with no errors or warnings and normalizes it', () => {
    const r = check({ ifsc: ' sbin0016745 ', beneficiary_name: '  Test Name ', remarks: '' });
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r).toMatchObject({
      rowNo: 7,
      name: 'Test Name',
      ifsc: 'SBIN0016745',
      mobile: '7878787878',
      method: 'IMPS',
      amountPaise: 10000n,
      remarks: null,
      userId: 'merchant-1',
      orderId: null,
    });
  });
});

describe('mobile', () => {
  it.each([
    ['+91 98450 12345', '9845012345'],
    ['+91-9845012345', '9845012345'],
    ['919845012345', '9845012345'],
    ['09845012345', '9845012345'],
    ['98450-12345', '9845012345'],
    ['6000000000', '6000000000'],
  ])('accepts %s as %s', (input, norm) => {
    const r = check({ beneficiary_mobile_no: input });
    expect(r.errors).toEqual([]);
    expect(r.mobile).toBe(norm);
  });
  it.each([
    ['98765 4321', /9 digits/],
    ['5845012345', /starts with 5/],
    ['98450123456', /11 digits/],
    ['98450abcde', /not a phone number/],
    ['', /empty/],
  ])('rejects %s', (input, msg) => {
    expectOnlyError({ beneficiary_mobile_no: input }, 'beneficiary_mobile_no', undefined, msg);
  });
  it('rejects scientific notation and says to re-export as text', () => {
    const r = expectOnlyError({ beneficiary_mobile_no: '7.87879E+09' }, 'beneficiary_mobile_no', 'scientific_notation');
    expect(r.errors[0]!.message).toMatch(/7\.87879E\+09/);
    expect(r.errors[0]!.message).toMatch(/as text/);
  });
});

describe('email', () => {
  it.each(['a@b.co', 'first.last+pay@example.co.in'])('accepts %s', (e) => {
    expect(check({ beneficiary_email: e }).errors).toEqual([]);
  });
  it.each(['plainaddress', 'a@b', 'a b@c.com', 'a@b.c', '@x.com', ''])('rejects %j', (e) => {
    expectOnlyError({ beneficiary_email: e }, 'beneficiary_email');
  });
});

describe('account number', () => {
  it('accepts 5 to 35 digits, trimmed', () => {
    expect(check({ beneficiary_acc_no: ' 12345 ' }).accountNumber).toBe('12345');
    expect(check({ beneficiary_acc_no: '1'.repeat(35) }).errors).toEqual([]);
  });
  it.each([
    ['1234', 'account_length'],
    ['1'.repeat(36), 'account_length'],
    ['1234 5678 9012', 'account_format'],
    ['12345-678', 'account_format'],
    ['', 'required'],
  ])('rejects %j', (acc, code) => {
    expectOnlyError({ beneficiary_acc_no: acc }, 'beneficiary_acc_no', code);
  });
  it('says spaces inside are not allowed', () => {
    expectOnlyError({ beneficiary_acc_no: '1234 5678' }, 'beneficiary_acc_no', 'account_format', /spaces/);
  });
  it('rejects scientific notation (digits were lost)', () => {
    expectOnlyError({ beneficiary_acc_no: '5.01234E+13' }, 'beneficiary_acc_no', 'scientific_notation', /as text/);
    expectOnlyError({ beneficiary_acc_no: '1E+15' }, 'beneficiary_acc_no', 'scientific_notation');
  });
});

describe('ifsc', () => {
  it('upper-cases and trims', () => {
    const r = check({ ifsc: ' hdfc0005989 ' });
    expect(r.ifsc).toBe('HDFC0005989');
    expect(r.errors).toEqual([]);
  });
  it("gives the document's own SBIN0060589 (not in the branch list) a warning, not an error", () => {
    const r = check({ ifsc: 'SBIN0060589' });
    expect(r.errors).toEqual([]);
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatchObject({ field: 'ifsc', code: 'ifsc_unknown_branch' });
  });
  it('rejects an unknown bank code', () => {
    expectOnlyError({ ifsc: 'XXXX0123456' }, 'ifsc', 'ifsc_unknown_bank', /XXXX/);
  });
  it.each([
    ['SBIN060589', /not 11 characters like SBIN0060589/],
    ['SBINO060589', /fifth character/],
    ['1BIN0060589', /4-letter bank code/],
    ['SBIN 060589', /space/],
    ['SBIN00605@9', /characters other than/],
  ])('rejects %s', (ifsc, msg) => {
    const r = check({ ifsc, bank_name: 'SBI' });
    expect(errorFields(r)).toEqual(['ifsc']);
    expect(r.errors[0]!.message).toMatch(msg);
    expect(r.errors[0]!.message).toContain(ifsc);
  });
});

describe('bank_name', () => {
  it('is filled from the IFSC bank code with a warning', () => {
    const r = check({ bank_name: '', ifsc: 'HDFC0005989' });
    expect(r.errors).toEqual([]);
    expect(r.bankName).toBe('HDFC Bank');
    expect(r.warnings.map((w) => w.code)).toEqual(['bank_name_filled']);
  });
  it('is an error when empty and the IFSC is unusable', () => {
    const r = check({ bank_name: '  ', ifsc: 'XXXX0123456' });
    expect(errorFields(r).sort()).toEqual(['bank_name', 'ifsc']);
  });
});

describe('amount', () => {
  it.each([
    ['100', 10000n],
    ['0.01', 1n],
    ['1,00,000.50', 10000050n],
    ['12,34,56,789', 123456789_00n],
    ['100,000.50', 10000050n],
    ['1,234,567', 123456700n],
    ['₹2,500', 250000n],
    ['Rs. 500', 50000n],
    ['Rs 500/-', 50000n],
    ['INR 1,000.5', 100050n],
    ['  42  ', 4200n],
  ])('accepts %s', (input, paise) => {
    const r = check({ amount: input, payment_method: 'NEFT' });
    expect(r.errors).toEqual([]);
    expect(r.amountPaise).toBe(paise);
  });
  it.each([
    ['-100', 'amount_not_positive', /negative/],
    ['0', 'amount_not_positive', /zero/],
    ['0.00', 'amount_not_positive', /zero/],
    ['100.005', 'amount_precision', /3 decimals/],
    ['100abc', 'amount_format', /letters/],
    ['1,0000', 'amount_format', /commas/],
    ['1.000,50', 'amount_format', undefined],
    ['1E+05', 'scientific_notation', undefined],
    ['', 'required', undefined],
  ])('rejects %j', (input, code, msg) => {
    const r = expectOnlyError({ amount: input }, 'amount', code, msg);
    expect(r.amountPaise).toBeNull();
  });
  it('parseAmount never goes through floats', () => {
    // The cap is ₹1,000 crore (10^12 paise): below it every amount is exact in paise and in the JSON sent.
    expect(parseAmount('9999999999.99')).toEqual({ paise: 999999999999n });
    expect(parseAmount('10000000000.00')).toEqual({ paise: 1000000000000n });
    expect(parseAmount('10000000000.01')).toMatchObject({ code: 'amount_too_large' });
    expect(parseAmount('90071992547409.91')).toMatchObject({ code: 'amount_too_large' });
  });
  it('digits grouped with spaces or apostrophes are named as such, not as "letters or symbols"', () => {
    for (const raw of ['1 000', '1 00 000.50', "1'000", '12\u00a0500']) {
      expect(parseAmount(raw), raw).toMatchObject({ code: 'amount_format', message: expect.stringMatching(/groups its digits with spaces or apostrophes: write it without them \(like 1000\)/) });
    }
    expect(parseAmount('12 apples')).toMatchObject({ message: expect.stringMatching(/contains letters or symbols/) });
  });
});

describe('payment_method and limits', () => {
  it('accepts the four methods case-insensitively', () => {
    for (const m of ['imps', 'Neft', 'UPI']) expect(check({ payment_method: m }).errors).toEqual([]);
    expect(check({ payment_method: ' rtgs ', amount: '200000' }).method).toBe('RTGS');
  });
  it('rejects an unknown method', () => {
    const r = expectOnlyError({ payment_method: 'cheque' }, 'payment_method', 'method_unknown', /IMPS, NEFT, RTGS, UPI/);
    expect(r.method).toBeNull();
  });
  it('has one exported limit table', () => {
    expect(METHOD_LIMITS.IMPS.maxPaise).toBe(50000000n);
    expect(METHOD_LIMITS.RTGS.minPaise).toBe(20000000n);
    expect(METHOD_LIMITS.UPI.maxPaise).toBe(10000000n);
    expect(METHOD_LIMITS.NEFT.maxPaise).toBeUndefined();
  });
  it.each([
    ['IMPS', '5,00,000.00', true],
    ['IMPS', '5,00,000.01', false],
    ['RTGS', '1,99,999.99', false],
    ['RTGS', '2,00,000', true],
    ['UPI', '1,00,000', true],
    ['UPI', '1,00,000.01', false],
    ['NEFT', '10,00,00,000', true],
  ])('%s %s ok=%s', (method, amount, ok) => {
    const r = check({ payment_method: method, amount });
    if (ok) {
      expect(r.errors).toEqual([]);
    } else {
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]).toMatchObject({ field: 'amount', code: 'method_limit' });
      expect(r.errors[0]!.message).toContain(method);
      // amount still parsed: the limit is a rule about the pair, not a parse failure
      expect(r.amountPaise).not.toBeNull();
    }
  });
});

describe('other fields', () => {
  it('requires a name of at most 100 characters', () => {
    expectOnlyError({ beneficiary_name: '' }, 'beneficiary_name', 'required');
    expect(check({ beneficiary_name: 'x'.repeat(100) }).errors).toEqual([]);
    expectOnlyError({ beneficiary_name: 'x'.repeat(101) }, 'beneficiary_name', 'too_long', /101/);
  });
  it('accepts non-ASCII names', () => {
    expect(check({ beneficiary_name: 'राजेश कुमार' }).errors).toEqual([]);
    expect(check({ beneficiary_name: 'José Fernandes' }).errors).toEqual([]);
  });
  it('requires an address (the API does)', () => {
    expectOnlyError({ beneficiary_address: '   ' }, 'beneficiary_address', 'required');
    expect(check({ beneficiary_address: '12/3 MG Road, Bengaluru' }).address).toBe('12/3 MG Road, Bengaluru');
  });
  it('remarks are optional, kept when given', () => {
    expect(check({ remarks: '  Salary  ' }).remarks).toBe('Salary');
    expect(check({ remarks: '' }).remarks).toBeNull();
  });
  it('rejects formula text in any field', () => {
    for (const f of ['beneficiary_name', 'beneficiary_address', 'bank_name', 'remarks', 'amount'] as const) {
      const r = check({ [f]: '=HYPERLINK("http://x")' });
      expect(r.errors.map((e) => [e.field, e.code])).toEqual([[f, 'formula']]);
    }
  });
  it('user_id: from the row, else the default, else an error', () => {
    expect(check({ user_id: ' u-9 ' }).userId).toBe('u-9');
    expect(check({}).userId).toBe('merchant-1');
    const r = validateRow(good(), 3, {});
    expect(r.userId).toBeNull();
    expect(r.errors).toEqual([
      { field: 'user_id', code: 'user_id_missing', message: 'user_id missing: add a user_id column or pass --user-id' },
    ]);
  });
  it('explicit order_id is validated', () => {
    expect(check({ order_id: ' qweq-2d2fss-2234sd-44533 ' }).orderId).toBe('qweq-2d2fss-2234sd-44533');
    const r = expectOnlyError({ order_id: 'has space' }, 'order_id', 'order_id_format', /space/);
    expect(r.orderId).toBeNull();
  });
});

describe('all errors at once', () => {
  it('collects every problem of the row', () => {
    const r = validateRow(
      good({
        beneficiary_name: '',
        beneficiary_email: 'nope',
        beneficiary_mobile_no: '7.87879E+09',
        beneficiary_address: '',
        payment_method: 'CASH',
        beneficiary_acc_no: '12 34',
        ifsc: 'XXXX0123456',
        amount: '-5',
      }),
      12,
      {},
    );
    expect(r.rowNo).toBe(12);
    expect(errorFields(r).sort()).toEqual(
      [
        'amount',
        'beneficiary_acc_no',
        'beneficiary_address',
        'beneficiary_email',
        'beneficiary_mobile_no',
        'beneficiary_name',
        'ifsc',
        'payment_method',
        'user_id',
      ].sort(),
    );
    for (const e of r.errors) expect(e.message.length).toBeGreaterThan(20);
  });
});

describe('IFSC lookup', () => {
  it('agrees with the ifsc package\'s own rule for every branch it lists, and for near misses', async () => {
    const { createRequire } = await import('node:module');
    const require = createRequire(import.meta.url);
    const data = require('ifsc/src/IFSC.json') as Record<string, Array<string | number>>;
    const { lookupIfsc } = await import('../src/batch/ifscData.js');
    // ifsc/src/node/index.js: numeric branch codes are compared as numbers, others as strings.
    const theirs = (code: string): boolean => {
      const list = data[code.slice(0, 4)];
      if (!list) return false;
      const branch = code.slice(5);
      return /^\d+$/.test(branch) ? list.includes(parseInt(branch, 10)) : list.includes(branch);
    };
    let checked = 0;
    for (const [bank, list] of Object.entries(data)) {
      for (const b of list.slice(0, 40)) {
        const branch = typeof b === 'number' ? String(b).padStart(6, '0') : b;
        const code = `${bank}0${branch}`;
        expect(lookupIfsc(code), code).toBe('known');
        const miss = `${bank}0${branch.slice(0, 5)}${branch.endsWith('9') ? '8' : '9'}`;
        expect(lookupIfsc(miss) === 'known', miss).toBe(theirs(miss));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(1000);
    expect(lookupIfsc('QQQQ0000001')).toBe('unknown_bank');
  });
});
