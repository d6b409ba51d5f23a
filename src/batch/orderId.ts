/**
 * Order ids. An explicit order_id from the CSV is used as given (after validation). Otherwise the id is
 * derived from what the payout is: its scope (the month, in India time, the batch was created in, and a
 * salt a person chose with --allow-duplicate-file), the payee (account and IFSC, normalised as for
 * matching: src/batch/payee.ts), the amount, and its occurrence among equal payments. Not from the batch
 * name nor the file's bytes: the same payment prepared in another database in the same month, under any
 * batch name, from any copy of the file, gets the same order_id, and the API's order_id uniqueness stops
 * it from being paid twice. Batches made before this (identities not starting "v3:") keep their own
 * derivation (`deriveOrderId` with the batch's key), so nothing already in flight changes its id.
 */
import { hash } from 'node:crypto';
import { accountKey, ifscKey } from './payee.js';

export const DERIVED_ORDER_ID_PREFIX = 'PO';
/** Characters of base32 after the prefix: 28 * 5 = 140 bits of the sha256. */
const DERIVED_HASH_CHARS = 28;
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
/** Bumping this changes every derived id: never do it for batches that may already be in flight. */
const DERIVATION_VERSION = 'alliance-payout-order-id/v1';
const VERSION_JSON = JSON.stringify(DERIVATION_VERSION);
/** The derivation by payment (scope, normalised payee, amount, occurrence). Never change it either. */
const PAYMENT_VERSION_JSON = JSON.stringify('alliance-payout-order-id/v3');

export interface PayoutIdentity {
  accountNumber: string;
  ifsc: string;
  amountPaise: bigint;
}

/** "account|IFSC|paise": what makes two rows the same payout. Inputs must be normalized already. */
export function contentKeyOf(row: PayoutIdentity): string {
  return `${row.accountNumber}|${row.ifsc}|${row.amountPaise.toString()}`;
}

const BASE32_CODES = [...BASE32].map((c) => c.charCodeAt(0));

/** The first `chars` base32 characters of the bytes a hex string spells: the same bits as of the bytes. */
function base32OfHex(hex: string, chars: number): string {
  const out = new Array<number>(chars);
  let n = 0;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < hex.length && n < chars; i++) {
    const c = hex.charCodeAt(i);
    acc = ((acc << 4) | (c <= 57 ? c - 48 : c - 87)) & 0xffff; // 0-9, a-f
    bits += 4;
    if (bits >= 5) {
      bits -= 5;
      out[n++] = BASE32_CODES[(acc >>> bits) & 31]!;
    }
  }
  return String.fromCharCode(...out);
}

/** Printable ASCII without `"` and `\`: what JSON.stringify leaves as it is. */
const JSON_PLAIN_RE = /^[ !#-[\]-~]*$/;

/** JSON.stringify(s), without its cost for the plain values (digits, IFSCs) hashed on every row. */
function jsonString(s: string): string {
  return JSON_PLAIN_RE.test(s) ? `"${s}"` : JSON.stringify(s);
}

let lastBatch: string | undefined;
let lastBatchJson = '';

/**
 * `PO` + 28 base32 characters (30 in all, only A-Z and 2-7) of
 * sha256(version, batch, account, IFSC, paise, occurrence). `occurrence` is 0 for the first row with
 * this identity in the file, 1 for the second, and so on. `batch` is an opaque key (the batch's
 * identity); the hashed material is the JSON array of those six values, byte for byte.
 */
export function deriveOrderId(batch: string, row: PayoutIdentity, occurrence: number): string {
  return derive(VERSION_JSON, batch, row.accountNumber, row.ifsc, row.amountPaise, occurrence);
}

/**
 * `PO` + 28 base32 characters of sha256(v3, scope, account key, IFSC key, paise, occurrence): the order_id
 * of a payment (see the module comment). `scope` is "v3:<IST month>" or "v3:<month>:<salt>" (the batch's
 * stored identity); the account and IFSC are normalised, so "0012345678" and "12345678" are one payee.
 * `occurrence` is 0 for the first equal payment, 1 for the next: in the file, and then past the payments
 * this database already holds (src/engine/ingest.ts), so next week's equal wage gets its own id.
 */
export function derivePaymentOrderId(scope: string, row: PayoutIdentity, occurrence: number): string {
  return derive(PAYMENT_VERSION_JSON, scope, accountKey(row.accountNumber), ifscKey(row.ifsc), row.amountPaise, occurrence);
}

function derive(versionJson: string, batch: string, account: string, ifsc: string, amountPaise: bigint, occurrence: number): string {
  if (!Number.isInteger(occurrence) || occurrence < 0) {
    throw new RangeError(`occurrence must be a non-negative integer, got ${occurrence}`);
  }
  if (batch !== lastBatch) {
    lastBatch = batch;
    lastBatchJson = JSON.stringify(batch);
  }
  const material =
    `[${versionJson},${lastBatchJson},${jsonString(account)},${jsonString(ifsc)},` +
    `"${amountPaise.toString()}",${occurrence}]`;
  // One-shot hash (Node >= 20.12) to hex: no Hash object, no Buffer per row.
  return DERIVED_ORDER_ID_PREFIX + base32OfHex(hash('sha256', material, 'hex'), DERIVED_HASH_CHARS);
}

export const EXPLICIT_ORDER_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Checks an order_id given in the CSV: 1 to 64 of A-Z a-z 0-9 _ -. Returns the problem as a sentence
 * naming the fix, or null when the id is fine.
 */
export function validateExplicitOrderId(id: string): string | null {
  if (id.length === 0) return 'order_id is empty: fill it in or remove the order_id column to derive ids';
  if (id.length > 64) {
    return `order_id "${id.slice(0, 20)}…" is ${id.length} characters: use at most 64`;
  }
  if (!EXPLICIT_ORDER_ID_RE.test(id)) {
    const bad = [...new Set([...id].filter((c) => !/[A-Za-z0-9_-]/.test(c)))]
      .map((c) => (c === ' ' ? 'space' : JSON.stringify(c)))
      .join(', ');
    return `order_id "${id}" contains ${bad}: use only letters, digits, "-" and "_"`;
  }
  return null;
}
