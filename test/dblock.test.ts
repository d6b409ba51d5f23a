/**
 * The embedded database's lock (issue 8 item 5) and the errors a person gets when a database cannot be
 * had (BusyError, exit 5; DatabaseError, exit 2). The holder is the built command in a real process: killed
 * with SIGKILL under a parent that never reaps it (a real zombie), or a live process given the recorded pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { hostname } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openDb } from '../src/db/connect.js';
import { BusyError, DatabaseError, EXIT } from '../src/errors.js';
import { PROCESS_TAG } from '../src/proc.js';
import { MAIN, ROOT, runCli } from './helpers/cli.js';
import { KEYS, tmpDir } from './helpers/env.js';
import { killToZombie, procStartTime, procState, unreapingParent, waitFor } from './helpers/proc.js';

const procs: ChildProcess[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill('SIGKILL');
});

function sleeper(): Promise<number> {
  const c = spawn('sleep', ['600'], { stdio: 'ignore' });
  procs.push(c);
  return new Promise((resolve) => c.once('spawn', () => resolve(c.pid!)));
}

// Each case starts the built command a few times; generous timeouts for a loaded 2-core machine.
describe('the data directory lock', { timeout: 240_000 }, () => {
  let dir: string;
  // An API that accepts connections and never answers: a run holds the lock while it waits on the balance.
  let silent: Server;
  const sockets: Socket[] = [];
  let apiUrl: string;
  // One database made once and copied for each test: PGlite's first open (initdb) takes seconds.
  let template: string;
  function dataDir(name: string): string {
    const d = path.join(dir, name);
    cpSync(path.join(template, 'pgdata'), path.join(d, 'pgdata'), { recursive: true });
    return d;
  }
  // A fresh PGlite directory runs initdb: tens of seconds on a loaded 2-core machine.
  beforeAll(async () => {
    dir = tmpDir('payouts-lock-');
    silent = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    apiUrl = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
    template = path.join(dir, 'template');
    await (await openDb({ dataDir: template })).close();
  }, 300_000);
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    if (silent) await new Promise((r) => silent.close(r));
  });

  it('a runner killed with kill -9 and never reaped (a zombie) does not block the next run', async () => {
    const data = dataDir('zombie');
    const lock = path.join(data, 'lock');
    const env = { ALLIANCE_BASE_URL: apiUrl, ALLIANCE_ACCESS_KEY: KEYS.accessKey, ALLIANCE_SECRET_KEY: KEYS.secretKey };
    const { parent, childPid } = await unreapingParent(
      // Waits on the silent API for its balance: a lease longer than that timeout, or the run refuses its settings
      // at once (and, with a fast first open from the template, let go of the lock before the second process looked).
      [process.execPath, MAIN, 'run', path.join(ROOT, 'samples/payroll.csv'), '--yes', '--user-id', 'u', '--data-dir', data, '--timeout', '600s', '--lease', '1300s'],
      env,
    );
    procs.push(parent);
    await waitFor('the runner to take the lock', () => existsSync(lock) && readFileSync(lock, 'utf8').startsWith(`${PROCESS_TAG}:${childPid}:`), 150_000);
    expect(readFileSync(lock, 'utf8').split('\n')[0]).toBe(`${PROCESS_TAG}:${childPid}:${procStartTime(childPid)}`);

    // While it runs, a second process is refused, and told who holds the directory and what to do.
    const refused = await runCli(['status', '--data-dir', data]);
    expect(refused.code, refused.stderr).toBe(EXIT.busy);
    expect(refused.stderr).toContain(`in use by process ${childPid} on this machine`);
    expect(refused.stderr).toMatch(/Wait for that process to finish/);
    expect(refused.stderr).toMatch(/DATABASE_URL/);

    await killToZombie(childPid);
    expect(procState(childPid)).toBe('Z');
    const after = await runCli(['status', '--data-dir', data]);
    expect(after.code, after.stderr).toBe(0);
    expect(procState(childPid)).toBe('Z'); // still a zombie: the lock was taken over, not freed by a reaper
    expect(existsSync(lock)).toBe(false); // and released again by the second run
  });

  it('a lock naming a live process with another start time (a reused pid) is taken over', async () => {
    const data = dataDir('reused');
    const lock = path.join(data, 'lock');
    const pid = await sleeper();
    const start = procStartTime(pid);

    writeFileSync(lock, `${PROCESS_TAG}:${pid}:${start}\nsince 2026-01-01T00:00:00.000Z\n`);
    const held = await runCli(['status', '--data-dir', data]);
    expect(held.code, held.stderr).toBe(EXIT.busy);
    // The lock file records UTC; people read India time (issue 20 point 6).
    expect(held.stderr).toContain(`in use by process ${pid} on this machine since 2026-01-01 05:30:00 +05:30`);

    writeFileSync(lock, `${PROCESS_TAG}:${pid}:${Number(start) + 1}\n`);
    const taken = await runCli(['status', '--data-dir', data]);
    expect(taken.code, taken.stderr).toBe(0);
    expect(taken.stdout).toMatch(/No batches yet/);
  });

  it('reads the older "host:pid" lock: a live pid refuses, a dead one is taken over', async () => {
    const data = dataDir('old-format');
    const lock = path.join(data, 'lock');
    const pid = await sleeper();
    writeFileSync(lock, `${hostname()}:${pid}`);
    const held = await runCli(['status', '--data-dir', data]);
    expect(held.code, held.stderr).toBe(EXIT.busy);
    expect(held.stderr).toContain(`in use by process ${pid}`);
    procs.pop()!.kill('SIGKILL');
    await waitFor('the sleeper to exit', () => procState(pid) === undefined);
    const taken = await runCli(['status', '--data-dir', data]);
    expect(taken.code, taken.stderr).toBe(0);
  });

  it('never takes over a lock it cannot judge (another host, container or pid namespace) and says how to clear it', async () => {
    const data = dataDir('foreign');
    const lock = path.join(data, 'lock');
    writeFileSync(lock, `payroll-vm~0badc0de~4026531836:1:100\n`);
    const res = await runCli(['status', '--data-dir', data]);
    expect(res.code, res.stderr).toBe(EXIT.busy);
    expect(res.stderr).toContain('locked by process 1 of payroll-vm');
    expect(res.stderr).toContain(`delete ${lock}`);
    writeFileSync(lock, 'not a lock');
    const bad = await runCli(['status', '--data-dir', data]);
    expect(bad.code, bad.stderr).toBe(EXIT.busy);
    expect(bad.stderr).toContain(`names no process`);
  });

  it('of several processes that find the same stale lock at once, exactly one takes it', async () => {
    const lockModule = path.join(ROOT, 'dist/src/db/dataDirLock.js');
    for (let round = 0; round < 3; round++) {
      const data = path.join(dir, `race-${round}`);
      mkdirSync(data, { recursive: true });
      // A stale lock: a process of this namespace that has exited.
      const pid = await sleeper();
      const start = procStartTime(pid);
      procs.pop()!.kill('SIGKILL');
      await waitFor('the sleeper to exit', () => procState(pid) === undefined);
      writeFileSync(path.join(data, 'lock'), `${PROCESS_TAG}:${pid}:${start}\n`);
      // Each contender waits for a shared start signal (a file), tries once, and holds what it got for a while.
      const go = path.join(data, 'go');
      const script = `
        const { lockDataDir } = await import(${JSON.stringify(lockModule)});
        const fs = await import('node:fs');
        fs.writeFileSync(${JSON.stringify(data)} + '/ready-' + process.pid, '');
        while (!fs.existsSync(${JSON.stringify(go)})) await new Promise((r) => setTimeout(r, 2));
        try { await lockDataDir(${JSON.stringify(data)}); console.log('got'); await new Promise((r) => setTimeout(r, 3000)); }
        catch (e) { console.log(e.name === 'BusyError' ? 'busy' : 'error ' + e.message); }`;
      const results = Array.from({ length: 6 }, () => {
        const c = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        return new Promise<string>((resolve) => c.on('close', () => resolve(out.trim())));
      });
      await waitFor('every contender to be ready', () => readdirSync(data).filter((f) => f.startsWith('ready-')).length === 6, 120_000);
      writeFileSync(go, '');
      const outcomes = (await Promise.all(results)).sort();
      expect(outcomes, `round ${round}`).toEqual(['busy', 'busy', 'busy', 'busy', 'busy', 'got']);
    }
  });

  it('one process cannot open a data directory twice; closing releases it', async () => {
    const data = dataDir('twice');
    const a = await openDb({ dataDir: data });
    try {
      const err = await openDb({ dataDir: data }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(BusyError);
      expect((err as BusyError).exitCode).toBe(EXIT.busy);
      expect((err as Error).message).toMatch(/already open in this process/);
    } finally {
      await a.close();
    }
    const b = await openDb({ dataDir: data });
    expect((await b.knex.raw('select 1 as one')).rows[0].one).toBe(1);
    await b.close();
  });
});

describe('a database that cannot be opened', { timeout: 120_000 }, () => {
  it('a data directory that cannot be created is a DatabaseError naming it, exit 2', async () => {
    const dir = tmpDir('payouts-baddir-');
    const file = path.join(dir, 'file');
    writeFileSync(file, 'x');
    const res = await runCli(['status', '--data-dir', file]);
    expect(res.code, res.stderr).toBe(EXIT.usage);
    expect(res.stderr).toContain(`cannot create the data directory ${path.join(file, 'pgdata')}`);
    expect(res.stderr).not.toMatch(/Acquire connection|at .*\.js:\d+/);
  });

  it('a damaged embedded database is a DatabaseError that says what to do, never a raw knex error', async () => {
    const dir = tmpDir('payouts-damaged-');
    mkdirSync(path.join(dir, 'pgdata'), { recursive: true });
    writeFileSync(path.join(dir, 'pgdata', 'PG_VERSION'), '9\n');
    const err = await openDb({ dataDir: dir }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DatabaseError);
    expect((err as Error).message).toContain(`cannot open the embedded database PGlite at ${path.join(dir, 'pgdata')}`);
    expect((err as Error).message).toMatch(/move it away/);
    expect(existsSync(path.join(dir, 'lock'))).toBe(false); // released on failure
  });

  it('an unreachable PostgreSQL is a DatabaseError with the masked URL and what to check, exit 2', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r)); // nothing listens there now
    const res = await runCli(['status'], { env: { DATABASE_URL: `postgres://payroll:s3cret@127.0.0.1:${port}/payroll` } });
    expect(res.code, res.stderr).toBe(EXIT.usage);
    expect(res.stderr).toContain(`cannot connect to PostgreSQL at postgres://payroll:****@127.0.0.1:${port}/payroll`);
    expect(res.stderr).toMatch(/connection refused.*is the server running/);
    expect(res.stderr).not.toContain('s3cret');
  });
});
