import type { Knex } from 'knex';

/** Users, the approval policy and the audit trail: the queries of maker-checker (src/engine/access.ts). */

export type Role = 'maker' | 'checker' | 'admin' | 'viewer';
export const ROLES: readonly Role[] = ['maker', 'checker', 'admin', 'viewer'];

export interface UserRecord {
  id: string;
  name: string;
  role: Role;
  password_hash: string;
  created_at: Date;
  disabled_at: Date | null;
}

export async function insertUser(db: Knex, u: { name: string; role: Role; passwordHash: string }): Promise<boolean> {
  const res = await db.raw(`INSERT INTO users (name, role, password_hash) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING id`, [u.name, u.role, u.passwordHash]);
  return (res.rows as unknown[]).length === 1;
}

export async function getUser(db: Knex, name: string): Promise<UserRecord | undefined> {
  return db<UserRecord>('users').where({ name }).first();
}

export async function listUsers(db: Knex): Promise<UserRecord[]> {
  return db<UserRecord>('users').orderBy('name');
}

export async function disableUser(db: Knex, name: string): Promise<boolean> {
  const n = await db('users').where({ name }).whereNull('disabled_at').update({ disabled_at: db.fn.now() });
  return n === 1;
}

export async function setPassword(db: Knex, name: string, passwordHash: string): Promise<boolean> {
  return (await db('users').where({ name }).update({ password_hash: passwordHash })) === 1;
}

export interface PolicyRecord {
  enabled: boolean;
  checkers: number;
  second_above_paise: string | null;
  updated_by: string | null;
  updated_at: Date;
}

export async function getPolicy(db: Knex): Promise<PolicyRecord> {
  const p = (await db('approval_policy').where('id', 1).first()) as PolicyRecord | undefined;
  return p ?? { enabled: false, checkers: 1, second_above_paise: null, updated_by: null, updated_at: new Date(0) };
}

export async function savePolicy(db: Knex, p: { enabled: boolean; checkers: number; secondAbovePaise: bigint | null; by: string }): Promise<void> {
  await db('approval_policy')
    .insert({ id: 1, enabled: p.enabled, checkers: p.checkers, second_above_paise: p.secondAbovePaise?.toString() ?? null, updated_by: p.by, updated_at: db.fn.now() })
    .onConflict('id')
    .merge();
}

export interface AuditRecord {
  id: string;
  at: Date;
  actor: string;
  action: string;
  batch: string | null;
  revision: number | null;
  detail: Record<string, unknown> | null;
  from_where: string | null;
}

export async function insertAudit(
  db: Knex,
  a: { actor: string; action: string; batch?: string | null; revision?: number | null; detail?: Record<string, unknown> | null; from?: string | null },
): Promise<void> {
  await db('audit').insert({
    actor: a.actor,
    action: a.action,
    batch: a.batch ?? null,
    revision: a.revision ?? null,
    detail: a.detail ? JSON.stringify(a.detail) : null,
    from_where: a.from ?? null,
  });
}

export async function auditOf(db: Knex, batch?: string, limit = 500): Promise<AuditRecord[]> {
  const q = db<AuditRecord>('audit').orderBy('at', 'desc').orderBy('id', 'desc').limit(limit);
  if (batch !== undefined) q.where({ batch });
  return q;
}

export async function setUploader(db: Knex, batch: string, by: string): Promise<void> {
  await db('batches').where({ name: batch }).whereNull('uploaded_by').update({ uploaded_by: by });
}
