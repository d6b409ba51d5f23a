import { formatRupees } from '../money.js';
import { maskAccount } from '../log.js';

/**
 * The one JSON style of every `--json` output: snake_case keys, amounts as rupee decimal strings
 * ("1234.50"), paise only in fields named `*_paise` (as strings: a bigint does not fit a JSON number),
 * dates as ISO strings, account numbers masked. Engine results (camelCase, bigint paise) go through
 * `jsonStyle` instead of being printed raw.
 *
 * A field `amountPaise: 123450n` becomes `amount: "1234.50"` and `amount_paise: "123450"`; a field named
 * just `paise` becomes `amount` and `amount_paise`.
 */
export function jsonStyle(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(jsonStyle);
  if (value instanceof Map) return jsonStyle(Object.fromEntries(value));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (v === undefined) continue;
    const key = snake(k);
    const paiseBase = key === 'paise' ? 'amount' : key.endsWith('_paise') ? key.slice(0, -'_paise'.length) : undefined;
    if (paiseBase !== undefined && (typeof v === 'bigint' || typeof v === 'number' || typeof v === 'string' || v === null)) {
      const p = toPaise(v);
      out[paiseBase] = p === null ? null : formatRupees(p);
      out[`${paiseBase}_paise`] = p === null ? null : p.toString();
      continue;
    }
    if (/account/.test(key) && typeof v === 'string') {
      out[key] = maskAccount(v);
      continue;
    }
    out[key] = jsonStyle(v);
  }
  return out;
}

function toPaise(v: bigint | number | string | null): bigint | null {
  if (v === null) return null;
  if (typeof v === 'bigint') return v;
  try {
    return BigInt(v);
  } catch {
    return null;
  }
}

/** "amountPaise" -> "amount_paise"; "by_method" stays; an environment variable's name (ALLIANCE_GET_BODY) stays. */
export function snake(k: string): string {
  if (/^[A-Z][A-Z0-9_]*$/.test(k)) return k;
  return k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/([A-Z])([A-Z][a-z])/g, '$1_$2').toLowerCase();
}

/** Printed JSON: the style applied, two-space indent. */
export function jsonText(value: unknown): string {
  return JSON.stringify(jsonStyle(value), null, 2);
}
