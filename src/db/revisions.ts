import type { Knex } from 'knex';
import type { RowState } from '../states.js';

/** What a corrected copy is matched against: every row of the batch, locked until the transaction ends. */
export interface StoredPayee {
  id: string;
  row_no: number;
  name: string | null;
  email: string | null;
  mobile: string | null;
  account_no: string | null;
  ifsc: string | null;
  amount_paise: string | null;
  reference: string | null;
  state: RowState;
  first_claimed_at: Date | null;
  send_deadline: Date | null;
  order_id: string | null;
  transaction_id: string | null;
}

export async function lockPayees(trx: Knex.Transaction, batch: string): Promise<StoredPayee[]> {
  return trx('payout_rows')
    .select('id', 'row_no', 'name', 'email', 'mobile', 'account_no', 'ifsc', 'amount_paise', 'reference', 'state', 'first_claimed_at', 'send_deadline', 'order_id', 'transaction_id')
    .where('batch', batch)
    .orderBy('row_no')
    .orderBy('id')
    .forUpdate() as Promise<StoredPayee[]>;
}

export async function countRowsOf(db: Knex, batch: string): Promise<number> {
  const r = (await db('payout_rows').where({ batch }).count('* as n').first()) as { n: string | number };
  return Number(r.n);
}

/**
 * Rows kept from an earlier revision that the new file no longer has (they were claimed): marked so. What
 * becomes of their state is a move of its own (machine.ts MOVES.not_in_file): one that may have executed is
 * resolved by status, one that certainly never reached the API is cancelled.
 */
export async function markNotInFile(trx: Knex.Transaction, ids: string[], revision: number): Promise<void> {
  for (let i = 0; i < ids.length; i += 1000) {
    await trx('payout_rows').whereIn('id', ids.slice(i, i + 1000)).update({ in_file: false, revision, updated_at: trx.fn.now() });
  }
}

/** An old row that stands for a line of the new file: it takes the line's number and cells, keeps its payout. */
export async function keepForLine(trx: Knex.Transaction, id: string, line: { rowNo: number; revision: number; source: string[] | null }): Promise<void> {
  await trx('payout_rows')
    .where({ id })
    .update({
      row_no: line.rowNo,
      revision: line.revision,
      in_file: true,
      source: line.source === null ? null : JSON.stringify(line.source),
      updated_at: trx.fn.now(),
    });
}
