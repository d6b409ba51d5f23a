import { createHash } from 'node:crypto';
import { payeeKey } from './payee.js';

const MOD = 1n << 128n;

/**
 * What a file pays, independent of how it is written: the multiset of (payee, amount) of its rows whose
 * account, IFSC and amount could be read. The same payroll re-saved by a spreadsheet (a BOM, CRLF line
 * endings, "1000" written "1,000.00", leading zeros dropped, columns or rows in another order, a name
 * respelled) has the same fingerprint, where its bytes' sha256 differs. Lines whose account, IFSC or amount
 * cannot be read are left out; a line with another error (an invalid mobile, say) is counted, since its
 * corrected copy would pay that payee.
 *
 * Order-independent: the sum, modulo 2^128, of a sha256 of each row's (payee, amount), with the count.
 */
export class PayrollFingerprint {
  private sum = 0n;
  private count = 0;

  add(row: { accountNumber: string; ifsc: string; amountPaise: bigint | null }): void {
    const payee = payeeKey(row);
    if (payee === null || row.amountPaise === null || row.amountPaise <= 0n) return;
    const h = createHash('sha256').update(`${payee}|${row.amountPaise}`).digest();
    this.sum = (this.sum + h.readBigUInt64BE(0) * (1n << 64n) + h.readBigUInt64BE(8)) % MOD;
    this.count++;
  }

  /** Payments counted. */
  get payments(): number {
    return this.count;
  }

  /** "v1:<count>:<hex>", or null for a file that pays nobody. */
  digest(): string | null {
    return this.count === 0 ? null : `v1:${this.count}:${this.sum.toString(16).padStart(32, '0')}`;
  }
}
