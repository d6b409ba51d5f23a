import type { Knex } from 'knex';
import type { RowState } from '../states.js';

/**
 * Applies a move of a row outside a claim (the table and its reasons: src/engine/machine.ts `MOVES`). The
 * engine names the move; this module is the only place its states and its guard become SQL, so no query
 * moves a row with guards of its own. Every statement is `UPDATE … WHERE state IN (from) AND <guard>`:
 * zero rows means another runner (or a later fact) won.
 */
export interface Move {
  from: readonly RowState[];
  to: readonly RowState[];
  guard: 'none' | 'never_sent' | 'may_have_sent' | 'never_claimed';
}

/** Which rows: a batch's, some ids, or one id (optionally only in the state it was read in: compare-and-set). */
export interface MoveScope {
  batch?: string;
  ids?: readonly string[];
  /** Only rows in this state (it must be one of the move's): for a decision made on the row as read. */
  state?: RowState;
}

/** The guard as SQL. "May have been sent" is a send deadline; "ever claimed" a first claim time. */
function guarded(q: Knex.QueryBuilder, guard: Move['guard']): Knex.QueryBuilder {
  switch (guard) {
    case 'none':
      return q;
    case 'never_sent':
      return q.whereNull('send_deadline');
    case 'may_have_sent':
      return q.whereNotNull('send_deadline');
    case 'never_claimed':
      return q.whereNull('first_claimed_at');
  }
}

function where(db: Knex, move: Move, scope: MoveScope): Knex.QueryBuilder {
  if (scope.state !== undefined && !move.from.includes(scope.state)) throw new Error(`move from ${scope.state} is not one of ${move.from.join(', ')}`);
  if (scope.batch === undefined && scope.ids === undefined) throw new Error('a move needs a batch or ids');
  const q = db('payout_rows');
  if (scope.batch !== undefined) q.where({ batch: scope.batch });
  if (scope.ids !== undefined) q.whereIn('id', scope.ids as string[]);
  q.whereIn('state', scope.state !== undefined ? [scope.state] : (move.from as RowState[]));
  return guarded(q, move.guard);
}

/**
 * Moves the rows in scope to `set.state` (one of the move's), setting the other columns given. Returns how
 * many moved. Ids go in chunks of 1000.
 */
export async function applyMove(db: Knex, move: Move, scope: MoveScope, set: { state: RowState } & Record<string, unknown>): Promise<number> {
  if (!move.to.includes(set.state)) throw new Error(`a move to ${set.state} is not one of ${move.to.join(', ')}`);
  if (move.to.length === 0) throw new Error('this move deletes rows: use deleteByMove');
  const run = async (s: MoveScope) => ((await where(db, move, s).update({ ...set, updated_at: db.fn.now() }).returning('id')) as unknown[]).length;
  if (scope.ids === undefined) return run(scope);
  let n = 0;
  for (let i = 0; i < scope.ids.length; i += 1000) n += await run({ ...scope, ids: scope.ids.slice(i, i + 1000) });
  return n;
}

/** Deletes the rows in scope that the move allows (its guard: never claimed). Returns how many went. */
export async function deleteByMove(db: Knex, move: Move, scope: MoveScope & { revision?: number }): Promise<number> {
  if (move.to.length !== 0) throw new Error('this move does not delete rows');
  const run = async (s: MoveScope) => {
    const q = where(db, move, s);
    if (scope.revision !== undefined) q.where({ revision: scope.revision });
    // RETURNING, not the affected count: knex-pglite reports a DELETE's count as an object.
    return ((await q.del().returning('id')) as unknown[]).length;
  };
  if (scope.ids === undefined) return run(scope);
  let n = 0;
  for (let i = 0; i < scope.ids.length; i += 1000) n += await run({ ...scope, ids: scope.ids.slice(i, i + 1000) });
  return n;
}

/**
 * How many rows of the batch the move may not touch (for `drop`: the rows a corrected copy keeps, a payout of
 * which may exist at the API). The complement of the move's own statement, so the two never disagree.
 */
export async function countRefusedByMove(db: Knex, move: Move, batch: string): Promise<number> {
  const r = (await db('payout_rows')
    .where({ batch })
    .whereNot((q) => {
      guarded(q.whereIn('state', move.from as RowState[]), move.guard);
    })
    .count('* as n')
    .first()) as { n: string | number };
  return Number(r.n);
}
