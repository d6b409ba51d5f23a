/**
 * Lazy access to Razorpay's IFSC data (the `ifsc` package). Its index.js requires the deprecated
 * `request` module, so only its JSON files are loaded, on first use.
 *
 * IFSC.json: bank code -> branch codes (the 6 characters after the 0), a number when the branch code
 * is all digits (leading zeros dropped), a string otherwise. Lookup rules follow ifsc/src/node/index.js.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

type BranchList = ReadonlyArray<string | number>;

let ifscData: Readonly<Record<string, BranchList>> | undefined;
let bankNames: Readonly<Record<string, string>> | undefined;
let sublets: Readonly<Record<string, string>> | undefined;
const branchSets = new Map<string, Set<string>>();

function data(): Readonly<Record<string, BranchList>> {
  ifscData ??= require('ifsc/src/IFSC.json') as Record<string, BranchList>;
  return ifscData;
}

function names(): Readonly<Record<string, string>> {
  bankNames ??= require('ifsc/src/banknames.json') as Record<string, string>;
  return bankNames;
}

function subletMap(): Readonly<Record<string, string>> {
  sublets ??= require('ifsc/src/sublet.json') as Record<string, string>;
  return sublets;
}

/**
 * The set form of one bank's branch list, each branch as the 6 characters it has in an IFSC (a numeric
 * branch padded back to 6 digits), so a lookup is one `has` of the IFSC's tail.
 */
function branchSet(bankCode: string): Set<string> | undefined {
  let set = branchSets.get(bankCode);
  if (set) return set;
  const list = Object.prototype.hasOwnProperty.call(data(), bankCode) ? data()[bankCode] : undefined;
  if (!list) return undefined;
  set = new Set(list.map((b) => (typeof b === 'number' ? String(b).padStart(6, '0') : b)));
  branchSets.set(bankCode, set);
  return set;
}

/** True when the 4-letter bank code issues IFSCs (is a key of IFSC.json). */
export function isKnownBankCode(bankCode: string): boolean {
  return Object.prototype.hasOwnProperty.call(data(), bankCode);
}

export type IfscLookup = 'known' | 'unknown_branch' | 'unknown_bank';

/** `ifsc` must already be 11 characters, upper case, with a 0 in the fifth place. */
export function lookupIfsc(ifsc: string): IfscLookup {
  const bank = ifsc.slice(0, 4);
  const set = branchSet(bank);
  if (!set) return 'unknown_bank';
  return set.has(ifsc.slice(5)) ? 'known' : 'unknown_branch';
}

/**
 * The bank's name for an IFSC: a sub-member bank's own name when the IFSC is one of its sublets
 * (e.g. a co-operative bank served through HDFC), else the name of the bank code. Undefined if unknown.
 */
export function bankNameForIfsc(ifsc: string): string | undefined {
  const n = names();
  const sub = Object.prototype.hasOwnProperty.call(subletMap(), ifsc) ? subletMap()[ifsc] : undefined;
  if (sub && Object.prototype.hasOwnProperty.call(n, sub)) return n[sub];
  const bank = ifsc.slice(0, 4);
  return Object.prototype.hasOwnProperty.call(n, bank) ? n[bank] : undefined;
}

/** Bank name for a 4-letter code, or undefined. */
export function bankNameForCode(bankCode: string): string | undefined {
  const n = names();
  return Object.prototype.hasOwnProperty.call(n, bankCode) ? n[bankCode] : undefined;
}

/** Branch codes (6 characters, as they appear in an IFSC) of a bank; empty for an unknown bank. */
export function branchCodesOf(bankCode: string): string[] {
  const list = Object.prototype.hasOwnProperty.call(data(), bankCode) ? data()[bankCode] : undefined;
  if (!list) return [];
  return list.map((b) => (typeof b === 'number' ? String(b).padStart(6, '0') : b));
}
