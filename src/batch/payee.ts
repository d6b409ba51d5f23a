/**
 * Payee identity: how a corrected copy of a file finds the rows it corrects. Pure functions.
 *
 * A spreadsheet damages identifiers in known ways: it drops leading zeros from anything that looks like a
 * number (0012345678 -> 12345678), people type spaces and hyphens into long numbers, and references
 * change case. The keys below undo exactly that, for matching only: the payout itself always uses the
 * account number as written in the file (validation refuses one with spaces or hyphens), and a match
 * whose written accounts differ only by leading zeros is flagged (`compareAccounts`), never silently
 * accepted, because an account with and without its zeros are different accounts at some banks.
 */

/** Spaces of any kind and hyphens or dashes, which people and exports put inside long numbers. */
const SEPARATORS_RE = /[\s\u2010-\u2015-]+/g;

function compact(s: string): string {
  return s.normalize('NFKC').replace(SEPARATORS_RE, '').toUpperCase();
}

function stripLeadingZeros(s: string): string {
  let i = 0;
  while (i < s.length - 1 && s.charCodeAt(i) === 48) i++;
  return i === 0 ? s : s.slice(i);
}

/**
 * An account number for matching: separators removed, upper case, leading zeros dropped ("00 1234-5678"
 * and "12345678" give "12345678"; "000" gives "0"). Empty for an empty account.
 */
export function accountKey(account: string): string {
  return stripLeadingZeros(compact(account));
}

/** An IFSC for matching: separators removed, upper case. */
export function ifscKey(ifsc: string): string {
  return compact(ifsc);
}

/**
 * Who is paid: normalized account + IFSC, as "ACCOUNT|IFSC". Null when either is empty, so that two rows
 * missing their bank details never match each other.
 */
export function payeeKey(row: { accountNumber: string; ifsc: string }): string | null {
  const acc = accountKey(row.accountNumber);
  const ifsc = ifscKey(row.ifsc);
  if (acc === '' || ifsc === '') return null;
  return `${acc}|${ifsc}`;
}

/**
 * A payee reference (employee id…) for matching: trimmed, lower case, inner spaces removed, leading
 * zeros dropped ("EMP 0042" -> "emp0042", " 00042 " -> "42"). Null when there is none.
 */
export function refKey(reference: string | null | undefined): string | null {
  if (reference === null || reference === undefined) return null;
  const k = stripLeadingZeros(reference.normalize('NFKC').replace(/\s+/g, '').toLowerCase());
  return k === '' ? null : k;
}

/**
 * How two written account numbers relate:
 * - `same`: identical (after trimming);
 * - `formatting`: the same digits, differing only in spaces or hyphens;
 * - `leading_zeros`: the same once leading zeros are dropped, but one has zeros the other lacks (what a
 *   spreadsheet does to an account it took for a number; flag it, a person must confirm);
 * - `different`: different accounts.
 */
export type AccountComparison = 'same' | 'formatting' | 'leading_zeros' | 'different';

export function compareAccounts(a: string, b: string): AccountComparison {
  const ta = a.trim();
  const tb = b.trim();
  if (ta === tb) return 'same';
  const ca = compact(ta);
  const cb = compact(tb);
  if (ca === cb) return 'formatting';
  if (stripLeadingZeros(ca) === stripLeadingZeros(cb)) return 'leading_zeros';
  return 'different';
}

/** True when two account numbers differ only by leading zeros (and perhaps spaces or hyphens). */
export function differOnlyByLeadingZeros(a: string, b: string): boolean {
  return compareAccounts(a, b) === 'leading_zeros';
}

/** An email for matching: trimmed, lower case (mail systems treat the domain, and in practice the name, so). */
export function emailKey(email: string | null | undefined): string | null {
  const k = (email ?? '').normalize('NFKC').trim().toLowerCase();
  return k === '' ? null : k;
}

/** A mobile number for matching: its last 10 digits (+91, 0 and separators dropped). Null without 10 digits. */
export function mobileKey(mobile: string | null | undefined): string | null {
  const digits = (mobile ?? '').replace(/\D+/g, '');
  return digits.length < 10 ? null : digits.slice(-10);
}

/** A name for matching: letters and digits only, lower case ("Asha  Rao." and "ASHA RAO" are one name). */
export function nameKey(name: string | null | undefined): string | null {
  const k = (name ?? '').normalize('NFKC').toLowerCase().replace(/[^\p{L}\p{N}]+/gu, '');
  return k === '' ? null : k;
}
