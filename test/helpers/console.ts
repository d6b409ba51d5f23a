import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { addUser, setPolicy, type Actor } from '../../src/engine/access.js';
import { getUser } from '../../src/db/access.js';
import { buildConsole, SESSION_COOKIE, type Console, type ConsoleOptions } from '../../src/console/server.js';
import type { Sandbox } from '../../src/sandbox/server.js';
import { freshDb, type TestDb } from './db.js';
import { clientFor, quietLogger, sandbox, tmpDir } from './env.js';

/** The console of the tests: the real server on port 0, over PGlite and the sandbox, with users and a policy. */
export interface ConsoleWorld {
  sb: Sandbox;
  db: TestDb;
  console: Console;
  url: string;
  dir: string;
  close(): Promise<void>;
}

export const PASSWORDS: Record<string, string> = {
  ravi: 'ravi-secret-1',
  maya: 'maya-secret-1',
  asha: 'asha-secret-1',
  bala: 'bala-secret-1',
  cara: 'cara-secret-1',
  vik: 'vik-secret-01',
  dan: 'dan-secret-01',
};

/** ravi admin; maya maker; asha, bala, cara, dan checkers; vik viewer. Policy: 1 checker, a second above ₹2,000. */
export async function consoleWorld(over: Partial<ConsoleOptions> = {}, sbOpts: { settleMs?: number } = {}): Promise<ConsoleWorld> {
  const sb = await sandbox({ settleMs: sbOpts.settleMs ?? 20 });
  const db = await freshDb('pglite');
  const dir = tmpDir('payouts-console-');
  const first: Actor = { name: 'setup', from: 'test' };
  await addUser(db.knex, first, { name: 'ravi', role: 'admin', password: PASSWORDS['ravi']! });
  const admin: Actor = { name: 'ravi', user: (await getUser(db.knex, 'ravi'))!, from: 'test' };
  for (const [name, role] of [
    ['maya', 'maker'],
    ['asha', 'checker'],
    ['bala', 'checker'],
    ['cara', 'checker'],
    ['dan', 'checker'],
    ['vik', 'viewer'],
  ] as const) {
    await addUser(db.knex, admin, { name, role, password: PASSWORDS[name]! });
  }
  await setPolicy(db.knex, admin, { enabled: true, checkers: 1, secondAbovePaise: 2000_00n });
  const client = clientFor(sb);
  const c = await buildConsole({
    db: db.knex,
    client,
    logger: quietLogger,
    reportDir: path.join(dir, 'reports'),
    uploadDir: path.join(dir, 'uploads'),
    defaultUserId: 'M1',
    eventsEveryMs: 200,
    run: {
      pollTimeoutMs: 10_000,
      engine: { rate: 200, concurrency: 2, pollIntervalMs: 50, pollMaxIntervalMs: 100, requestTimeoutMs: 2000, leaseMs: 5000, ambiguousGraceMs: 200, retry: { retries: 2, baseMs: 5, maxMs: 20 } },
    },
    ...over,
  });
  await c.app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(c.app.server.address() as AddressInfo).port}`;
  return {
    sb,
    db,
    console: c,
    url,
    dir,
    async close() {
      await c.close();
      await client.close();
      await db.close();
      await sb.close();
    },
  };
}

const HEADER = 'employee id,beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount';

/** A payroll of `people` valid rows (₹base, base+10, …) and `invalid` rows with a bad IFSC. */
export function payrollCsv(people: number, o: { base?: number; invalid?: number; accountOf?: (i: number) => string; tag?: string } = {}): string {
  const base = o.base ?? 1000;
  const acc = o.accountOf ?? ((i: number) => `${7600000000 + i}1`);
  const lines = [HEADER];
  for (let i = 0; i < people; i++) lines.push(`E${i + 1},Payee ${o.tag ?? ''}${i},p${i}@example.com,98765${String(40000 + i)},"${i} MG Road",IMPS,${acc(i)},SBI,SBIN0000691,${base + i * 10}`);
  for (let i = 0; i < (o.invalid ?? 0); i++) lines.push(`X${i + 1},Broken ${i},b${i}@example.com,98766${String(40000 + i)},"${i} Ring Road",IMPS,${8800000000 + i}2,SBI,SBIN00006,${500 + i}`);
  return lines.join('\n') + '\n';
}

export function writePayroll(dir: string, name: string, csv: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, csv);
  return file;
}

/** A script's view of the console: the cookie it was given, and the CSRF token. */
export class ApiClient {
  cookie: string | undefined;
  csrf: string | undefined;
  setCookie: string | undefined;
  constructor(readonly base: string) {}

  async login(username: string, password = PASSWORDS[username] ?? ''): Promise<Response> {
    const r = await fetch(`${this.base}/api/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
    this.setCookie = r.headers.get('set-cookie') ?? undefined;
    const m = this.setCookie ? new RegExp(`${SESSION_COOKIE}=([^;]+)`).exec(this.setCookie) : null;
    if (r.ok && m) {
      this.cookie = `${SESSION_COOKIE}=${m[1]}`;
      this.csrf = ((await r.clone().json()) as { csrf_token: string }).csrf_token;
    }
    return r;
  }

  /** A request with the session's cookie; its CSRF token too unless `csrf` says otherwise (false: none; a string: that one). */
  async req(method: string, p: string, o: { json?: unknown; form?: FormData; csrf?: false | string; accept?: string } = {}): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.cookie) headers['cookie'] = this.cookie;
    if (o.accept) headers['accept'] = o.accept;
    const token = o.csrf === undefined ? this.csrf : o.csrf;
    if (token && method !== 'GET') headers['x-csrf-token'] = token;
    let body: string | FormData | undefined;
    if (o.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(o.json);
    } else if (o.form) body = o.form;
    return fetch(`${this.base}${p}`, { method, headers, body, redirect: 'manual' });
  }

  upload(csv: string, fileName: string, fields: Record<string, string> = {}, o: { csrf?: false | string } = {}): Promise<Response> {
    const fd = new FormData();
    for (const [k, v] of Object.entries(fields)) fd.append(k, v);
    fd.append('file', new Blob([csv], { type: 'text/csv' }), fileName);
    return this.req('POST', '/api/batches', { form: fd, ...o });
  }
}
