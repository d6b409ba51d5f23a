import { describe, expect, it } from 'vitest';
import { fieldForHeader, mapHeader, REQUIRED_FIELDS } from '../src/batch/columns.js';
import { InputError } from '../src/errors.js';

const CANON = [
  'beneficiary_name', 'beneficiary_email', 'beneficiary_mobile_no', 'beneficiary_address', 'payment_method',
  'beneficiary_acc_no', 'bank_name', 'ifsc', 'amount', 'remarks',
];

function thrown(fn: () => unknown): InputError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error('expected an InputError');
}

describe('mapHeader', () => {
  it('maps the canonical headers to their columns', () => {
    const m = mapHeader(CANON);
    expect(m.columns.beneficiary_name).toBe(0);
    expect(m.columns.amount).toBe(8);
    expect(m.columns.order_id).toBeUndefined();
    expect(m.warnings).toEqual([]);
  });

  it.each([
    ['Name', 'beneficiary_name'],
    ['BENEFICIARY', 'beneficiary_name'],
    ['Account Number', 'beneficiary_acc_no'],
    ['account_no', 'beneficiary_acc_no'],
    ['Acc-No', 'beneficiary_acc_no'],
    ['A/C No.', 'beneficiary_acc_no'],
    ['IFSC Code', 'ifsc'],
    ['ifsc_code', 'ifsc'],
    ['Mobile', 'beneficiary_mobile_no'],
    ['phone', 'beneficiary_mobile_no'],
    ['Mobile No', 'beneficiary_mobile_no'],
    ['E-mail', 'beneficiary_email'],
    ['Address', 'beneficiary_address'],
    ['Mode', 'payment_method'],
    ['method', 'payment_method'],
    ['Bank', 'bank_name'],
    ['Remark', 'remarks'],
    ['Narration', 'remarks'],
    ['Amount (₹)', 'amount'],
    ['Order ID', 'order_id'],
    ['\uFEFFuser-id', 'user_id'],
  ])('accepts the alias %j for %s', (alias, field) => {
    expect(fieldForHeader(alias)).toBe(field);
  });

  it('maps an alias header and ignores unknown columns with a warning', () => {
    const m = mapHeader(['Name', 'Email', 'Phone', 'Address', 'Mode', 'Account No', 'Bank', 'IFSC Code', 'Amount', 'Department', '']);
    expect(m.columns).toMatchObject({ beneficiary_name: 0, beneficiary_mobile_no: 2, beneficiary_acc_no: 5, ifsc: 7, amount: 8 });
    expect(m.ignored).toEqual(['Department (column 10)']);
    expect(m.warnings.join('\n')).toMatch(/Department/);
    expect(m.warnings.join('\n')).toMatch(/column 11 has no header/);
  });

  it.each(['Employee ID', 'Emp Code', 'EMP_ID', 'employee code', 'Staff ID', 'Payee ID', 'Beneficiary ID', 'Reference', 'Ref No.', 'ref'])(
    'the payee reference alias %j',
    (alias) => {
      expect(fieldForHeader(alias)).toBe('reference');
    },
  );

  it('exposes the header cells as they were and which column is the payee reference', () => {
    const m = mapHeader(['\uFEFF Name ', ...CANON.slice(1), ' Emp Code ']);
    expect(m.source).toEqual([' Name ', ...CANON.slice(1), ' Emp Code ']);
    expect(m.header[0]).toBe('Name');
    expect(m.reference).toEqual({ index: 10, header: 'Emp Code' });
    expect(m.columns.reference).toBe(10);
    expect(m.warnings).toEqual([]);
    expect(mapHeader(CANON).reference).toBeNull();
  });

  it('two reference columns: the employee id is the reference, the other is ignored with a warning (no refusal)', () => {
    const m = mapHeader([...CANON, 'Reference', 'Employee ID']);
    expect(m.reference).toEqual({ index: 11, header: 'Employee ID' });
    expect(m.ignored).toEqual(['Reference (column 11)']);
    expect(m.warnings.join('\n')).toMatch(/payee reference taken from "Employee ID" \(column 12\); "Reference" \(column 11\) is ignored/);
  });

  it('bank_name and remarks columns are optional', () => {
    const m = mapHeader(CANON.filter((c) => c !== 'bank_name' && c !== 'remarks'));
    expect(m.columns.bank_name).toBeUndefined();
  });

  it('a missing required column is an InputError naming it and the accepted names', () => {
    const e = thrown(() => mapHeader(CANON.filter((c) => c !== 'ifsc')));
    expect(e.exitCode).toBe(2);
    expect(e.message).toMatch(/missing the required column ifsc/);
    expect(e.message).toMatch(/ifsc code/);
  });

  it('names every missing column', () => {
    const e = thrown(() => mapHeader(['name', 'email', 'mobile', 'address', 'method', 'account']));
    expect(e.message).toMatch(/columns ifsc, amount/);
  });

  it('two columns for the same field is an InputError', () => {
    const e = thrown(() => mapHeader([...CANON, 'Phone']));
    expect(e.message).toMatch(/"beneficiary_mobile_no" \(column 3\) and "Phone" \(column 11\)/);
  });

  it('a first line of data is not a header', () => {
    const e = thrown(() => mapHeader(['Test Name', 'a@b.com', '9999999999']));
    expect(e.message).toMatch(/not a header/);
  });

  it('REQUIRED_FIELDS are the API-required fields that cannot be filled in', () => {
    expect([...REQUIRED_FIELDS]).toEqual([
      'beneficiary_name', 'beneficiary_email', 'beneficiary_mobile_no', 'beneficiary_address', 'payment_method',
      'beneficiary_acc_no', 'ifsc', 'amount',
    ]);
  });
});
