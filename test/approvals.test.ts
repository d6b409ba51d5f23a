/**
 * Issue 19: maker-checker that no door can bypass, through the built command: users and roles, the policy,
 * `run --yes`, `resume --yes` and the inbox watcher held until checkers other than the uploader approve the
 * revision (a second one above the threshold), an audit of it all, and the change plan that flags a known
 * payee's changed account in the dry run and the confirmation. PGlite data directory per test.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from './helpers/cli.js';
import { KEYS, sandbox, tmpDir } from './helpers/env.js';
import { freshDb } from './helpers/db.js';
import { hashPassword, verifyPassword, authenticate, addUser, approvalState } from '../src/engine/access.js';
import { getBatch } from '../src/db/batches.js';
import { claimReady } from '../src/db/claims.js';
import { ingestFile } from '../src/engine/ingest.js';
import { AccessError } from '../src/errors.js';
import type { Sandbox } from '../src/sandbox/server.js';

const HEADER = 'employee id,beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount';

function payroll(file: string, people: number, base = 1000, accountOf = (i: number) => `${7600000000 + i}1`): string {
  const lines = [HEADER];
  for (let i = 0; i < people; i++) lines.push(`E${i + 1},Payee ${i},p${i}@example.com,98765${String(40000 + i)},"${i} MG Road",IMPS,${accountOf(i)},SBI,SBIN0000691,${base + i * 10}`);
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

const show = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
const FAST = ['--user-id', 'M1', '--poll-interval', '100ms', '--rate', '50'];

describe('maker-checker through the command', () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await sandbox({ settleMs: 20 });
  });
  afterAll(async () => sb?.close());

  function world() {
    const root = tmpDir('payouts-mc-');
    const dataDir = path.join(root, 'data');
    const env = { ALLIANCE_BASE_URL: sb.url, ALLIANCE_ACCESS_KEY: KEYS.accessKey, ALLIANCE_SECRET_KEY: KEYS.secretKey, PAYOUTS_DATA_DIR: dataDir };
    const cli = (args: string[], o: { as?: string; password?: string; input?: string } = {}) =>
      runCli([...args, ...(o.as ? ['--as', o.as] : [])], { env: { ...env, ...(o.password ? { PAYOUTS_PASSWORD: o.password } : {}) }, cwd: root, ...(o.input !== undefined ? { input: o.input } : {}) });
    const users = async () => {
      expect((await cli(['users', 'add', 'ravi', '--role', 'admin', '--password-stdin'], { input: 'ravi-secret-1\n' })).code).toBe(0);
      for (const [name, role] of [
        ['maya', 'maker'],
        ['asha', 'checker'],
        ['bala', 'checker'],
        ['vik', 'viewer'],
      ] as const) {
        const r = await cli(['users', 'add', name, '--role', role, '--password-stdin'], { as: 'ravi', password: 'ravi-secret-1', input: `${name}-secret-1\n` });
        expect(r.code, show(r)).toBe(0);
      }
    };
    return { root, cli, users };
  }

  it('users: the first is an admin, then only an admin adds users; roles and disabled users are listed; passwords are scrypt hashes', async () => {
    const { cli, users } = world();
    const first = await cli(['users', 'add', 'ravi', '--role', 'checker', '--password-stdin'], { input: 'ravi-secret-1\n' });
    expect(first.code).toBe(2);
    expect(first.stderr).toMatch(/add an admin first|first user/i);
    await users();
    const notAdmin = await cli(['users', 'add', 'eve', '--role', 'checker', '--password-stdin'], { as: 'maya', password: 'maya-secret-1', input: 'eve-secret-01\n' });
    expect(notAdmin.code).toBe(2);
    expect(notAdmin.stderr).toMatch(/for admin users; "maya" is a maker/);
    const wrong = await cli(['users', 'add', 'eve', '--role', 'checker', '--password-stdin'], { as: 'ravi', password: 'nope-nope-nope', input: 'eve-secret-01\n' });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/wrong user name or password/);
    expect((await cli(['users', 'disable', 'vik'], { as: 'ravi', password: 'ravi-secret-1' })).code).toBe(0);
    const list = await cli(['users', 'list']);
    expect(list.stdout).toMatch(/asha\s+checker/);
    expect(list.stdout).toMatch(/vik\s+viewer\s+disabled/);
    expect(list.stdout).not.toMatch(/secret|scrypt/);
    const h = await hashPassword('correct horse');
    expect(h).toMatch(/^scrypt\$32768\$8\$1\$[\w-]{22}\$[\w-]{43}$/);
    expect(await verifyPassword('correct horse', h)).toBe(true);
    expect(await verifyPassword('correct horsE', h)).toBe(false);
  });

  it('with the policy on, run --yes and resume --yes send nothing until a checker other than the uploader approves; a second checker above the threshold', async () => {
    const { root, cli, users } = world();
    await users();
    const pol = await cli(['policy', '--checkers', '1', '--second-above', '2,000'], { as: 'ravi', password: 'ravi-secret-1' });
    expect(pol.code, show(pol)).toBe(0);
    expect(pol.stdout).toMatch(/Approval policy: on/);
    const before = sb.ledger().length;
    // Uploaded by maya, total ₹3,030: above ₹2,000, so two different checkers.
    const up = await cli(['run', payroll(path.join(root, 'nov.csv'), 3), ...FAST, '--yes'], { as: 'maya', password: 'maya-secret-1' });
    expect(up.code, show(up)).toBe(3);
    expect(up.stdout + up.stderr).toMatch(/not approved: it needs 2 approvals of revision 1 by different checkers other than its uploader \(a second one because its total is above ₹2,000\.00\); it has 0/);
    expect(sb.ledger().length).toBe(before);
    // The uploader cannot approve; a maker or a viewer cannot either.
    const self = await cli(['approve', 'nov'], { as: 'maya', password: 'maya-secret-1' });
    expect(self.code).toBe(2);
    expect(self.stderr).toMatch(/for checker users; "maya" is a maker/);
    // An unauthenticated approve is not an approval under the policy.
    expect((await cli(['approve', 'nov'])).code).toBe(2);
    expect((await cli(['approve', 'nov'], { as: 'asha', password: 'asha-secret-1' })).code).toBe(0);
    const one = await cli(['resume', 'nov', ...FAST, '--yes']);
    expect(one.code, show(one)).toBe(3);
    expect(one.stdout + one.stderr).toMatch(/it has 1 \(asha\)/);
    expect(sb.ledger().length).toBe(before);
    // The same checker twice is still one.
    await cli(['approve', 'nov'], { as: 'asha', password: 'asha-secret-1' });
    expect((await cli(['resume', 'nov', ...FAST, '--yes'])).code).toBe(3);
    expect((await cli(['approve', 'nov'], { as: 'bala', password: 'bala-secret-1' })).code).toBe(0);
    // Approved: an unattended resume (no --yes) pays it.
    const paid = await cli(['resume', 'nov', ...FAST]);
    expect(paid.code, show(paid)).toBe(0);
    expect(sb.ledger().length - before).toBe(3);
    const audit = await cli(['audit', 'nov']);
    expect(audit.code).toBe(0);
    const actions = audit.stdout.split('\n').filter((l) => / nov /.test(l)).map((l) => /\)\s+(\S+) nov/.exec(l)?.[1]);
    expect(actions.reverse()).toEqual(['upload', 'approve', 'approve', 'approve', 'resume']);
    expect(audit.stdout).toMatch(/maya \(cli\)\s+upload nov rev 1/);
    expect(audit.stdout).toMatch(/bala \(cli\)\s+approve nov rev 1/);
  });

  it('a rejection stops the revision; a new revision needs new approvals; a disabled checker\'s approval no longer counts', async () => {
    const { root, cli, users } = world();
    await users();
    expect((await cli(['policy', '--checkers', '1'], { as: 'ravi', password: 'ravi-secret-1' })).code).toBe(0);
    const file = payroll(path.join(root, 'dec.csv'), 2, 500);
    expect((await cli(['run', file, ...FAST, '--yes'], { as: 'maya', password: 'maya-secret-1' })).code).toBe(3);
    expect((await cli(['reject', 'dec', '--note', 'E2 looks wrong'], { as: 'asha', password: 'asha-secret-1' })).code).toBe(0);
    expect((await cli(['approve', 'dec'], { as: 'bala', password: 'bala-secret-1' })).code).toBe(0);
    const r = await cli(['resume', 'dec', ...FAST, '--yes']);
    expect(r.code).toBe(3);
    expect(r.stdout + r.stderr).toMatch(/rejected by asha/);
    // A corrected copy: revision 2, approved by bala, then bala is disabled before the run.
    const v2 = payroll(path.join(root, 'dec-v2.csv'), 3, 500);
    expect((await cli(['run', v2, '--batch', 'dec', ...FAST, '--yes'], { as: 'maya', password: 'maya-secret-1' })).code).toBe(3);
    expect((await cli(['approve', 'dec', '--revision', '2'], { as: 'bala', password: 'bala-secret-1' })).code).toBe(0);
    expect((await cli(['users', 'disable', 'bala'], { as: 'ravi', password: 'ravi-secret-1' })).code).toBe(0);
    const stillNo = await cli(['resume', 'dec', ...FAST, '--yes']);
    expect(stillNo.code).toBe(3);
    expect(stillNo.stdout + stillNo.stderr).toMatch(/it has 0/);
    expect((await cli(['approve', 'dec', '--revision', '2'], { as: 'asha', password: 'asha-secret-1' })).code).toBe(0);
    expect((await cli(['resume', 'dec', ...FAST, '--yes'])).code).toBe(0);
  });

  it('the inbox watcher keeps a file awaiting approval in processing/ and pays it once a checker approves', async () => {
    const { root, cli, users } = world();
    await users();
    expect((await cli(['policy', '--checkers', '1'], { as: 'ravi', password: 'ravi-secret-1' })).code).toBe(0);
    const inbox = path.join(root, 'inbox');
    mkdirSync(inbox);
    payroll(path.join(inbox, 'weekly.csv'), 2, 700);
    const before = sb.ledger().length;
    const first = await cli(['watch', inbox, '--once', '--yes', '--stable', '0s', ...FAST]);
    expect(first.code, show(first)).toBe(3);
    expect(readdirSync(path.join(inbox, 'processing'))).toContain('weekly.csv');
    expect(readdirSync(path.join(inbox, 'failed'))).toEqual([]);
    expect(sb.ledger().length).toBe(before);
    expect((await cli(['approve', 'weekly'], { as: 'asha', password: 'asha-secret-1' })).code).toBe(0);
    const second = await cli(['watch', inbox, '--once', '--yes', '--stable', '0s', '--retry-after', '0s', ...FAST]);
    expect(second.code, show(second)).toBe(0);
    expect(readdirSync(path.join(inbox, 'done'))).toContain('weekly.csv');
    expect(sb.ledger().length - before).toBe(2);
  });

  it('with the policy off and no users, reject is the person at the terminal saying no: recorded, and a later --yes sends nothing', async () => {
    const w = world();
    const f = payroll(path.join(w.root, 'plain.csv'), 2, 3100);
    const first = await w.cli(['run', f, '--batch', 'plain', ...FAST]);
    expect(first.code, show(first)).toBe(3);
    const no = await w.cli(['reject', 'plain', '--note', 'wrong month']);
    expect(no.code, show(no)).toBe(0);
    expect(no.stdout).toMatch(/revision 1 rejected by \S+@\S+: none of its 2 payouts/);
    const before = sb.ledger().length;
    const again = await w.cli(['resume', 'plain', '--yes', ...FAST]);
    expect(again.code, show(again)).toBe(3);
    expect(sb.ledger().length).toBe(before);
  });

  it('the change plan flags a known payee whose account changed, masked, in the dry run and the confirmation facts', async () => {
    const { root, cli } = world();
    expect((await cli(['run', payroll(path.join(root, 'oct.csv'), 4, 900), ...FAST, '--yes'])).code).toBe(0);
    // November: E3's account changed, E4 gone, E5 new, E2's amount up 50 %.
    const nov = path.join(root, 'nov-pay.csv');
    const lines = [
      HEADER,
      `E1,Payee 0,p0@example.com,9876540000,"0 MG Road",IMPS,76000000001,SBI,SBIN0000691,900`,
      `E2,Payee 1,p1@example.com,9876540001,"1 MG Road",IMPS,76000000011,SBI,SBIN0000691,1365`,
      `E3,Payee 2,p2@example.com,9876540002,"2 MG Road",IMPS,55512349876,SBI,SBIN0000691,920`,
      `E5,New Person,n5@example.com,9876540005,"5 MG Road",IMPS,76000000051,SBI,SBIN0000691,500`,
    ];
    writeFileSync(nov, lines.join('\n') + '\n');
    const dry = await cli(['run', nov, ...FAST, '--dry-run']);
    expect(dry.code, show(dry)).toBeLessThanOrEqual(1);
    expect(dry.stdout).toMatch(/CHANGED BANK DETAILS: 1 payee batch "oct" paid now has another account/);
    expect(dry.stdout).toMatch(/row 4: Payee 2 \(E3\), ₹920\.00: account X+0021 -> X+9876 \(was row 4; the same payee by reference/);
    expect(dry.stdout).not.toContain('55512349876');
    expect(dry.stdout).toMatch(/changes since batch "oct": 1 as before, 1 amounts changed by more than 10 %, 1 new, 1 gone/);
    expect(dry.stdout).toMatch(/Payee 1 \(E2\): ₹910\.00 -> ₹1,365\.00 \(\+50\.0 %\)/);
    const json = await cli(['run', nov, ...FAST, '--dry-run', '--json']);
    const out = JSON.parse(json.stdout) as { ingest: { plan: { bank_details_changed: { changes: { field: string; old: string; new: string }[] }[] } } };
    expect(out.ingest.plan.bank_details_changed[0]!.changes).toEqual([{ field: 'account', old: 'XXXXXXX0021', new: 'XXXXXXX9876' }]);
  });
});

describe('access rules in the engine', () => {
  it('a wrong name and a wrong password are refused alike (401), a disabled user too; the policy needs enough checkers', async () => {
    const db = await freshDb('pglite');
    try {
      const admin = { name: 'cli', from: 'cli' };
      await addUser(db.knex, admin, { name: 'root1', role: 'admin', password: 'root-secret-1' });
      const root = { name: 'root1', from: 'cli', user: await authenticate(db.knex, 'root1', 'root-secret-1') };
      const e1 = await authenticate(db.knex, 'nobody', 'x').catch((e: unknown) => e);
      const e2 = await authenticate(db.knex, 'root1', 'wrong-secret').catch((e: unknown) => e);
      expect(e1).toBeInstanceOf(AccessError);
      expect((e1 as AccessError).status).toBe(401);
      expect((e1 as Error).message.replace('nobody', 'X')).toBe((e2 as Error).message.replace('root1', 'X'));
      const { setPolicy } = await import('../src/engine/access.js');
      await expect(setPolicy(db.knex, root, { enabled: true, checkers: 1 })).rejects.toThrow(/0 enabled checker users exist/);
      await addUser(db.knex, root, { name: 'c1', role: 'checker', password: 'c1-secret-01' });
      await expect(setPolicy(db.knex, root, { enabled: true, checkers: 2 })).rejects.toThrow(/asks for 2 different checkers but 1/);
      await setPolicy(db.knex, root, { enabled: true, checkers: 1 });
      await db.knex('batches').insert({ name: 'b', source_file: 'x', file_sha256: 's', revision: 1, ingest_complete: true, uploaded_by: 'c1' });
      const st = await approvalState(db.knex, (await getBatch(db.knex, 'b'))!, 100n);
      expect(st).toMatchObject({ required: true, met: false, needed: 1 });
      // c1 uploading without --as is recorded as c1@host (the OS login): c1's own approval does not count.
      await db.knex('batches').insert({ name: 'b2', source_file: 'x', file_sha256: 's2', revision: 1, ingest_complete: true, uploaded_by: 'c1@laptop' });
      const c1 = { name: 'c1', from: 'cli', user: await authenticate(db.knex, 'c1', 'c1-secret-01') };
      const { approveBatch } = await import('../src/engine/decisions.js');
      await expect(approveBatch({ db: db.knex }, 'b2', { note: '', by: 'c1', actor: c1 })).rejects.toThrow(/"c1" uploaded batch "b2": another checker must approve it/);
      await db.knex('approvals').insert({ batch: 'b2', revision: 1, file_sha256: 's2', rows: 0, total_paise: '0', decision: 'approved', by_user: 'c1', note: '' });
      expect((await approvalState(db.knex, (await getBatch(db.knex, 'b2'))!, 100n)).met).toBe(false);
    } finally {
      await db.close();
    }
  });

  it('a run pays only the revision its approvals were for: rows of a revision stored while it sends are not claimed by it', async () => {
    const db = await freshDb('pglite');
    try {
      const dir = tmpDir('payouts-approved-rev-');
      mkdirSync(dir, { recursive: true });
      const v1 = payroll(path.join(dir, 'v1.csv'), 3, 1000);
      await ingestFile(db.knex, { batch: 'apb', csvPath: v1, defaultUserId: 'M1' });
      const r1 = (await getBatch(db.knex, 'apb'))!;
      const approved = { revision: r1.revision, sha256: r1.file_sha256 };
      // A corrected copy with one more payee, stored while the approved run is sending.
      const v2 = payroll(path.join(dir, 'v2.csv'), 4, 1000);
      const rev = await ingestFile(db.knex, { batch: 'apb', csvPath: v2, defaultUserId: 'M1', revise: true });
      expect(rev.kind).toBe('revised');
      const r2 = (await getBatch(db.knex, 'apb'))!;
      expect(r2.revision).toBe(2);
      expect(await claimReady(db.knex, 'apb', 'approved-run', 5000, 10, approved)).toEqual([]);
      const mine = await claimReady(db.knex, 'apb', 'its-own-run', 5000, 10, { revision: r2.revision, sha256: r2.file_sha256 });
      expect(mine.map((r) => r.name).sort()).toEqual(['Payee 0', 'Payee 1', 'Payee 2', 'Payee 3']);
    } finally {
      await db.close();
    }
  });
});
