/**
 * Money is integer paise everywhere inside the program (a `bigint`), rupees only at the edges.
 * Nothing here goes through a float except `paiseToJsonNumber`, whose result is only ever
 * handed to JSON.stringify (and n/100 of an integer below 2^53 prints with at most two decimals).
 */

export type Paise = bigint;

const RUPEE_RE = /^(\d+)(?:\.(\d{1,2}))?$/;

/** Parses "1111.11", "100", "0.5" (exact). Returns undefined for anything else. */
export function parseRupees(text: string): Paise | undefined {
  const m = RUPEE_RE.exec(text.trim());
  if (!m) return undefined;
  const whole = BigInt(m[1]!);
  const frac = (m[2] ?? '').padEnd(2, '0');
  return whole * 100n + BigInt(frac || '0');
}

/**
 * Parses an amount as the API returns it: a JSON number (100, 5.9) or a numeric string ("1111.11").
 * A number is converted through its shortest decimal form, which is exact for two-decimal values.
 * Returns undefined when the value is not a non-negative amount with at most two decimals.
 */
export function parseApiAmount(value: unknown): Paise | undefined {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) return undefined;
    return parseRupees(numberToPlainString(value));
  }
  if (typeof value === 'string') return parseRupees(value);
  return undefined;
}

function numberToPlainString(n: number): string {
  const s = String(n);
  if (!/e/i.test(s)) return s;
  // 1e-7 and similar: not a two-decimal amount; 1e21 and up: far beyond any wallet.
  return n.toFixed(20).replace(/\.?0+$/, '');
}

/** 10050n -> "100.50" */
export function formatRupees(paise: Paise): string {
  const neg = paise < 0n;
  const abs = neg ? -paise : paise;
  const whole = abs / 100n;
  const frac = (abs % 100n).toString().padStart(2, '0');
  return `${neg ? '-' : ''}${whole.toString()}.${frac}`;
}

/** 10050n -> "₹1,00.50" in Indian grouping: 1,00,00,000.00 */
export function formatRupeesIndian(paise: Paise): string {
  const [whole, frac] = formatRupees(paise).split('.') as [string, string];
  const neg = whole.startsWith('-');
  const digits = neg ? whole.slice(1) : whole;
  let grouped = digits;
  if (digits.length > 3) {
    const last3 = digits.slice(-3);
    const rest = digits.slice(0, -3).replace(/\B(?=(\d{2})+(?!\d))/g, ',');
    grouped = `${rest},${last3}`;
  }
  return `${neg ? '-' : ''}₹${grouped}.${frac}`;
}

/**
 * The JSON number the API expects for an amount: 10050n -> 100.5, 500n -> 5.
 * Exact for integer paise up to 10^15: the double nearest n/100 then prints (shortest round-trip) as the
 * same two-decimal value.
 */
export function paiseToJsonNumber(paise: Paise): number {
  // Up to 10^15 paise, n/100 prints exactly; validation caps payouts far below that.
  if (paise < 0n || paise > 10n ** 15n) {
    throw new RangeError(`amount out of range: ${paise} paise`);
  }
  return Number(paise) / 100;
}

export function rupees(n: number | string): Paise {
  const p = parseRupees(String(n));
  if (p === undefined) throw new RangeError(`not a rupee amount: ${n}`);
  return p;
}
