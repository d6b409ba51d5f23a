import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import cookie from '@fastify/cookie';
import csrf from '@fastify/csrf-protection';
import formbody from '@fastify/formbody';
import helmet from '@fastify/helmet';
import multipart, { type MultipartFile } from '@fastify/multipart';
import rateLimit from '@fastify/rate-limit';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { AllianceClient } from '../alliance/client.js';
import { defaultBatchName } from '../batch/name.js';
import { jsonStyle } from '../cli/jsonStyle.js';
import { auditOf, getUser } from '../db/access.js';
import { getBatch } from '../db/batches.js';
import { addUser, audit, authenticate, disable, policy, requireRole, setPolicy, users, type Actor } from '../engine/access.js';
import { AccessError, BatchNotFoundError, BusyError, InputError, ProgramError, RefusedError, UsageError } from '../errors.js';
import { parseRupeeInput } from '../config.js';
import { formatRupeesIndian } from '../money.js';
import { REPORT_FORMATS, writeReport, type ReportFormat } from '../report/report.js';
import { DEFAULT_TIME_ZONE } from '../report/time.js';
import { approve, detail, listOverview, operate, overview, reject, upload, type ConsoleContext } from './actions.js';
import { batchPage, batchesPage, errorPage, loginPage, usersPage, type PageCommon } from './pages.js';
import { Runs, type RunSettings } from './runs.js';
import { SessionStore, type Session, type SessionOptions } from './sessions.js';

/** The console's cookie: the key of a server-side session, nothing else. */
export const SESSION_COOKIE = 'payouts_session';

export interface ConsoleOptions {
  db: Knex;
  client: AllianceClient;
  logger: Logger;
  /** Where the reports are written (and served from). */
  reportDir: string;
  /** Where uploaded files are kept (each batch's source file). */
  uploadDir: string;
  /** Time zone of times shown and in reports. Default Asia/Kolkata. */
  timeZone?: string | undefined;
  defaultUserId?: string | undefined;
  repeatWindowDays?: number | undefined;
  /**
   * Mark the session cookie Secure. Default true: browsers keep a Secure cookie on https, and Chromium and
   * Firefox also on http://127.0.0.1 and http://localhost (a secure context); a console reached over plain
   * http on another address needs --insecure-cookie (better: put it behind https).
   */
  secureCookie?: boolean | undefined;
  /** Logins allowed per client address per window. Default 10 per minute. */
  loginRateLimit?: { max: number; timeWindowMs: number } | undefined;
  sessions?: SessionOptions | undefined;
  /** How batches are run (engine knobs, poll timeout). */
  run?: Omit<RunSettings, 'reportDir' | 'reportTimeZone'> | undefined;
  /**
   * Start a batch in this process once its approvals meet the policy. Default true: on the embedded database
   * the console is the only process that can run it. On PostgreSQL, false leaves it to any runner
   * (`payouts resume`, a scheduled run).
   */
  startOnApproval?: boolean | undefined;
  /** Largest upload accepted. Default 50 MiB. */
  maxUploadBytes?: number | undefined;
  /** How often the live page's counts are read from the database. Default 1000 ms. */
  eventsEveryMs?: number | undefined;
}

export interface Console {
  app: FastifyInstance;
  runs: Runs;
  sessions: SessionStore;
  /** Stops the runs gracefully (as Ctrl-C: in-flight payouts finish, reports are written), then the server. */
  close(): Promise<void>;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The session's record (also what @fastify/csrf-protection keeps its secret in). */
    session: Session | null;
    actor: Actor | null;
    /** A file saved by this request's upload: removed if the request fails. */
    uploaded: string | null;
  }
}

const PUBLIC = new Set(['GET /login', 'POST /login', 'POST /api/session']);
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** A browser navigating (a form, a link) wants a page back; a script wants JSON. */
function wantsPage(req: FastifyRequest): boolean {
  return !req.url.startsWith('/api/') || (req.headers.accept ?? '').includes('text/html');
}

/** HTTP status of an error: the engine's errors by kind, fastify's and plugins' by their statusCode. */
export function statusOf(err: unknown): number {
  if (err instanceof AccessError) return err.status;
  if (err instanceof BatchNotFoundError) return 404;
  if (err instanceof BusyError || err instanceof RefusedError) return 409;
  if (err instanceof InputError || err instanceof UsageError || err instanceof ProgramError) return 400;
  const code = (err as { statusCode?: unknown }).statusCode;
  return typeof code === 'number' && code >= 400 && code < 600 ? code : 500;
}

function field(body: unknown, name: string): string | undefined {
  const v = (body as Record<string, unknown> | undefined)?.[name];
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  const value = (v as { value?: unknown } | undefined)?.value;
  return typeof value === 'string' ? value : undefined;
}

function revisionOf(body: unknown): number | undefined {
  const r = field(body, 'revision');
  if (r === undefined || r === '') return undefined;
  if (!/^\d+$/.test(r)) throw new UsageError(`revision must be a number; got "${r}"`);
  return Number(r);
}

/** The page a form came from, to go back to with a message. */
function backOf(url: string): string {
  const m = /^\/api\/batches\/([^/?]+)/.exec(url);
  if (m) return `/batches/${m[1]}`;
  if (url.startsWith('/api/users') || url.startsWith('/api/policy')) return '/users';
  return '/batches';
}

/**
 * The console's web server, built from the engine's dependencies: tests start it in-process on port 0.
 * Routes are thin: parse, call src/console/actions.ts (the engine), answer JSON or a page.
 */
export async function buildConsole(o: ConsoleOptions): Promise<Console> {
  const timeZone = o.timeZone ?? DEFAULT_TIME_ZONE;
  const runs = new Runs({ db: o.db, client: o.client, logger: o.logger }, { ...o.run, reportDir: o.reportDir, reportTimeZone: timeZone });
  const ctx: ConsoleContext = {
    db: o.db,
    client: o.client,
    logger: o.logger,
    runs,
    timeZone,
    defaultUserId: o.defaultUserId,
    repeatWindowDays: o.repeatWindowDays,
    startOnApproval: o.startOnApproval ?? true,
    balanceCache: {},
  };
  const sessions = new SessionStore(o.sessions);
  const secure = o.secureCookie ?? true;
  const limit = o.loginRateLimit ?? { max: 10, timeWindowMs: 60_000 };
  await mkdir(o.uploadDir, { recursive: true, mode: 0o700 });

  const app = Fastify({ loggerInstance: o.logger as unknown as FastifyBaseLogger, trustProxy: false, bodyLimit: 1024 * 1024 });
  app.decorateRequest('session', null);
  app.decorateRequest('actor', null);
  app.decorateRequest('uploaded', null);

  await app.register(helmet, {
    enableCSPNonces: true,
    // Plain http on 127.0.0.1: no HSTS, no upgrade of requests to https. Nothing from anywhere else.
    hsts: false,
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
      },
    },
  });
  await app.register(cookie);
  await app.register(formbody);
  await app.register(multipart, {
    attachFieldsToBody: true,
    limits: { fileSize: o.maxUploadBytes ?? 50 * 1024 * 1024, files: 1, fields: 10 },
    // The file goes to disk under its own name (the batch's default name and the reports' source file).
    async onFile(this: FastifyRequest, part: MultipartFile) {
      const dir = await mkdtemp(path.join(o.uploadDir, 'upload-'));
      const name = path.basename(part.filename || 'upload.csv').replace(/[^\p{L}\p{N}._ -]+/gu, '_').replace(/^\.+/, '_') || 'upload.csv';
      const dest = path.join(dir, name);
      this.uploaded = dir;
      await pipeline(part.file, createWriteStream(dest, { mode: 0o600 }));
      if (part.file.truncated) throw new InputError(`the file is larger than ${Math.round((o.maxUploadBytes ?? 50 * 1024 * 1024) / 1048576)} MiB: not read`);
      (part as unknown as { value: unknown }).value = { path: dest, filename: part.filename };
    },
  });
  await app.register(rateLimit, { global: false });
  await app.register(csrf, {
    // The secret lives in the server-side session (the plugin's @fastify/session mode reads req.session._csrf).
    sessionPlugin: '@fastify/session',
    getToken: (req: FastifyRequest) => {
      const h = req.headers['x-csrf-token'];
      return (Array.isArray(h) ? h[0] : h) ?? field(req.body, '_csrf') ?? '';
    },
  });

  // Who is asking: every route but the login needs a live session of an enabled user.
  app.addHook('onRequest', async (req, reply) => {
    const route = `${req.method} ${req.routeOptions.url ?? req.url.split('?')[0]}`;
    const s = sessions.get(req.cookies[SESSION_COOKIE]);
    if (s) {
      const u = await getUser(o.db, s.user);
      if (u && !u.disabled_at) {
        req.session = s;
        req.actor = { name: u.name, user: u, from: req.ip };
      } else sessions.delete(s.id);
    }
    if (PUBLIC.has(route) || req.actor) return;
    if (!wantsPage(req)) return reply.code(401).send({ error: { status: 401, message: 'log in first: POST /api/session with {"username","password"}' } });
    // A browser (a link, or a form whose session ended): the login, then back to the page it came from.
    return reply.redirect(`/login?next=${encodeURIComponent(req.method === 'GET' && !req.url.startsWith('/api/') ? req.url : backOf(req.url))}`, 303);
  });
  // Every state-changing request carries the session's CSRF token (X-CSRF-Token, or the forms' hidden field).
  app.addHook('preHandler', (req, reply, done) => {
    const route = `${req.method} ${req.routeOptions.url ?? ''}`;
    if (SAFE_METHODS.has(req.method) || PUBLIC.has(route)) return done();
    app.csrfProtection(req, reply, done);
  });
  app.addHook('onResponse', async (req, reply) => {
    if (req.uploaded && reply.statusCode >= 400) await rm(req.uploaded, { recursive: true, force: true });
  });

  app.setErrorHandler(async (err, req, reply) => {
    const status = statusOf(err);
    const csrfRefused = /^FST_CSRF_/.test(String((err as { code?: unknown }).code ?? ''));
    const message =
      status >= 500
        ? 'the console failed on this request; its log says why'
        : csrfRefused
          ? `refused, nothing changed: the request's CSRF token is missing or not this session's (${(err as Error).message}). On a page: reload it and try again; a script sends the csrf_token of POST /api/session as X-CSRF-Token`
          : (err as Error).message;
    if (status >= 500) req.log.error({ err }, 'console request failed');
    if (req.uploaded) await rm(req.uploaded, { recursive: true, force: true });
    // A refusal of the engine answering a form: back to the page it came from, which says why.
    if (wantsPage(req) && req.method === 'POST' && req.session && err instanceof ProgramError) {
      req.session.flash = { kind: 'error', text: message };
      return reply.redirect(backOf(req.url), 303);
    }
    if (wantsPage(req)) return reply.code(status).type('text/html; charset=utf-8').send(errorPage({ ...common(req, reply), status, message }));
    return reply.code(status).send({ error: { status, message } });
  });
  app.setNotFoundHandler((req, reply) => {
    if (wantsPage(req)) return reply.code(404).type('text/html; charset=utf-8').send(errorPage({ ...common(req, reply), status: 404, message: 'no such page' }));
    return reply.code(404).send({ error: { status: 404, message: `no such API path: ${req.method} ${req.url.split('?')[0]}` } });
  });

  function common(req: FastifyRequest, reply: FastifyReply): PageCommon {
    const flash = req.session?.flash;
    if (req.session) req.session.flash = undefined;
    return { user: req.actor?.user ? { name: req.actor.user.name, role: req.actor.user.role } : null, csrf: req.session?.csrfToken ?? '', nonce: reply.cspNonce, flash };
  }
  function page(req: FastifyRequest, reply: FastifyReply, html: string) {
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(html);
  }
  /** A form gets a redirect with a message; a script gets JSON. */
  function answer(req: FastifyRequest, reply: FastifyReply, a: { status?: number; json: unknown; flash: string; back: string }) {
    if (wantsPage(req)) {
      req.session!.flash = { kind: 'ok', text: a.flash };
      return reply.redirect(a.back, 303);
    }
    return reply.code(a.status ?? 200).send(jsonStyle(a.json));
  }
  function actor(req: FastifyRequest): Actor {
    return req.actor!;
  }
  const loginLimit = { rateLimit: { max: limit.max, timeWindow: limit.timeWindowMs } };

  /** Logs a person in: a session, its cookie, its CSRF token; a failure is audited (who tried, from where). */
  async function login(req: FastifyRequest, reply: FastifyReply, username: string, password: string): Promise<Session> {
    let u;
    try {
      u = await authenticate(o.db, username, password);
    } catch (err) {
      await audit(o.db, { name: username.slice(0, 64) || '(none)', from: req.ip }, 'login.failed');
      throw err;
    }
    const s = sessions.create(u.name);
    req.session = s;
    req.actor = { name: u.name, user: u, from: req.ip };
    s.csrfToken = reply.generateCsrf();
    reply.setCookie(SESSION_COOKIE, s.id, { path: '/', httpOnly: true, sameSite: 'strict', secure, maxAge: Math.floor(sessions.maxAgeMs / 1000) });
    await audit(o.db, req.actor, 'login');
    return s;
  }
  async function logout(req: FastifyRequest, reply: FastifyReply) {
    await audit(o.db, actor(req), 'logout');
    sessions.delete(req.session!.id);
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
  }

  // --- sessions
  app.post('/api/session', { config: loginLimit }, async (req, reply) => {
    const username = field(req.body, 'username') ?? '';
    const password = field(req.body, 'password') ?? '';
    const s = await login(req, reply, username, password);
    return reply.send({ csrf_token: s.csrfToken, user: req.actor!.name, role: req.actor!.user!.role });
  });
  app.get('/api/session', async (req) => ({ user: actor(req).name, role: actor(req).user!.role, csrf_token: req.session!.csrfToken }));
  app.delete('/api/session', async (req, reply) => {
    await logout(req, reply);
    return reply.code(204).send();
  });
  app.get('/login', async (req, reply) => {
    if (req.actor) return reply.redirect('/batches', 303);
    return page(req, reply, loginPage({ ...common(req, reply), next: safeNext((req.query as { next?: string }).next) }));
  });
  app.post('/login', { config: loginLimit }, async (req, reply) => {
    const next = safeNext(field(req.body, 'next'));
    try {
      await login(req, reply, field(req.body, 'username') ?? '', field(req.body, 'password') ?? '');
    } catch (err) {
      if (!(err instanceof AccessError)) throw err;
      return reply.code(err.status).type('text/html; charset=utf-8').send(loginPage({ ...common(req, reply), next, error: err.message }));
    }
    return reply.redirect(next, 303);
  });
  app.post('/logout', async (req, reply) => {
    await logout(req, reply);
    return reply.redirect('/login', 303);
  });

  // --- pages
  app.get('/', async (_req, reply) => reply.redirect('/batches', 303));
  app.get('/batches', async (req, reply) => page(req, reply, batchesPage({ ...common(req, reply), batches: await listOverview(ctx) })));
  app.get('/batches/:batch', async (req, reply) => {
    const { batch } = req.params as { batch: string };
    return page(req, reply, batchPage({ ...common(req, reply), d: await detail(ctx, batch), timeZone }));
  });
  app.get('/users', async (req, reply) => {
    requireRole(actor(req), ['admin'], 'managing users');
    return page(req, reply, usersPage({ ...common(req, reply), users: await users(o.db), policy: await policy(o.db), audit: await auditOf(o.db, undefined, 100), timeZone }));
  });

  // --- batches
  app.get('/api/batches', async () => jsonStyle({ batches: (await listOverview(ctx)).map(overviewJson) }));
  app.get('/api/batches/:batch', async (req) => {
    const { batch } = req.params as { batch: string };
    const d = await detail(ctx, batch);
    return jsonStyle({
      ...overviewJson(d),
      uploaders: d.uploaders,
      approvals: d.approvals.map((a) => ({ revision: a.revision, decision: a.decision, by: a.by_user, from: a.from_where, at: a.created_at, note: a.note, file_sha256: a.file_sha256, rows: a.rows, total_paise: a.total_paise })),
      invalid_rows: d.invalid.map((r) => ({ row: r.row, name: r.beneficiary_name, account: r.account, amount: r.amount, reason: r.reason })),
      plan: d.plan,
      repeats: d.repeats,
      balance: d.balance,
      last_run: d.lastRun,
      api_trouble: d.trouble ?? null,
    });
  });
  app.post('/api/batches', async (req, reply) => {
    const f = (req.body as Record<string, { value?: unknown }> | undefined)?.['file']?.value as { path: string; filename: string } | undefined;
    if (!f) throw new UsageError('send the CSV as the multipart field "file"');
    const batch = field(req.body, 'batch')?.trim() || defaultBatchName(f.filename || 'upload.csv');
    const res = await upload(ctx, actor(req), { path: f.path, batch, userId: field(req.body, 'user_id')?.trim() || undefined, revise: field(req.body, 'revise') === 'true' || field(req.body, 'revise') === 'on' });
    const v = res.validation;
    const validation = {
      refused: v.refused,
      rows: v.rows,
      valid: v.valid,
      invalid: v.invalid,
      warnings: v.warnings,
      total_paise: v.total_paise,
      file_issues: v.file_issues,
      problems: v.problems,
      problems_omitted: v.problems_omitted,
      ignored_columns: v.ignored_columns,
      reference_column: v.reference_column,
    };
    if (!res.ingest) {
      // Refused as a whole: nothing stored (the file's problems say why).
      req.uploaded = path.dirname(f.path);
      const why = v.file_issues.filter((i) => i.severity === 'error').map((i) => i.message).join('; ');
      if (wantsPage(req)) {
        req.session!.flash = { kind: 'error', text: `${f.filename} is refused, nothing stored: ${why}` };
        return reply.redirect('/batches', 303);
      }
      return reply.code(422).send(jsonStyle({ batch, stored: false, error: { status: 422, message: `the file is refused: ${why}` }, validation }));
    }
    const i = res.ingest;
    return answer(req, reply, {
      status: i.kind === 'unchanged' ? 200 : 201,
      json: { batch, stored: true, kind: i.kind, revision: i.revision, validation, repeats: { rows: i.repeatCount, first: i.repeats, window_days: i.repeatWindowDays }, plan: i.plan, ready: i.ready },
      flash: `${f.filename} ${i.kind === 'unchanged' ? 'was already read' : 'uploaded'} as batch ${batch} (revision ${i.revision}): ${v.valid} valid rows totalling ${formatRupeesIndian(v.total_paise)}, ${v.invalid} invalid. Nothing is sent until it is approved.`,
      back: `/batches/${encodeURIComponent(batch)}`,
    });
  });
  for (const verb of ['approve', 'reject'] as const) {
    app.post(`/api/batches/:batch/${verb}`, async (req, reply) => {
      const { batch } = req.params as { batch: string };
      const d = { note: field(req.body, 'note'), revision: revisionOf(req.body) };
      const r = verb === 'approve' ? await approve(ctx, actor(req), batch, d) : { ...(await reject(ctx, actor(req), batch, d)), started: false };
      const state = r.approval.met && verb === 'approve' ? (r.started ? 'the policy is met: the batch is running' : 'the policy is met') : r.approval.missing;
      return answer(req, reply, {
        json: { batch, decision: verb === 'approve' ? 'approved' : 'rejected', by: actor(req).name, approval: r.approval, started: r.started },
        flash: `${verb === 'approve' ? 'Approved' : 'Rejected'} by ${actor(req).name}: ${state}`,
        back: `/batches/${encodeURIComponent(batch)}`,
      });
    });
  }
  for (const [verb, what] of [
    ['resume', 'run'],
    ['cancel', 'cancel'],
    ['reconcile', 'reconcile'],
  ] as const) {
    app.post(`/api/batches/:batch/${verb}`, async (req, reply) => {
      const { batch } = req.params as { batch: string };
      await operate(ctx, actor(req), batch, what);
      return answer(req, reply, { status: 202, json: { batch, started: verb }, flash: `${verb} of ${batch} started`, back: `/batches/${encodeURIComponent(batch)}` });
    });
  }
  app.get('/api/batches/:batch/report.:format', async (req, reply) => {
    const { batch, format } = req.params as { batch: string; format: string };
    if (!(REPORT_FORMATS as readonly string[]).includes(format)) throw new BatchNotFoundError(`no report format "${format}": csv, json or html`);
    if (!(await getBatch(o.db, batch))) throw new BatchNotFoundError(`no batch named "${batch}"`);
    // The same report code as every run: written to the report directory, then sent.
    const { file } = await writeReport(o.db, batch, o.reportDir, format as ReportFormat, { timeZone, apiHost: hostOf(o.client.baseUrl) });
    const body = await readFile(file);
    const type = format === 'csv' ? 'text/csv; charset=utf-8' : format === 'json' ? 'application/json; charset=utf-8' : 'text/html; charset=utf-8';
    reply.type(type).header('cache-control', 'no-store');
    // The HTML report is a self-contained file with its own inline CSS and no script.
    if (format === 'html') reply.header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'");
    if ((req.query as { download?: string }).download !== undefined || format !== 'html') reply.header('content-disposition', `attachment; filename="${path.basename(file)}"`);
    return reply.send(body);
  });
  app.get('/api/batches/:batch/events', async (req, reply) => {
    const { batch } = req.params as { batch: string };
    const b = await getBatch(o.db, batch);
    if (!b) throw new BatchNotFoundError(`no batch named "${batch}"`);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-content-type-options': 'nosniff' });
    const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(jsonStyle(data))}\n\n`);
    let last = '';
    let closed = false;
    const tick = async () => {
      if (closed) return;
      try {
        const ov = await overview(ctx, (await getBatch(o.db, batch))!);
        const data = overviewJson(ov);
        const text = JSON.stringify(jsonStyle(data));
        if (text !== last) {
          last = text;
          send('summary', data);
        }
      } catch (err) {
        req.log.warn({ err: (err as Error).message }, 'console events: cannot read the batch');
      }
    };
    const unsubscribe = runs.subscribe(batch, (e) => {
      if (e.type === 'run') {
        if (e.event.type === 'api_trouble') send('api_trouble', { message: e.event.message });
        else if (e.event.type === 'api_ok') send('api_ok', {});
        else if (e.event.type === 'phase') send('phase', { phase: e.event.phase });
        else if (e.event.type === 'stopping') send('stopping', { reason: e.event.reason });
        return;
      }
      send(e.type, e);
      void tick();
    });
    const timer = setInterval(() => void tick(), o.eventsEveryMs ?? 1000);
    const trouble = runs.troubleOf(batch);
    if (trouble) send('api_trouble', { message: trouble });
    await tick();
    req.raw.on('close', () => {
      closed = true;
      clearInterval(timer);
      unsubscribe();
    });
  });

  // --- users, policy, audit (admins change them; the engine checks the role again)
  app.get('/api/users', async (req) => {
    requireRole(actor(req), ['admin'], 'listing users');
    return jsonStyle({ users: (await users(o.db)).map((u) => ({ name: u.name, role: u.role, created_at: u.created_at, disabled_at: u.disabled_at })) });
  });
  app.post('/api/users', async (req, reply) => {
    const name = field(req.body, 'name') ?? '';
    const role = field(req.body, 'role') ?? '';
    await addUser(o.db, actor(req), { name, role, password: field(req.body, 'password') ?? '' });
    return answer(req, reply, { status: 201, json: { user: name, role }, flash: `User ${name} added as ${role}.`, back: '/users' });
  });
  app.post('/api/users/:name/disable', async (req, reply) => {
    const { name } = req.params as { name: string };
    await disable(o.db, actor(req), name);
    sessions.deleteUser(name);
    return answer(req, reply, { json: { user: name, disabled: true }, flash: `User ${name} disabled: logged out, and can no longer log in or approve.`, back: '/users' });
  });
  app.get('/api/policy', async () => policyJson(await policy(o.db)));
  app.post('/api/policy', async (req, reply) => {
    const off = field(req.body, 'enabled') === 'false' || field(req.body, 'off') === 'true' || field(req.body, 'off') === 'on';
    const checkers = Number(field(req.body, 'checkers') ?? 1);
    const above = field(req.body, 'second_above')?.trim();
    const p = await setPolicy(o.db, actor(req), off ? { enabled: false, checkers } : { enabled: true, checkers, secondAbovePaise: above ? rupeesOf(above) : null });
    return answer(req, reply, { json: policyJson(p), flash: p.enabled ? 'Approval policy on.' : 'Approval policy off.', back: '/users' });
  });
  app.get('/api/audit', async (req) => {
    const q = req.query as { batch?: string; limit?: string };
    return jsonStyle({ audit: (await auditOf(o.db, q.batch, Math.min(Number(q.limit ?? 200) || 200, 5000))).map((r) => ({ at: r.at, actor: r.actor, action: r.action, batch: r.batch, revision: r.revision, from: r.from_where, detail: r.detail })) });
  });

  return {
    app,
    runs,
    sessions,
    async close() {
      await runs.close();
      await app.close();
    },
  };
}

function rupeesOf(text: string): bigint {
  const p = parseRupeeInput(text);
  if (p === undefined) throw new UsageError(`second_above must be rupees such as 10,00,000 or 1000000.00; got "${text}"`);
  return p;
}

/** Only a path of this console, never another site, after a login. */
function safeNext(next: string | undefined): string {
  return next && /^\/(?!\/)[^\s\\]*$/.test(next) && !next.startsWith('/api/') ? next : '/batches';
}

function hostOf(url: string): string | undefined {
  try {
    return new URL(url).host;
  } catch {
    return undefined;
  }
}

function policyJson(p: Awaited<ReturnType<typeof policy>>) {
  return jsonStyle({ enabled: p.enabled, checkers: p.checkers, second_above_paise: p.secondAbovePaise, updated_by: p.updatedBy, updated_at: p.updatedAt });
}

function overviewJson(o: Awaited<ReturnType<typeof overview>>) {
  const s = o.summary;
  return {
    batch: o.batch,
    revision: o.revision,
    state: o.state,
    running: o.running ?? null,
    uploaded_by: o.uploadedBy,
    created_at: o.createdAt,
    started_at: o.startedAt,
    finished_at: o.finishedAt,
    rows: s.rows,
    amount: s.amount,
    valid_total_paise: o.validTotalPaise,
    counts: s.counts,
    totals: s.totals,
    paid: s.paid,
    awaiting: s.awaiting,
    not_paid: s.not_paid,
    approval: { required: o.approval.required, met: o.approval.met, needed: o.approval.needed, approved_by: o.approval.approvedBy, rejected_by: o.approval.rejectedBy, missing: o.approval.missing },
  };
}
