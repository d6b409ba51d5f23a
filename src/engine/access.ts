import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import type { Knex } from 'knex';
import { AccessError, UsageError } from '../errors.js';
import { formatRupeesIndian } from '../money.js';
import { approvalsOf, batchFilesOf, type BatchRecord } from '../db/batches.js';
import { disableUser, getPolicy, getUser, insertAudit, insertUser, listUsers, savePolicy, setPassword, ROLES, type Role, type UserRecord } from '../db/access.js';

/**
 * Maker-checker: users and roles, the approval policy, and the audit trail. The engine's rules; the CLI and
 * the console only call them.
 *
 * Roles: a `maker` uploads batches and runs them; a `checker` approves or rejects them (never their own
 * upload); an `admin` manages users and the policy (and may upload); a `viewer` only looks. With the policy
 * off (the default) nothing here changes how a batch is paid; with it on, no door sends a payout of a batch
 * until `approvalState` says the current revision holds the approvals the policy asks for (src/engine/run.ts).
 */

export type { Role } from '../db/access.js';
export { ROLES } from '../db/access.js';

/** scrypt parameters: N = 2^15, r = 8, p = 1 (32 MiB, about 100 ms here): stored with each hash, so they can grow. */
const SCRYPT = { N: 32768, r: 8, p: 1 } as const;
const KEY_LEN = 32;

function scrypt(password: string, salt: Buffer, keyLen: number, o: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCb(password, salt, keyLen, { ...o, maxmem: 128 * o.N! * o.r! * 2 }, (err, key) => (err ? reject(err) : resolve(key))));
}

/** "scrypt$N$r$p$salt$hash" (salt and hash base64url). */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password.normalize('NFKC'), salt, KEY_LEN, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [kind, n, r, p, salt, hash] = stored.split('$');
  if (kind !== 'scrypt' || !salt || !hash) return false;
  const want = Buffer.from(hash, 'base64url');
  const got = await scrypt(password.normalize('NFKC'), Buffer.from(salt, 'base64url'), want.length, { N: Number(n), r: Number(r), p: Number(p) });
  return got.length === want.length && timingSafeEqual(got, want);
}

/** A hash to compare against when the user does not exist: the same work, so a wrong name is not faster than a wrong password. */
let dummyHash: Promise<string> | undefined;

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$/;
export const MIN_PASSWORD = 10;

/** Who did something, and from where (for the audit). */
export interface Actor {
  /** A user's name, or the operating-system user@host of a CLI command run without --as. */
  name: string;
  /** The user, when authenticated. */
  user?: UserRecord;
  /** "cli", or the console's client address. */
  from: string;
}

export async function audit(db: Knex, actor: Actor, action: string, o: { batch?: string; revision?: number; detail?: Record<string, unknown> } = {}): Promise<void> {
  await insertAudit(db, { actor: actor.name, action, batch: o.batch ?? null, revision: o.revision ?? null, detail: o.detail ?? null, from: actor.from });
}

/** The user `name` with this password, enabled; otherwise an AccessError (401) that does not say which part was wrong. */
export async function authenticate(db: Knex, name: string, password: string): Promise<UserRecord> {
  const u = await getUser(db, name);
  dummyHash ??= hashPassword(randomBytes(12).toString('hex'));
  const ok = await verifyPassword(password, u?.password_hash ?? (await dummyHash));
  if (!u || !ok) throw new AccessError(`wrong user name or password for "${name}"`, 401);
  if (u.disabled_at) throw new AccessError(`user "${name}" is disabled: an admin can add a new user`, 401);
  return u;
}

/** An actor of this role or one of these roles, or an AccessError (403) saying who may. */
export function requireRole(actor: Actor, roles: readonly Role[], what: string): UserRecord {
  if (!actor.user) throw new AccessError(`${what} needs a user: pass --as <name> (the password from a prompt or PAYOUTS_PASSWORD)`, 401);
  if (!roles.includes(actor.user.role)) throw new AccessError(`${what} is for ${roles.join(' or ')} users; "${actor.user.name}" is a ${actor.user.role}`);
  return actor.user;
}

export async function addUser(db: Knex, actor: Actor, u: { name: string; role: string; password: string }): Promise<void> {
  await requireAdminOnceUsersExist(db, actor, 'adding a user', u.role);
  if (!NAME_RE.test(u.name)) throw new UsageError(`user name "${u.name}" must be 2 to 64 letters, digits, ".", "_", "@" or "-", starting with a letter or digit`);
  if (!(ROLES as readonly string[]).includes(u.role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}; got "${u.role}"`);
  if ([...u.password].length < MIN_PASSWORD) throw new UsageError(`the password must be at least ${MIN_PASSWORD} characters`);
  if (!(await insertUser(db, { name: u.name, role: u.role as Role, passwordHash: await hashPassword(u.password) }))) {
    throw new UsageError(`a user named "${u.name}" exists already (\`payouts users list\`)`);
  }
  await audit(db, actor, 'user.add', { detail: { user: u.name, role: u.role } });
}

export async function disable(db: Knex, actor: Actor, name: string): Promise<void> {
  requireRole(actor, ['admin'], 'disabling a user');
  if (actor.user?.name === name) throw new UsageError('an admin cannot disable themselves: another admin can');
  if (!(await disableUser(db, name))) throw new UsageError(`no enabled user named "${name}" (\`payouts users list\`)`);
  await audit(db, actor, 'user.disable', { detail: { user: name } });
}

export async function changePassword(db: Knex, actor: Actor, name: string, password: string): Promise<void> {
  if (actor.user?.name !== name) requireRole(actor, ['admin'], "changing another user's password");
  if ([...password].length < MIN_PASSWORD) throw new UsageError(`the password must be at least ${MIN_PASSWORD} characters`);
  if (!(await setPassword(db, name, await hashPassword(password)))) throw new UsageError(`no user named "${name}"`);
  await audit(db, actor, 'user.password', { detail: { user: name } });
}

export async function users(db: Knex): Promise<Omit<UserRecord, 'password_hash'>[]> {
  return (await listUsers(db)).map(({ password_hash: _p, ...u }) => u);
}

/**
 * The first user can be added by whoever holds the database (it must be an admin: someone has to manage
 * the others); after that only an admin adds users.
 */
async function requireAdminOnceUsersExist(db: Knex, actor: Actor, what: string, role: string): Promise<void> {
  if ((await listUsers(db)).length === 0) {
    if (role !== 'admin') throw new UsageError('add an admin first (`payouts users add NAME --role admin`): the first user manages the others');
    return;
  }
  requireRole(actor, ['admin'], what);
}

export interface Policy {
  enabled: boolean;
  /** Approvals each batch needs, by distinct checkers. */
  checkers: number;
  /** Above this batch total, at least two different checkers (and `checkers` if that is more). */
  secondAbovePaise: bigint | null;
  updatedBy: string | null;
  updatedAt: Date;
}

export async function policy(db: Knex): Promise<Policy> {
  const p = await getPolicy(db);
  return {
    enabled: p.enabled,
    checkers: p.checkers,
    secondAbovePaise: p.second_above_paise === null ? null : BigInt(p.second_above_paise),
    updatedBy: p.updated_by,
    updatedAt: p.updated_at,
  };
}

export async function setPolicy(db: Knex, actor: Actor, p: { enabled: boolean; checkers?: number; secondAbovePaise?: bigint | null }): Promise<Policy> {
  const hasUsers = (await listUsers(db)).length > 0;
  // Turning the policy on or off is an admin's, once there are users; turning it on needs checkers to exist.
  if (hasUsers) requireRole(actor, ['admin'], 'changing the approval policy');
  const checkers = p.checkers ?? 1;
  if (!Number.isInteger(checkers) || checkers < 1 || checkers > 5) throw new UsageError(`--checkers must be 1 to 5; got ${p.checkers}`);
  if (p.enabled) {
    const enabledCheckers = (await listUsers(db)).filter((u) => u.role === 'checker' && !u.disabled_at).length;
    const needed = Math.max(checkers, p.secondAbovePaise !== undefined && p.secondAbovePaise !== null ? 2 : 1);
    if (enabledCheckers < needed) {
      throw new UsageError(`the policy asks for ${needed} different checker${needed > 1 ? 's' : ''} but ${enabledCheckers} enabled checker user${enabledCheckers === 1 ? ' exists' : 's exist'}: add them first (\`payouts users add NAME --role checker\`), or no batch could ever be paid`);
    }
    if (!hasUsers) throw new UsageError('add an admin first (`payouts users add NAME --role admin`): someone must be able to change the policy later');
  }
  await savePolicy(db, { enabled: p.enabled, checkers, secondAbovePaise: p.secondAbovePaise ?? null, by: actor.name });
  await audit(db, actor, p.enabled ? 'policy.on' : 'policy.off', { detail: { checkers, second_above_paise: p.secondAbovePaise?.toString() ?? null } });
  return policy(db);
}

/** What the policy asks of one batch revision, and what it holds. */
export interface ApprovalState {
  /** The policy is on: without `met`, nothing of the batch is sent. */
  required: boolean;
  met: boolean;
  /** Distinct checkers needed for this revision (0 with the policy off). */
  needed: number;
  /** Checkers who approved this revision and file (uploader excluded, one each). */
  approvedBy: string[];
  /** A checker rejected this revision: it is not paid (a corrected copy is a new revision). */
  rejectedBy: string[];
  /** What is missing, in words (empty when met). */
  missing: string;
}

/** Who uploaded the batch, and who read the file of its current revision: neither approves it. */
export async function uploadersOf(db: Knex, b: BatchRecord): Promise<Set<string>> {
  const files = await batchFilesOf(db, b.name);
  const current = files.find((f) => f.revision === b.revision)?.uploaded_by;
  const names = [b.uploaded_by, current].filter((x): x is string => typeof x === 'string');
  // An upload without --as is recorded as the operating-system user@host: the user of that login name is
  // the same person (a checker uploading without --as must not approve it as themselves).
  return new Set(names.flatMap((n) => (/^[^@]+@[^@]+$/.test(n) ? [n, n.slice(0, n.lastIndexOf('@'))] : [n])));
}

/**
 * Whether a batch's current revision holds the approvals the policy asks for: `checkers` distinct enabled
 * checkers (and two above the second-approval threshold), none of them its uploader, each approving this
 * revision and this file (sha256). A rejection of the revision stops it whatever else it holds.
 */
export async function approvalState(db: Knex, b: BatchRecord, totalPaise: bigint): Promise<ApprovalState> {
  const p = await policy(db);
  const all = (await approvalsOf(db, b.name)).filter((a) => a.revision === b.revision && a.file_sha256 === b.file_sha256);
  const enabledCheckers = new Set((await listUsers(db)).filter((u) => u.role === 'checker' && !u.disabled_at).map((u) => u.name));
  const uploaders = await uploadersOf(db, b);
  const valid = (by: string) => enabledCheckers.has(by) && !uploaders.has(by);
  const approvedBy = [...new Set(all.filter((a) => a.decision === 'approved' && valid(a.by_user)).map((a) => a.by_user))];
  const rejectedBy = [...new Set(all.filter((a) => a.decision === 'rejected' && enabledCheckers.has(a.by_user)).map((a) => a.by_user))];
  if (!p.enabled) return { required: false, met: true, needed: 0, approvedBy, rejectedBy, missing: '' };
  const second = p.secondAbovePaise !== null && totalPaise > p.secondAbovePaise;
  const needed = Math.max(p.checkers, second ? 2 : 1);
  const met = rejectedBy.length === 0 && approvedBy.length >= needed;
  const missing = rejectedBy.length
    ? `revision ${b.revision} was rejected by ${rejectedBy.join(', ')}: it is not paid; a corrected copy is a new revision to approve`
    : met
      ? ''
      : `it needs ${needed} approval${needed > 1 ? 's' : ''} of revision ${b.revision} by different checkers other than its uploader` +
        `${second ? ` (a second one because its total is above ${formatRupeesIndian(p.secondAbovePaise!)})` : ''}` +
        `; it has ${approvedBy.length}${approvedBy.length ? ` (${approvedBy.join(', ')})` : ''}`;
  return { required: true, met, needed, approvedBy, rejectedBy, missing };
}
