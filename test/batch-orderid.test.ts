import { describe, expect, it } from 'vitest';
import { contentKeyOf, deriveOrderId, validateExplicitOrderId } from '../src/batch/orderId.js';

const row = { accountNumber: '99999999999', ifsc: 'SBIN0060589', amountPaise: 10000n };

describe('deriveOrderId', () => {
  it('is deterministic, PO + base32, at most 30 characters of [A-Z0-9-]', () => {
    const id = deriveOrderId('payroll-2025-03', row, 0);
    expect(id).toBe(deriveOrderId('payroll-2025-03', { ...row }, 0));
    expect(id).toMatch(/^PO[A-Z2-7]{28}$/);
    expect(id.length).toBeLessThanOrEqual(30);
  });
  it('differs by occurrence, batch, account, IFSC and amount', () => {
    const ids = new Set([
      deriveOrderId('b', row, 0),
      deriveOrderId('b', row, 1),
      deriveOrderId('c', row, 0),
      deriveOrderId('b', { ...row, accountNumber: '99999999998' }, 0),
      deriveOrderId('b', { ...row, ifsc: 'SBIN0060580' }, 0),
      deriveOrderId('b', { ...row, amountPaise: 10001n }, 0),
    ]);
    expect(ids.size).toBe(6);
  });
  it('does not confuse field boundaries', () => {
    expect(deriveOrderId('b|1', row, 0)).not.toBe(deriveOrderId('b', { ...row, accountNumber: '1|' + row.accountNumber }, 0));
  });
  it('rejects a bad occurrence', () => {
    expect(() => deriveOrderId('b', row, -1)).toThrow(RangeError);
    expect(() => deriveOrderId('b', row, 1.5)).toThrow(RangeError);
  });
  it('contentKeyOf', () => {
    expect(contentKeyOf(row)).toBe('99999999999|SBIN0060589|10000');
  });
});

describe('validateExplicitOrderId', () => {
  it.each(['a', 'qweq-2d2fss-2234sd-44533', 'P0HF3PO87R65OI', 'x_y', 'a'.repeat(64)])('accepts %s', (id) => {
    expect(validateExplicitOrderId(id)).toBeNull();
  });
  it.each([
    ['', /empty/],
    ['a'.repeat(65), /65 characters/],
    ['a b', /space/],
    ['a/b', /"\/"/],
    ['ordér', /"é"/],
  ])('rejects %j', (id, msg) => {
    expect(validateExplicitOrderId(id)).toMatch(msg);
  });
});
