/**
 * Which payout identities (account, IFSC, amount) a file has shown so far, with the first row of each
 * and how often it repeated: for the "same as row N" warning and the occurrence in derived order ids.
 *
 * An open-addressing table over typed arrays, keyed by 60 bits of the identity's sha256 (taken from its
 * first derived order id). A Map keyed by strings cost a string, a hash and an entry per row (about a
 * tenth of validate's time and 60 bytes a row); this costs no allocation per row and 16 bytes a slot.
 * Two identities sharing 60 bits (about 1 in 2 million for a million-row file) would only add a false
 * "same as row N" warning and shift that row's occurrence: a different, still deterministic id.
 */
export class IdentityTable {
  private hi: Int32Array;
  private lo: Int32Array;
  /** First row number per slot; 0 means empty (row numbers start at 1). */
  private first: Int32Array;
  /** Rows seen with the identity, minus one. */
  private repeats: Int32Array;
  private size = 0;
  /** After `add`: the first row with the identity just added. */
  firstRow = 0;

  constructor(capacity = 1024) {
    const cap = 2 ** Math.ceil(Math.log2(Math.max(16, capacity)));
    this.hi = new Int32Array(cap);
    this.lo = new Int32Array(cap);
    this.first = new Int32Array(cap);
    this.repeats = new Int32Array(cap);
  }

  /**
   * Records a row with the identity (hi, lo): returns its occurrence (0 for the first row with it) and
   * sets `firstRow`.
   */
  add(hi: number, lo: number, rowNo: number): number {
    if (rowNo <= 0) throw new RangeError(`row numbers start at 1, got ${rowNo}`);
    if ((this.size + 1) * 2 > this.first.length) this.grow();
    const mask = this.first.length - 1;
    for (let i = (hi ^ lo) & mask; ; i = (i + 1) & mask) {
      const f = this.first[i]!;
      if (f === 0) {
        this.hi[i] = hi;
        this.lo[i] = lo;
        this.first[i] = rowNo;
        this.size++;
        this.firstRow = rowNo;
        return 0;
      }
      if (this.hi[i] === hi && this.lo[i] === lo) {
        this.firstRow = f;
        return ++this.repeats[i]!;
      }
    }
  }

  private grow(): void {
    const { hi, lo, first, repeats } = this;
    const cap = first.length * 2;
    this.hi = new Int32Array(cap);
    this.lo = new Int32Array(cap);
    this.first = new Int32Array(cap);
    this.repeats = new Int32Array(cap);
    const mask = cap - 1;
    for (let j = 0; j < first.length; j++) {
      if (first[j] === 0) continue;
      let i = (hi[j]! ^ lo[j]!) & mask;
      while (this.first[i] !== 0) i = (i + 1) & mask;
      this.hi[i] = hi[j]!;
      this.lo[i] = lo[j]!;
      this.first[i] = first[j]!;
      this.repeats[i] = repeats[j]!;
    }
  }
}

const BASE32_VALUE = new Int8Array(128).fill(-1);
for (const [i, c] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'].entries()) BASE32_VALUE[c.charCodeAt(0)] = i;

/** 30 bits from 6 base32 characters of `s` starting at `at`. */
function bits30(s: string, at: number): number {
  let v = 0;
  for (let i = at; i < at + 6; i++) {
    const d = BASE32_VALUE[s.charCodeAt(i)] ?? -1;
    if (d < 0) throw new RangeError(`not a derived order id: ${s}`);
    v = (v << 5) | d;
  }
  return v;
}

/** The two 30-bit halves of a derived order id's hash ("PO" + base32), for IdentityTable.add. */
export function idKeyHi(id: string): number {
  return bits30(id, 2);
}
export function idKeyLo(id: string): number {
  return bits30(id, 8);
}
