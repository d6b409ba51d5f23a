/**
 * Header mapping: which CSV column holds which API field. Canonical headers are the API's own field
 * names; common aliases are accepted, compared case-insensitively with spaces, underscores, hyphens,
 * dots and slashes ignored ("Account No.", "account_no", "A/C No" all match). One more field is not the
 * API's: `reference`, the payer's own id for the payee (an employee id), used to match a corrected copy
 * of the file to the rows already read.
 */
import { InputError } from '../errors.js';

export const CANONICAL_FIELDS = [
  'beneficiary_name',
  'beneficiary_email',
  'beneficiary_mobile_no',
  'beneficiary_address',
  'payment_method',
  'beneficiary_acc_no',
  'bank_name',
  'ifsc',
  'amount',
  'remarks',
  'order_id',
  'user_id',
  'reference',
] as const;
export type CanonicalField = (typeof CANONICAL_FIELDS)[number];

/**
 * Columns that may be absent from the file. bank_name can be filled from the IFSC; remarks is optional
 * in the API; order_id is derived when absent; user_id can come from --user-id; reference is ours.
 */
export const OPTIONAL_FIELDS: ReadonlySet<CanonicalField> = new Set<CanonicalField>([
  'bank_name',
  'remarks',
  'order_id',
  'user_id',
  'reference',
]);
export const REQUIRED_FIELDS: readonly CanonicalField[] = CANONICAL_FIELDS.filter(
  (f) => !OPTIONAL_FIELDS.has(f),
);

/** Accepted header names per field (the canonical name first). */
export const HEADER_ALIASES: Readonly<Record<CanonicalField, readonly string[]>> = {
  beneficiary_name: [
    'beneficiary_name', 'name', 'beneficiary', 'full name', 'payee', 'payee name', 'employee name',
    'account holder', 'account holder name', 'account name', 'beneficiary full name',
  ],
  beneficiary_email: [
    'beneficiary_email', 'email', 'e-mail', 'email id', 'email address', 'mail', 'beneficiary email id',
  ],
  beneficiary_mobile_no: [
    'beneficiary_mobile_no', 'mobile', 'mobile no', 'mobile number', 'phone', 'phone no', 'phone number',
    'contact', 'contact no', 'contact number', 'cell', 'beneficiary mobile', 'beneficiary phone',
    'beneficiary mobile number',
  ],
  beneficiary_address: ['beneficiary_address', 'address', 'addr', 'beneficiary addr'],
  payment_method: [
    'payment_method', 'method', 'mode', 'payment mode', 'transfer mode', 'transfer type', 'pay mode',
    'txn mode', 'transaction mode',
  ],
  beneficiary_acc_no: [
    'beneficiary_acc_no', 'account', 'account number', 'account no', 'acc no', 'acc number', 'ac no',
    'a/c no', 'a/c number', 'bank account', 'bank account number', 'bank account no',
    'beneficiary account', 'beneficiary account number', 'beneficiary account no',
  ],
  bank_name: ['bank_name', 'bank', 'beneficiary bank', 'beneficiary bank name'],
  ifsc: ['ifsc', 'ifsc code', 'ifsc no', 'ifsc number', 'beneficiary ifsc', 'bank ifsc'],
  amount: [
    'amount', 'amt', 'amount inr', 'amount (inr)', 'amount rs', 'amount (rs)', 'amount rupees',
    'amount (₹)', 'payout amount', 'net pay', 'net salary', 'net amount',
  ],
  remarks: [
    'remarks', 'remark', 'narration', 'note', 'notes', 'description', 'purpose', 'comment', 'comments',
  ],
  order_id: ['order_id', 'order id', 'orderid'],
  user_id: ['user_id', 'user id', 'userid', 'merchant user id'],
  // In order of preference: when a file has several (an "Employee ID" and a "Reference"), the first wins.
  reference: [
    'employee id', 'employee code', 'employee no', 'employee number', 'emp id', 'emp code', 'emp no',
    'emp number', 'staff id', 'staff code', 'staff no', 'staff number', 'payee id', 'payee code', 'payee ref',
    'payee reference', 'beneficiary id', 'beneficiary code', 'beneficiary ref', 'beneficiary reference',
    'vendor id', 'vendor code', 'reference', 'reference id', 'reference no', 'reference number', 'ref', 'ref no',
    'ref number',
  ],
};

/** "Account No." -> "accountno": lower case, only letters and digits (non-ASCII letters kept). */
export function normalizeHeader(h: string): string {
  return h
    .replace(/^\uFEFF/, '')
    .normalize('NFKC')
    .toLowerCase()
    .replace(/₹/g, 'rs')
    .replace(/[^\p{L}\p{N}]+/gu, '');
}

let aliasIndex: Map<string, CanonicalField> | undefined;
function aliases(): Map<string, CanonicalField> {
  if (aliasIndex) return aliasIndex;
  aliasIndex = new Map();
  for (const field of CANONICAL_FIELDS) {
    for (const alias of HEADER_ALIASES[field]) {
      const key = normalizeHeader(alias);
      const prev = aliasIndex.get(key);
      if (prev && prev !== field) throw new Error(`alias ${alias} maps to ${prev} and ${field}`);
      aliasIndex.set(key, field);
    }
  }
  return aliasIndex;
}

/** The field a header names, or undefined. */
export function fieldForHeader(header: string): CanonicalField | undefined {
  return aliases().get(normalizeHeader(header));
}

/** The rank of a header among the reference aliases (lower is preferred). */
function referenceRank(header: string): number {
  const key = normalizeHeader(header);
  return HEADER_ALIASES.reference.findIndex((a) => normalizeHeader(a) === key);
}

export interface HeaderMapping {
  /** Column index (0-based) of each field present in the file. */
  columns: Partial<Record<CanonicalField, number>>;
  /** The header cells, trimmed (a BOM removed): how messages name the columns. */
  header: string[];
  /** The header cells exactly as they were in the file (for a corrections file that mirrors the input). */
  source: string[];
  /** The column holding the payee reference (an employee id…), if the file has one. */
  reference: { index: number; header: string } | null;
  /** Non-empty header cells that name no field, as "Name (column 4)"; their values are ignored. */
  ignored: string[];
  /** Human-readable notes about the header (ignored columns, empty header cells). */
  warnings: string[];
}

function describe(header: string[], i: number): string {
  return `"${header[i]}" (column ${i + 1})`;
}

/**
 * Maps a header row to fields. Throws InputError when required columns are missing or two columns name
 * the same field (except the reference: of several reference columns the preferred one is used and the
 * others ignored, with a warning). Unknown columns are ignored with a warning.
 */
export function mapHeader(header: readonly string[]): HeaderMapping {
  const source = header.map((h, i) => (i === 0 ? h.replace(/^\uFEFF/, '') : h));
  const cells = source.map((h) => h.trim());
  const columns: Partial<Record<CanonicalField, number>> = {};
  const ignored: string[] = [];
  const warnings: string[] = [];
  const emptyCols: number[] = [];
  const duplicates: string[] = [];
  const otherReferences: number[] = [];

  cells.forEach((cell, i) => {
    if (cell === '') {
      emptyCols.push(i + 1);
      return;
    }
    const field = fieldForHeader(cell);
    if (!field) {
      ignored.push(`${cell} (column ${i + 1})`);
      return;
    }
    const prev = columns[field];
    if (prev !== undefined) {
      if (field === 'reference') {
        if (referenceRank(cell) < referenceRank(cells[prev]!)) {
          otherReferences.push(prev);
          columns.reference = i;
        } else {
          otherReferences.push(i);
        }
        return;
      }
      duplicates.push(
        `columns ${describe(cells, prev)} and ${describe(cells, i)} both mean ${field}: remove or rename one of them`,
      );
      return;
    }
    columns[field] = i;
  });

  const recognised = Object.keys(columns).length;
  const missing = REQUIRED_FIELDS.filter((f) => columns[f] === undefined);

  if (duplicates.length > 0) {
    throw new InputError(`the CSV header is ambiguous: ${duplicates.join('; ')}`);
  }
  if (recognised === 0) {
    throw new InputError(
      `the first line of the CSV is not a header (no column name recognised in: ${cells.slice(0, 6).join(', ')}${cells.length > 6 ? ', …' : ''}): ` +
        `add a header line with the columns ${REQUIRED_FIELDS.join(', ')} (optional: ${[...OPTIONAL_FIELDS].join(', ')})`,
    );
  }
  if (missing.length > 0) {
    const help = missing
      .map((f) => `${f} (accepted names: ${HEADER_ALIASES[f].join(', ')})`)
      .join('; ');
    throw new InputError(
      `the CSV is missing the required column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}: add ${missing.length > 1 ? 'them' : 'it'} to the header. ${help}`,
    );
  }
  const refIndex = columns.reference;
  for (const i of otherReferences.sort((a, b) => a - b)) {
    ignored.push(`${cells[i]} (column ${i + 1})`);
    warnings.push(`payee reference taken from ${describe(cells, refIndex!)}; ${describe(cells, i)} is ignored`);
  }
  if (ignored.length > 0) {
    warnings.push(`ignored column${ignored.length > 1 ? 's' : ''} not used by the API: ${ignored.join(', ')}`);
  }
  if (emptyCols.length > 0) {
    warnings.push(
      `column${emptyCols.length > 1 ? 's' : ''} ${emptyCols.join(', ')} ha${emptyCols.length > 1 ? 've' : 's'} no header and ${emptyCols.length > 1 ? 'are' : 'is'} ignored`,
    );
  }
  return {
    columns,
    header: cells,
    source,
    reference: refIndex === undefined ? null : { index: refIndex, header: cells[refIndex]! },
    ignored,
    warnings,
  };
}

/** The raw values of one record by field (undefined where the column is absent or the row is short). */
export function pickFields(
  mapping: HeaderMapping,
  record: readonly string[],
): Record<CanonicalField, string | undefined> {
  const out = {} as Record<CanonicalField, string | undefined>;
  for (const f of CANONICAL_FIELDS) {
    const i = mapping.columns[f];
    out[f] = i === undefined ? undefined : record[i];
  }
  return out;
}
