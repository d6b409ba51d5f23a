import type { Knex } from 'knex';
import { insertBatch } from '../../src/db/batches.js';

/**
 * A batch with one row in every report status, inserted straight into payout_rows, with the input's own
 * header and cells (as ingest keeps them), a reference column, Hindi and hostile names. Amounts are picked
 * so every sum is checkable by hand.
 */
export const SOURCE_HEADER = ['Employee ID', 'Name', 'Email', 'Mobile', 'Address', 'Mode', 'Account No', 'IFSC', 'Amount', 'Narration'];

/** Every full account number and mobile in the fixture: none may reach a report. */
export const FIXTURE_ACCOUNTS = ['079912345678', '223456789012', '323456780000', '423456789012', '523456789012', '623456789012', '723456789012', '823456789012', '923456789012', '113456789012', '213456789012', '313456789012'];

export const T0 = new Date('2026-11-27T08:35:09Z'); // 14:05:09 IST
const at = (s: number) => new Date(T0.getTime() + s * 1000);

interface FixtureRow {
  state: string;
  name: string;
  ref: string;
  acc: string;
  ifsc: string;
  bank: string;
  method: string;
  paise: bigint | null;
  charge?: bigint;
  utr?: string;
  apiStatus?: string;
  apiMessage?: string;
  lastError?: string;
  errors?: { field: string; code: string; message: string }[];
  claimed?: boolean;
  final?: boolean;
  remarks?: string;
  mobile?: string;
}

export const FIXTURE: FixtureRow[] = [
  { state: 'approved', name: 'Asha Rao', ref: '000123', acc: '079912345678', ifsc: 'SBIN0000691', bank: 'SBI', method: 'IMPS', paise: 150050n, charge: 590n, utr: '079812345678', apiStatus: 'Approved', apiMessage: 'Payout has been approved.', claimed: true, final: true, remarks: 'Nov salary' },
  { state: 'approved', name: 'राजेश कुमार', ref: 'E-2', acc: '223456789012', ifsc: 'HDFC0000001', bank: 'HDFC Bank', method: 'NEFT', paise: 200000n, charge: 590n, utr: '779812345678', apiStatus: 'Approved', apiMessage: 'Payout has been approved.', claimed: true, final: true },
  { state: 'rejected', name: 'Rejected Person', ref: 'E-3', acc: '323456780000', ifsc: 'ICIC0000001', bank: 'ICICI Bank', method: 'IMPS', paise: 30000n, charge: 590n, apiStatus: 'Rejected', apiMessage: 'Beneficiary account is closed.', claimed: true, final: true },
  {
    state: 'invalid', name: 'Bad Ifsc <b>&amp;</b>', ref: 'E-4', acc: '423456789012', ifsc: 'SBIN060589', bank: 'SBI', method: 'IMPS', paise: 30000n,
    errors: [
      { field: 'ifsc', code: 'ifsc_format', message: 'ifsc "SBIN060589" is not 11 characters: check the code' },
      { field: 'beneficiary_acc_no', code: 'x', message: 'beneficiary_acc_no "423456789012" is on the block list' },
    ],
  },
  { state: 'failed', name: '=HYPERLINK("http://evil.example","x")', ref: 'E-5', acc: '523456789012', ifsc: 'UTIB0000001', bank: 'Axis Bank', method: 'UPI', paise: 99999n, apiMessage: 'The beneficiary name field must not be greater than 100 characters.', lastError: 'The beneficiary name field must not be greater than 100 characters.', claimed: true, final: true },
  { state: 'pending', name: 'Pending Pal', ref: 'E-6', acc: '623456789012', ifsc: 'SBIN0000691', bank: 'SBI', method: 'IMPS', paise: 50000n, charge: 200n, apiStatus: 'Pending', apiMessage: 'Payout has been processing.', claimed: true },
  { state: 'submitting', name: 'Sent Unknown', ref: 'E-7', acc: '723456789012', ifsc: 'HDFC0000001', bank: 'HDFC', method: 'NEFT', paise: 70000n, lastError: 'no answer within 30000 ms', claimed: true },
  { state: 'ready', name: 'मोहन लाल & Sons', ref: 'E-8', acc: '823456789012', ifsc: 'ICIC0000001', bank: 'ICICI', method: 'IMPS', paise: 10000n },
  { state: 'skipped', name: 'Skipped Sam', ref: 'E-9', acc: '923456789012', ifsc: 'ICIC0000001', bank: 'ICICI', method: 'IMPS', paise: 20000n, lastError: 'not sent: the wallet balance ₹100.00 is short of ₹2,000.00 by ₹1,900.00' },
  { state: 'needs_review', name: 'Review Ravi', ref: 'E-10', acc: '113456789012', ifsc: 'SBIN0000691', bank: 'SBI', method: 'RTGS', paise: 25000000n, lastError: 'sent 2 times and each time the API later had no such payout: check with Alliance before paying this row again', claimed: true },
  { state: 'cancelled', name: 'Cancelled Cara', ref: 'E-11', acc: '213456789012', ifsc: 'UTIB0000001', bank: 'Axis', method: 'UPI', paise: 5000n },
  { state: 'approved', name: '@Ravi <script>alert(1)</script>', ref: 'E-12', acc: '313456789012', ifsc: 'UTIB0000001', bank: 'Axis Bank', method: 'UPI', paise: 1000n, charge: 100n, utr: 'AXISN12345678', apiStatus: 'Approved', apiMessage: 'Payout has been approved.', claimed: true, final: true, mobile: '+91 98765 43210' },
];

export async function insertFixture(db: Knex, batch: string, opts: { source?: boolean; reference?: boolean } = {}): Promise<void> {
  const source = opts.source ?? true;
  await insertBatch(db, { name: batch, sourceFile: `/data/${batch}.csv`, sha256: 'h', defaultUserId: 'u-1' });
  await db('batches')
    .where({ name: batch })
    .update({
      ingest_complete: true,
      created_at: at(-60),
      started_at: at(0),
      source_header: source ? JSON.stringify(SOURCE_HEADER) : null,
      reference_column: opts.reference ?? source ? 'Employee ID' : null,
    });
  let n = 2;
  for (const r of FIXTURE) {
    const rowNo = n++;
    const paise = r.paise === null ? null : r.paise.toString();
    const rupees = r.paise === null ? '' : `${r.paise / 100n}.${String(r.paise % 100n).padStart(2, '0')}`;
    await db('payout_rows').insert({
      batch,
      revision: 1,
      row_no: rowNo,
      order_id: r.state === 'invalid' ? null : `PO${batch.toUpperCase()}${rowNo}`,
      order_id_source: r.state === 'invalid' ? null : 'derived',
      state: r.state,
      name: r.name,
      email: `p${rowNo}@example.com`,
      mobile: r.mobile ?? `98765432${String(rowNo).padStart(2, '0')}`,
      address: 'Delhi',
      method: r.method,
      account_no: r.acc,
      bank_name: r.bank,
      ifsc: r.ifsc,
      amount_paise: paise,
      remarks: r.remarks ?? null,
      user_id: 'u-1',
      errors: JSON.stringify(r.errors ?? []),
      warnings: JSON.stringify(r.state === 'pending' ? [{ field: 'ifsc', code: 'branch', message: 'branch not in the list' }] : []),
      charge_paise: r.charge === undefined ? null : r.charge.toString(),
      transaction_id: r.utr ?? null,
      api_status: r.apiStatus ?? null,
      api_message: r.apiMessage ?? null,
      last_error: r.lastError ?? null,
      first_claimed_at: r.claimed ? at(rowNo) : null,
      first_sent_at: r.claimed ? at(rowNo) : null,
      finalized_at: r.final ? at(60 + rowNo) : null,
      reference: opts.reference ?? source ? r.ref : null,
      source: source
        ? JSON.stringify([r.ref, r.name, `p${rowNo}@example.com`, r.mobile ?? `98765432${String(rowNo).padStart(2, '0')}`, 'Delhi', r.method, r.acc, r.ifsc, rupees, r.remarks ?? ''])
        : null,
    });
  }
}
