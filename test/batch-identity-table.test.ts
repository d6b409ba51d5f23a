import { describe, expect, it } from 'vitest';
import { IdentityTable, idKeyHi, idKeyLo } from '../src/batch/identityTable.js';
import { deriveOrderId } from '../src/batch/orderId.js';

describe('IdentityTable', () => {
  it('first row, then occurrences 1, 2… naming the first row; other keys independent', () => {
    const t = new IdentityTable(16);
    expect(t.add(1, 2, 10)).toBe(0);
    expect(t.firstRow).toBe(10);
    expect(t.add(1, 3, 11)).toBe(0);
    expect(t.add(1, 2, 12)).toBe(1);
    expect(t.firstRow).toBe(10);
    expect(t.add(1, 2, 13)).toBe(2);
    expect(t.add(1, 3, 14)).toBe(1);
    expect(t.firstRow).toBe(11);
  });

  it('keeps every key through growth, including keys that land in the same slot', () => {
    const t = new IdentityTable(16);
    const n = 50_000;
    // lo = hi ^ small: the same starting slot for many keys, forcing long probes and rehashing.
    for (let i = 0; i < n; i++) expect(t.add(i, i ^ (i % 7), i + 2)).toBe(0);
    for (let i = 0; i < n; i++) {
      expect(t.add(i, i ^ (i % 7), n + i + 2)).toBe(1);
      expect(t.firstRow).toBe(i + 2);
    }
  });

  it('refuses a row number that would read as an empty slot', () => {
    expect(() => new IdentityTable().add(1, 1, 0)).toThrow(RangeError);
  });

  it('keys come from a derived id: 60 bits, equal ids give equal keys', () => {
    const id = deriveOrderId('b', { accountNumber: '12345678', ifsc: 'SBIN0016745', amountPaise: 100n }, 0);
    const same = deriveOrderId('b', { accountNumber: '12345678', ifsc: 'SBIN0016745', amountPaise: 100n }, 0);
    const other = deriveOrderId('b', { accountNumber: '12345679', ifsc: 'SBIN0016745', amountPaise: 100n }, 0);
    expect([idKeyHi(id), idKeyLo(id)]).toEqual([idKeyHi(same), idKeyLo(same)]);
    expect([idKeyHi(id), idKeyLo(id)]).not.toEqual([idKeyHi(other), idKeyLo(other)]);
    expect(idKeyHi(id)).toBeLessThan(2 ** 30);
    expect(() => idKeyHi('PO-not-base32-at-all')).toThrow(RangeError);
  });
});
