/**
 * New PGlite databases start from the template `npm run build` makes (issue 20 point 10): used for a new data
 * directory (fully migrated, a batch runs), never for an existing one, and skipped (initdb, no error) when it is
 * missing, damaged or does not fit this PGlite. The marker that a database came from the template is its
 * system identifier: initdb draws a new one per cluster, the template's is in its manifest.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { Knex } from 'knex';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../src/db/connect.js';
import { migrationSource } from '../src/db/migrations.js';
import { checkTar, defaultTemplateDir, readTemplate, type TemplateManifest } from '../src/db/template.js';
import { insertBatch } from '../src/db/batches.js';
import { BusyError } from '../src/errors.js';
import { PROCESS_TAG } from '../src/proc.js';
import { runCli } from './helpers/cli.js';
import { tmpDir } from './helpers/env.js';
import { procStartTime } from './helpers/proc.js';

const TEMPLATE = defaultTemplateDir()!;
let manifest: TemplateManifest;
let tar: Buffer;

beforeAll(() => {
  // test/global-setup.ts runs the build's template step; without a template every case here would pass vacuously.
  manifest = JSON.parse(readFileSync(path.join(TEMPLATE, 'manifest.json'), 'utf8')) as TemplateManifest;
  tar = gunzipSync(readFileSync(path.join(TEMPLATE, 'pgdata.tar.gz')));
});

const open: Db[] = [];
const procs: ChildProcess[] = [];
afterEach(async () => {
  for (const db of open.splice(0)) await db.close().catch(() => {});
  for (const p of procs.splice(0)) p.kill('SIGKILL');
});

async function openAt(dataDir: string, templateDir?: string): Promise<Db> {
  const db = await openDb(templateDir === undefined ? { dataDir } : { dataDir, templateDir });
  open.push(db);
  return db;
}

async function systemIdentifier(knex: Knex): Promise<string> {
  return (await knex.raw<{ rows: { id: string }[] }>('SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0]!.id;
}

/** Every migration this program has is recorded as applied. */
async function expectFullyMigrated(knex: Knex): Promise<void> {
  const applied = await knex('knex_migrations').orderBy('name').pluck('name');
  expect(applied).toEqual(await migrationSource.getMigrations([]));
}

/** A copy of the template with its tar changed by `edit`, its manifest made to match (so only the content is wrong). */
function editedTemplate(edit: (tar: Buffer, m: TemplateManifest) => Buffer | void, over: Partial<TemplateManifest> = {}): string {
  const dir = tmpDir('payouts-template-');
  const t = Buffer.from(tar);
  const changed = edit(t, { ...manifest }) ?? t;
  const gz = gzipSync(changed);
  writeFileSync(path.join(dir, 'pgdata.tar.gz'), gz);
  const m = { ...manifest, sha256: createHash('sha256').update(gz).digest('hex'), bytes: gz.length, tarBytes: changed.length, ...over };
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(m));
  return dir;
}

/** The offset of a regular file's data in the tar. */
function fileData(t: Buffer, name: string): number {
  for (let off = 0; off + 512 <= t.length; ) {
    const n = t.toString('latin1', off, off + 100).replace(/\0.*$/s, '').replace(/^\//, '');
    const size = parseInt(t.toString('latin1', off + 124, off + 136).replace(/\0.*$/s, '').trim() || '0', 8);
    if (n === name) return off + 512;
    off += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error(`${name} not in the tar`);
}

describe('a new data directory from the template', { timeout: 240_000 }, () => {
  it('the build made a template for this PGlite: an intact gzip of a tar PGlite can load', async () => {
    const r = await readTemplate(TEMPLATE);
    expect(r.ok, r.ok ? '' : r.reason).toBe(true);
    expect(checkTar(tar)).toBeUndefined();
    expect(manifest.systemIdentifier).toMatch(/^\d+$/);
  });

  it('payouts demo on a new data directory: made from the template, fully migrated, the batch paid; reopened, kept as it is', async () => {
    const data = path.join(tmpDir('payouts-tpl-demo-'), 'data');
    const reports = tmpDir('payouts-tpl-reports-');
    const r = await runCli(['demo', '--data-dir', data, '--report-dir', reports], { timeoutMs: 200_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/finished: 43 paid, 7 not paid/);
    expect(r.stdout + r.stderr).not.toMatch(/not from the prebuilt template/);
    expect(readdirSync(data).sort()).toEqual(['pgdata', 'progress']); // no staging directory, the lock released

    const db = await openAt(data);
    expect(db.origin).toBe('existing');
    expect(await systemIdentifier(db.knex)).toBe(manifest.systemIdentifier);
    await expectFullyMigrated(db.knex);
    const [batch] = await db.knex('batches').pluck('name');
    const paid = await db.knex('payout_rows').where({ batch, state: 'approved' }).count<{ n: string }[]>({ n: '*' });
    expect(Number(paid[0]!.n)).toBe(43);
  });

  it('openDb: origin "template", migrated, usable; an existing database is never replaced, even an unmigrated one', async () => {
    const root = path.join(tmpDir('payouts-tpl-'), 'data');
    const db = await openAt(root);
    expect(db.origin).toBe('template');
    expect(db.templateSkipped).toBeUndefined();
    expect(await systemIdentifier(db.knex)).toBe(manifest.systemIdentifier);
    await expectFullyMigrated(db.knex);
    await insertBatch(db.knex, { name: 'kept', sourceFile: 'x.csv', sha256: 'h-kept', defaultUserId: null });
    await db.close();
    open.pop();

    const again = await openAt(root);
    expect(again.origin).toBe('existing');
    expect(await again.knex('batches').pluck('name')).toEqual(['kept']);
  });

  it('an empty pgdata (an earlier version stopped before its initdb) and a staging directory a killed process left are replaced by the template', async () => {
    const root = tmpDir('payouts-tpl-empty-');
    mkdirSync(path.join(root, 'pgdata'));
    mkdirSync(path.join(root, 'pgdata.template-load', 'base'), { recursive: true });
    writeFileSync(path.join(root, 'pgdata.template-load', 'PG_VERSION'), '18\n');
    const db = await openAt(root);
    expect(db.origin).toBe('template');
    expect(await systemIdentifier(db.knex)).toBe(manifest.systemIdentifier);
    expect(existsSync(path.join(root, 'pgdata.template-load'))).toBe(false);
  });

  it('nothing is created in a new directory another process has locked: the template is loaded only under the lock', async () => {
    const root = tmpDir('payouts-tpl-locked-');
    const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
    procs.push(sleeper);
    await new Promise((r) => sleeper.once('spawn', r));
    writeFileSync(path.join(root, 'lock'), `${PROCESS_TAG}:${sleeper.pid}:${procStartTime(sleeper.pid!)}\n`);
    await expect(openDb({ dataDir: root })).rejects.toBeInstanceOf(BusyError);
    expect(readdirSync(root)).toEqual(['lock']);
  });

  it(':memory: (the tests\' databases) starts from the template too', async () => {
    const db = await openDb({ dataDir: ':memory:' });
    open.push(db);
    expect(db.origin).toBe('template');
    expect(await systemIdentifier(db.knex)).toBe(manifest.systemIdentifier);
    await expectFullyMigrated(db.knex);
  });
});

describe('without a usable template: initdb, as before, and no error', { timeout: 300_000 }, () => {
  it('readTemplate says what is wrong with each kind of damage, and never throws', async () => {
    expect(await readTemplate(path.join(tmpDir(), 'none'))).toMatchObject({ ok: false, absent: true });
    // Damaged bytes: the checksum the build wrote.
    const flipped = tmpDir('payouts-template-');
    cpSync(TEMPLATE, flipped, { recursive: true });
    const gz = readFileSync(path.join(flipped, 'pgdata.tar.gz'));
    gz[gz.length >> 1] ^= 0xff;
    writeFileSync(path.join(flipped, 'pgdata.tar.gz'), gz);
    expect(await readTemplate(flipped)).toMatchObject({ ok: false, absent: false, reason: expect.stringMatching(/damaged/) });
    // Cut short, with a manifest to match: not a whole gzip.
    const cut = tmpDir('payouts-template-');
    const half = readFileSync(path.join(TEMPLATE, 'pgdata.tar.gz')).subarray(0, 100_000);
    writeFileSync(path.join(cut, 'pgdata.tar.gz'), half);
    writeFileSync(path.join(cut, 'manifest.json'), JSON.stringify({ ...manifest, sha256: createHash('sha256').update(half).digest('hex'), bytes: half.length }));
    expect(await readTemplate(cut)).toMatchObject({ ok: false, reason: expect.stringMatching(/not a whole gzip/) });
    // Made by another PGlite, or in another format.
    expect(await readTemplate(editedTemplate(() => {}, { pglite: '0.0.1' }))).toMatchObject({ ok: false, reason: expect.stringMatching(/made by PGlite 0\.0\.1, this is PGlite \d/) });
    expect(await readTemplate(editedTemplate(() => {}, { format: 99 }))).toMatchObject({ ok: false, reason: expect.stringMatching(/format 99/) });
    // A manifest that is not JSON.
    const badManifest = tmpDir('payouts-template-');
    cpSync(TEMPLATE, badManifest, { recursive: true });
    writeFileSync(path.join(badManifest, 'manifest.json'), '{');
    expect(await readTemplate(badManifest)).toMatchObject({ ok: false, absent: false, reason: expect.stringMatching(/unreadable/) });
    // A tar PGlite's loader would fail on (which would end the process: see checkTar).
    expect(await readTemplate(editedTemplate((t) => void (t[148] ^= 1)))).toMatchObject({ ok: false, reason: expect.stringMatching(/checksum/) });
    expect(await readTemplate(editedTemplate((t) => t.subarray(0, t.length >> 1)))).toMatchObject({ ok: false, reason: expect.stringMatching(/cut short|ends inside/) });
    expect(await readTemplate(editedTemplate(() => Buffer.alloc(4096, 7)))).toMatchObject({ ok: false, reason: expect.stringMatching(/not a tar header/) });
  });

  it('no template: initdb, a working database, no complaint', async () => {
    const root = tmpDir('payouts-tpl-none-');
    const db = await openAt(root, path.join(root, 'no-template-here'));
    expect(db.origin).toBe('initdb');
    expect(db.templateSkipped).toMatchObject({ absent: true });
    expect(await systemIdentifier(db.knex)).not.toBe(manifest.systemIdentifier);
    await expectFullyMigrated(db.knex);
    await insertBatch(db.knex, { name: 'b', sourceFile: 'x.csv', sha256: 'h-none', defaultUserId: null });
  });

  it('a damaged template: initdb, and the reason is kept for the warning', async () => {
    const root = tmpDir('payouts-tpl-damaged-');
    const dir = tmpDir('payouts-template-');
    cpSync(TEMPLATE, dir, { recursive: true });
    const gz = readFileSync(path.join(dir, 'pgdata.tar.gz'));
    gz[1000] ^= 0xff;
    writeFileSync(path.join(dir, 'pgdata.tar.gz'), gz);
    const db = await openAt(root, dir);
    expect(db.origin).toBe('initdb');
    expect(db.templateSkipped).toMatchObject({ absent: false, reason: expect.stringMatching(/damaged/) });
    await expectFullyMigrated(db.knex);
  });

  it('a template this PGlite cannot start on (another PostgreSQL version inside): initdb, nothing of the attempt left', async () => {
    const root = tmpDir('payouts-tpl-mismatch-');
    const dir = editedTemplate((t) => void t.write('17', fileData(t, 'PG_VERSION'), 'latin1'));
    const db = await openAt(root, dir);
    expect(db.origin).toBe('initdb');
    expect(db.templateSkipped).toMatchObject({ absent: false, reason: expect.stringMatching(/could not start/) });
    expect(readFileSync(path.join(root, 'pgdata', 'PG_VERSION'), 'utf8')).not.toMatch(/^17/);
    expect(existsSync(path.join(root, 'pgdata.template-load'))).toBe(false);
    await expectFullyMigrated(db.knex);
  });

  it('the command says so when the template is unusable, and carries on', async () => {
    const { announceDb } = await import('../src/commands/context.js');
    const lines: string[] = [];
    const io = { config: { db: { dataDirFrom: 'flag', dataDir: '/x', defaultDataDir: '/nonexistent-default' } }, cwd: '/', out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
    announceDb(io as never, { where: 'PGlite at /x/pgdata', kind: 'pglite', templateSkipped: { absent: false, reason: 'it was made by PGlite 0.0.1, this is PGlite 0.5.16' } });
    expect(lines.join('\n')).toMatch(/made by initdb, not from the prebuilt template: it was made by PGlite 0\.0\.1.*npm run build/);
    lines.length = 0;
    announceDb(io as never, { where: 'PGlite at /x/pgdata', kind: 'pglite', templateSkipped: { absent: true, reason: 'no template' } });
    expect(lines).toEqual(['Database: PGlite at /x/pgdata']);
  });
});
