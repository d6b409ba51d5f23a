import { readFileSync } from 'node:fs';
import { auditOf } from '../db/access.js';
import { getBatch } from '../db/batches.js';
import { addUser, disable, policy, setPolicy, users, ROLES } from '../engine/access.js';
import { rejectBatch } from '../engine/decisions.js';
import { BatchNotFoundError, EXIT, UsageError } from '../errors.js';
import { formatRupeesIndian, type Paise } from '../money.js';
import { DEFAULT_TIME_ZONE, localTime } from '../report/time.js';
import { actorOf, printJson, withDb, type CommandIO } from './context.js';

/** Where a new user's password comes from: a prompt that does not show it (twice), or the first line of stdin. */
async function newPassword(io: CommandIO, o: { passwordStdin?: boolean | undefined; readStdin?: () => string }, name: string): Promise<string> {
  if (o.passwordStdin) {
    const text = (o.readStdin ?? (() => readFileSync(0, 'utf8')))();
    return text.split(/\r?\n/)[0] ?? '';
  }
  if (!io.askSecret) throw new UsageError(`no terminal to type ${name}'s password: pass --password-stdin and give it on standard input`);
  const a = await io.askSecret(`New password for ${name}: `);
  const b = await io.askSecret('Again: ');
  if (a !== b) throw new UsageError('the two passwords differ: nothing changed');
  return a;
}

/** `payouts users add|list|disable`: users of the console and of `--as`, with their roles. */
export async function usersCommand(
  io: CommandIO,
  o: { action: 'add' | 'list' | 'disable'; name?: string | undefined; role?: string | undefined; as?: string | undefined; passwordStdin?: boolean | undefined; readStdin?: () => string },
): Promise<number> {
  return withDb(io, async (db) => {
    if (o.action === 'list') {
      const list = await users(db.knex);
      if (io.json) printJson(io, { users: list.map((u) => ({ name: u.name, role: u.role, created_at: u.created_at, disabled_at: u.disabled_at })) });
      else if (list.length === 0) io.out('No users yet: `payouts users add NAME --role admin` adds the first (it manages the others).');
      else for (const u of list) io.out(`${u.name.padEnd(20)} ${u.role.padEnd(8)} ${u.disabled_at ? `disabled ${localTime(u.disabled_at, DEFAULT_TIME_ZONE)}` : `since ${localTime(u.created_at, DEFAULT_TIME_ZONE)}`}`);
      return EXIT.ok;
    }
    if (!o.name) throw new UsageError(`name the user: \`payouts users ${o.action} NAME\``);
    const actor = await actorOf(io, db, o.as);
    if (o.action === 'disable') {
      await disable(db.knex, actor, o.name);
      io.out(`User ${o.name} disabled: they can no longer log in or approve; their earlier actions stay in the audit.`);
      return EXIT.ok;
    }
    if (!o.role) throw new UsageError(`give the role: --role ${ROLES.join('|')}`);
    const password = await newPassword(io, o, o.name);
    await addUser(db.knex, actor, { name: o.name, role: o.role, password });
    if (io.json) printJson(io, { user: o.name, role: o.role });
    else io.out(`User ${o.name} added as ${o.role}.`);
    return EXIT.ok;
  });
}

/** `payouts policy [--checkers N] [--second-above RUPEES] [--off]`: shows or sets the approval policy. */
export async function policyCommand(io: CommandIO, o: { checkers?: number | undefined; secondAbovePaise?: Paise | undefined; off?: boolean | undefined; as?: string | undefined }): Promise<number> {
  return withDb(io, async (db) => {
    let p = await policy(db.knex);
    if (o.off || o.checkers !== undefined || o.secondAbovePaise !== undefined) {
      const actor = await actorOf(io, db, o.as);
      p = o.off ? await setPolicy(db.knex, actor, { enabled: false, checkers: p.checkers }) : await setPolicy(db.knex, actor, { enabled: true, checkers: o.checkers ?? p.checkers, secondAbovePaise: o.secondAbovePaise ?? null });
    }
    if (io.json) {
      printJson(io, { enabled: p.enabled, checkers: p.checkers, second_above: p.secondAbovePaise, updated_by: p.updatedBy, updated_at: p.updatedAt });
    } else if (!p.enabled) {
      io.out('Approval policy: off. A batch is paid after a yes at a terminal, --yes, or `payouts approve` (as before).');
    } else {
      io.out(
        `Approval policy: on. No batch sends a payout until ${p.checkers} checker${p.checkers > 1 ? 's' : ''} other than its uploader approve its current revision` +
          `${p.secondAbovePaise !== null ? `, and a second, different checker when its total is above ${formatRupeesIndian(p.secondAbovePaise)}` : ''}. --yes alone is not enough.`,
      );
    }
    return EXIT.ok;
  });
}

/** `payouts reject <batch> --as CHECKER`: this revision is not paid. */
export async function rejectCommand(io: CommandIO, o: { batch: string; note?: string | undefined; revision?: number | undefined; as?: string | undefined }): Promise<number> {
  return withDb(io, async (db) => {
    if (!(await getBatch(db.knex, o.batch))) throw new BatchNotFoundError(`no batch named "${o.batch}" in this database: \`payouts status\` lists them`);
    const actor = await actorOf(io, db, o.as);
    const s = await rejectBatch({ db: db.knex }, o.batch, { note: o.note ?? '', by: actor.name, from: actor.from, actor, revision: o.revision });
    if (io.json) printJson(io, { batch: o.batch, revision: s.revision, decision: 'rejected', by: actor.name });
    else io.out(`Batch ${o.batch} revision ${s.revision} rejected by ${actor.name}: none of its ${s.rows} payouts not sent yet (${formatRupeesIndian(s.totalPaise)}) will be sent. A corrected copy is a new revision.`);
    return EXIT.ok;
  });
}

/** `payouts audit [batch]`: who did what, when, from where (newest first). */
export async function auditCommand(io: CommandIO, o: { batch?: string | undefined; limit?: number | undefined }): Promise<number> {
  return withDb(io, async (db) => {
    const rows = await auditOf(db.knex, o.batch, o.limit ?? 200);
    if (io.json) {
      printJson(io, { audit: rows.map((r) => ({ at: r.at, actor: r.actor, action: r.action, batch: r.batch, revision: r.revision, from: r.from_where, detail: r.detail })) });
      return EXIT.ok;
    }
    if (rows.length === 0) io.out(o.batch ? `Nothing recorded for batch ${o.batch}.` : 'Nothing recorded yet.');
    for (const r of rows) {
      const what = r.batch ? ` ${r.batch}${r.revision ? ` rev ${r.revision}` : ''}` : '';
      const note = r.detail && typeof r.detail['note'] === 'string' && r.detail['note'] ? ` "${r.detail['note']}"` : '';
      const user = r.detail && typeof r.detail['user'] === 'string' ? ` ${r.detail['user']}` : '';
      io.out(`${localTime(r.at, DEFAULT_TIME_ZONE)}  ${r.actor} (${r.from_where ?? '?'})  ${r.action}${what}${user}${note}`);
    }
    return EXIT.ok;
  });
}
