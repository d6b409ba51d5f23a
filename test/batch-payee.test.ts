import { describe, expect, it } from 'vitest';
import { accountKey, compareAccounts, differOnlyByLeadingZeros, ifscKey, payeeKey, refKey } from '../src/batch/payee.js';

describe('accountKey: undoes what spreadsheets and people do to account numbers, for matching only', () => {
  it.each([
    ['012345678901', '12345678901'],
    ['12345678901', '12345678901'],
    ['0012 3456-7890', '1234567890'],
    [' 1234\u00a05678 ', '12345678'], // a no-break space, as a copied cell may carry
    ['1234\u20135678', '12345678'], // an en dash
    ['000', '0'],
    ['0', '0'],
    ['', ''],
    ['ab-0012', 'AB0012'], // zeros after a letter are part of the number
  ])('%j -> %j', (input, key) => {
    expect(accountKey(input)).toBe(key);
  });
});

describe('payeeKey', () => {
  it('is the normalized account and IFSC', () => {
    expect(payeeKey({ accountNumber: '0012345678', ifsc: ' sbin0016745 ' })).toBe('12345678|SBIN0016745');
  });
  it('the same payee after Excel dropped the zeros, or someone spaced the number', () => {
    const a = payeeKey({ accountNumber: '000123456789', ifsc: 'HDFC0000001' });
    expect(payeeKey({ accountNumber: '123456789', ifsc: 'hdfc0000001' })).toBe(a);
    expect(payeeKey({ accountNumber: '0001 2345 6789', ifsc: 'HDFC0000001' })).toBe(a);
  });
  it('another IFSC or another account is another payee', () => {
    const a = payeeKey({ accountNumber: '123456789', ifsc: 'HDFC0000001' });
    expect(payeeKey({ accountNumber: '123456789', ifsc: 'HDFC0000002' })).not.toBe(a);
    expect(payeeKey({ accountNumber: '123456780', ifsc: 'HDFC0000001' })).not.toBe(a);
    expect(payeeKey({ accountNumber: '1234567890', ifsc: 'HDFC0000001' })).not.toBe(a); // a trailing zero matters
  });
  it('is null without an account or an IFSC, so rows missing bank details never match each other', () => {
    expect(payeeKey({ accountNumber: '', ifsc: 'HDFC0000001' })).toBeNull();
    expect(payeeKey({ accountNumber: '123', ifsc: '  ' })).toBeNull();
  });
  it('ifscKey', () => {
    expect(ifscKey(' hdfc 0000001 ')).toBe('HDFC0000001');
  });
});

describe('refKey: trim, case, inner spaces, leading zeros', () => {
  it.each([
    ['EMP-0042', 'emp-0042'],
    [' emp-0042 ', 'emp-0042'],
    ['EMP 0042', 'emp0042'],
    ['00042', '42'],
    ['42', '42'],
    ['0', '0'],
  ])('%j -> %j', (input, key) => {
    expect(refKey(input)).toBe(key);
  });
  it('is null when there is no reference', () => {
    expect(refKey('')).toBeNull();
    expect(refKey('   ')).toBeNull();
    expect(refKey(null)).toBeNull();
    expect(refKey(undefined)).toBeNull();
  });
  it('different employees stay different', () => {
    expect(refKey('E-17')).not.toBe(refKey('E-71'));
    expect(refKey('E17')).not.toBe(refKey('E-17')); // a hyphen is not spreadsheet damage
  });
});

describe('compareAccounts: flags an account that lost (or gained) its leading zeros', () => {
  it.each([
    ['0012345678', '0012345678', 'same'],
    [' 0012345678', '0012345678 ', 'same'],
    ['0012 3456 78', '0012345678', 'formatting'],
    ['0012-345678', '0012345678', 'formatting'],
    ['0012345678', '12345678', 'leading_zeros'],
    ['12345678', '00012345678', 'leading_zeros'],
    ['0012 345678', '12345678', 'leading_zeros'],
    ['0012345678', '0012345679', 'different'],
    ['12345678', '123456780', 'different'],
  ] as const)('%j vs %j: %s', (a, b, expected) => {
    expect(compareAccounts(a, b)).toBe(expected);
    expect(compareAccounts(b, a)).toBe(expected);
    expect(differOnlyByLeadingZeros(a, b)).toBe(expected === 'leading_zeros');
  });
});
