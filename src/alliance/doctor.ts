import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Agent, type Dispatcher } from 'undici';
import type { Logger } from 'pino';
import { AllianceClient, type PreparedRequest, type RawResponse } from './client.js';
import { AllianceError, AuthenticationError, ValidationError, extractFieldErrors } from './errors.js';
import { sleep, withRetry } from './retry.js';
import { GET_BODY_MODES, JSON_ESCAPE_MODES, TIMESTAMP_UNITS, type GetBodyMode, type JsonEscapeMode, type TimestampUnit } from './signing.js';
import { API_PATHS } from './types.js';

/**
 * `payouts doctor` as a library (a web console can call it too): read-only probes that tell, before a
 * first live payroll, whether the configured API accepts this machine and which of the document's
 * contradictory rules it follows. Probes: GET balance, GET the status of a made-up order_id, and the
 * payin lookup POST with a made-up order_id (a 404 means the signature passed, a 401 that it did not).
 * With `probeInitiate`, also an initiate the server must refuse (no amount, no account), to learn how it
 * wants the mobile number.
 *
 * Nothing here ever puts a key or a signature into the report: it carries settings, statuses and the
 * server's own messages (scrubbed of the keys, should a server echo them).
 */

/** The document's contradictions, each one setting (see src/config.ts for their flags and variables). */
export interface ApiSettings {
  getBodyMode: GetBodyMode;
  escape: JsonEscapeMode;
  timestampUnit: TimestampUnit;
  mobileAsNumber: boolean;
}

export type CheckStatus = 'pass' | 'warn' | 'fail' | 'info';

export interface DoctorCheck {
  /** Stable id: configuration, url, tls, reachable, balance, credentials, ip, clock, get_body, timestamp, status_get, body_encoding, mobile. */
  id: string;
  status: CheckStatus;
  detail: string;
}

/**
 * - ok: everything a payroll needs works with the current settings.
 * - missing_configuration: URL or keys not set.
 * - unreachable: no connection (DNS, refused, TLS, timeout).
 * - refused: the server refuses these credentials (keys, IP, clock) or every signing variant.
 * - settings_differ: it works, but only with settings other than the current ones.
 * - server_problem: the server did something a payroll cannot live with (accepted a payout it must refuse).
 */
export type DoctorVerdict = 'ok' | 'missing_configuration' | 'unreachable' | 'refused' | 'settings_differ' | 'server_problem';

/** How each recommended setting was learnt: asked of the server, or kept (the server did not tell). */
export type SettingSource = 'probed' | 'kept';

export interface DoctorReport {
  verdict: DoctorVerdict;
  checks: DoctorCheck[];
  /** The settings to use. */
  settings: ApiSettings;
  sources: Record<keyof ApiSettings, SettingSource>;
  /** Settings that differ from the current ones. */
  changed: (keyof ApiSettings)[];
  /** Server Date minus local clock, when a Date header was seen (1 s resolution). */
  clockSkewMs: number | undefined;
}

export interface DoctorOptions {
  baseUrl: string | undefined;
  accessKey: string | undefined;
  secretKey: string | undefined;
  /** The settings in force now. */
  current: ApiSettings;
  /** Per probe. Default 10000. */
  timeoutMs?: number;
  /** Also POST an initiate the server must refuse (no amount, no account) to learn the mobile number's type. */
  probeInitiate?: boolean;
  logger?: Logger;
  /** Clock, for tests (a machine whose clock is wrong). */
  now?: () => number;
  /**
   * Least time between two probes, ms. Default 300: doctor's dozen requests stay under any sane rate limit
   * (a 429 is waited out and asked again, as is a 5xx on a GET).
   */
  minIntervalMs?: number;
}

/** Above this, a clock is wrong enough to be refused by a server checking timestamps (most allow a few minutes). */
const CLOCK_FAIL_MS = 60_000;
const CLOCK_WARN_MS = 5_000;

type Probe =
  | { kind: 'ok'; res: RawResponse }
  | { kind: 'refused'; err: AuthenticationError }
  | { kind: 'answered'; err: AllianceError }
  | { kind: 'network'; err: AllianceError };

const other = <T>(all: readonly T[], v: T): T[] => all.filter((x) => x !== v);

export async function runDoctor(o: DoctorOptions): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const add = (id: string, status: CheckStatus, detail: string) => checks.push({ id, status, detail: scrub(detail, o) });
  const settings: ApiSettings = { ...o.current };
  const sources: Record<keyof ApiSettings, SettingSource> = { getBodyMode: 'kept', escape: 'kept', timestampUnit: 'kept', mobileAsNumber: 'kept' };
  let clockSkewMs: number | undefined;
  const report = (verdict: DoctorVerdict): DoctorReport => {
    const changed = (Object.keys(settings) as (keyof ApiSettings)[]).filter((k) => settings[k] !== o.current[k]);
    const final = verdict === 'ok' && changed.length > 0 ? 'settings_differ' : verdict;
    return { verdict: final, checks, settings, sources, changed, clockSkewMs };
  };

  // 1. Configuration present.
  const missing = [
    ['ALLIANCE_BASE_URL', o.baseUrl],
    ['ALLIANCE_ACCESS_KEY', o.accessKey],
    ['ALLIANCE_SECRET_KEY', o.secretKey],
  ]
    .filter(([, v]) => !v)
    .map(([k]) => k!);
  if (missing.length) {
    add('configuration', 'fail', `missing ${missing.join(', ')}: set them in the environment (or --base-url, --access-key, --secret-key)`);
    return report('missing_configuration');
  }
  add('configuration', 'pass', 'ALLIANCE_BASE_URL, ALLIANCE_ACCESS_KEY and ALLIANCE_SECRET_KEY are set');

  // 2. The URL.
  let url: URL;
  try {
    url = new URL(o.baseUrl!);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(url.protocol);
  } catch {
    add('url', 'fail', `ALLIANCE_BASE_URL is not an http(s) URL: use the API URI Alliance gave you, e.g. https://api.example.com`);
    return report('missing_configuration');
  }
  const loopback = ['localhost', '127.0.0.1', '[::1]', '::1'].includes(url.hostname);
  if (url.protocol === 'http:' && !loopback) {
    add('url', 'warn', `${url.origin} is plain http: keys' signatures and payroll data cross the network unencrypted; use https`);
  } else {
    add('url', 'pass', `${url.origin}${url.pathname === '/' ? '' : url.pathname}`);
  }

  const timeoutMs = o.timeoutMs ?? 10_000;

  // 3. TLS, looked at on its own so a certificate problem is named as such.
  if (url.protocol === 'https:') {
    const tls = await checkTls(url, timeoutMs);
    add('tls', tls.ok ? (tls.warn ? 'warn' : 'pass') : 'fail', tls.detail);
    if (!tls.ok) return report('unreachable');
  }

  const agent = new Agent({ connections: 2, keepAliveTimeout: 2_000, connect: { timeout: timeoutMs } });
  const clients: AllianceClient[] = [];
  const clientWith = (s: ApiSettings): AllianceClient => {
    const c = new AllianceClient({
      baseUrl: o.baseUrl!,
      accessKey: o.accessKey!,
      secretKey: o.secretKey!,
      timeoutMs,
      getBodyMode: s.getBodyMode,
      escape: s.escape,
      timestampUnit: s.timestampUnit,
      mobileAsNumber: s.mobileAsNumber,
      dispatcher: agent as Dispatcher,
      ...(o.logger ? { logger: o.logger } : {}),
      ...(o.now ? { now: o.now } : {}),
    });
    clients.push(c);
    return c;
  };
  const now = o.now ?? Date.now;
  const minInterval = o.minIntervalMs ?? 300;
  let lastSent = 0;
  const paced = async <T>(fn: () => Promise<T>): Promise<T> => {
    const wait = lastSent + minInterval - Date.now();
    if (wait > 0) await sleep(wait);
    lastSent = Date.now();
    return fn();
  };
  const probe = async (s: ApiSettings, prepared: (c: AllianceClient) => PreparedRequest): Promise<Probe> => {
    const c = clientWith(s);
    try {
      // Every probe is read-only (an incomplete initiate cannot be paid), so a 429 or a GET's 5xx is asked again.
      const res = await withRetry(() => paced(() => c.send(prepared(c))), { retries: 3, baseMs: 500, maxMs: 5_000 });
      const date = res.headers['date'];
      const d = Date.parse(Array.isArray(date) ? date[0]! : (date ?? ''));
      if (!Number.isNaN(d)) clockSkewMs = d - now();
      return { kind: 'ok', res };
    } catch (err) {
      if (err instanceof AuthenticationError) {
        if (err.clockSkewMs !== undefined) clockSkewMs = err.clockSkewMs;
        return { kind: 'refused', err };
      }
      // No HTTP status: no answer at all (refused, DNS, reset, timeout).
      if (err instanceof AllianceError && err.statusCode === undefined) return { kind: 'network', err };
      if (err instanceof AllianceError) return { kind: 'answered', err };
      throw err;
    }
  };

  try {
    // 4. GET balance under the current rules, then the other rules the document allows.
    const balance = (c: AllianceClient) => c.prepareGet(API_PATHS.balance);
    const combos: Array<Pick<ApiSettings, 'timestampUnit' | 'getBodyMode'>> = [];
    for (const unit of [o.current.timestampUnit, ...other(TIMESTAMP_UNITS, o.current.timestampUnit)]) {
      for (const body of [o.current.getBodyMode, ...other(GET_BODY_MODES, o.current.getBodyMode)]) combos.push({ timestampUnit: unit, getBodyMode: body });
    }
    const tried: Array<{ combo: (typeof combos)[number]; p: Probe }> = [];
    let working: (typeof combos)[number] | undefined;
    for (const combo of combos) {
      const p = await probe({ ...settings, ...combo }, balance);
      tried.push({ combo, p });
      if (p.kind === 'network') {
        add('reachable', 'fail', `${url.origin} cannot be reached: ${p.err.message}`);
        return report('unreachable');
      }
      if (p.kind === 'answered') {
        add('reachable', 'pass', `${url.origin} answers`);
        add('balance', 'fail', `GET ${API_PATHS.balance} failed: ${p.err.message}`);
        return report('server_problem');
      }
      if (p.kind === 'ok') {
        working = combo;
        break;
      }
    }
    add('reachable', 'pass', `${url.origin} answers`);

    if (!working) {
      // The answer under the current settings speaks for the credentials; the other variants' answers
      // (e.g. "timestamp expired" for seconds) only say that variant is wrong too.
      const last = tried[0]!.p as Extract<Probe, { kind: 'refused' }>;
      const said = serverSaid(last.err);
      const tries = 'under every rule the document allows (GET body line empty and {}, timestamp in ms and in s)';
      if (clockSkewMs !== undefined && Math.abs(clockSkewMs) > CLOCK_FAIL_MS) {
        add('clock', 'fail', clockText(clockSkewMs) + ': fix the clock (NTP); the server refuses requests whose timestamp is that far off');
        add('credentials', 'fail', `refused ${tries}${said}; fix the clock first, then run doctor again`);
      } else if (last.err.statusCode === 403 || /\bip\b|whitelist|allowlist|not allowed/i.test(said)) {
        add('ip', 'fail', `the server refuses this machine's IP address${said}: ask Alliance to whitelist the address this machine connects from`);
        add('credentials', 'fail', `refused ${tries}; not checked further while the IP is refused`);
      } else {
        if (clockSkewMs !== undefined) add('clock', Math.abs(clockSkewMs) > CLOCK_WARN_MS ? 'warn' : 'pass', clockText(clockSkewMs));
        add(
          'credentials',
          'fail',
          `refused ${tries}${said}: check ALLIANCE_ACCESS_KEY and ALLIANCE_SECRET_KEY (the keys of the CRM's Profile → API Keys, for this environment)`,
        );
      }
      return report('refused');
    }

    settings.timestampUnit = working.timestampUnit;
    settings.getBodyMode = working.getBodyMode;
    sources.timestampUnit = 'probed';
    sources.getBodyMode = 'probed';
    add('credentials', 'pass', 'the access key and the signature are accepted (GET balance)');
    add('ip', 'pass', "this machine's IP address is allowed");
    if (clockSkewMs === undefined) add('clock', 'warn', 'the server sends no Date header: the clock cannot be compared');
    else if (Math.abs(clockSkewMs) > CLOCK_WARN_MS) add('clock', 'warn', clockText(clockSkewMs) + ': accepted today, but fix the clock (NTP) before it is refused');
    else add('clock', 'pass', clockText(clockSkewMs));

    // Which GET body lines and units work: the other body line under the working unit, for the record.
    const otherBody = other(GET_BODY_MODES, working.getBodyMode)[0]!;
    const otherBodyProbe =
      tried.find((t) => t.combo.timestampUnit === working.timestampUnit && t.combo.getBodyMode === otherBody)?.p ??
      (await probe({ ...settings, getBodyMode: otherBody }, balance));
    const bothBodies = otherBodyProbe.kind === 'ok';
    add(
      'get_body',
      'pass',
      bothBodies
        ? `GET requests are accepted signed with an empty body line and with {}: ${show(working.getBodyMode)} (kept)`
        : `GET requests are accepted only signed with ${working.getBodyMode === 'empty' ? 'an empty body line' : 'the body line {}'}: --get-body-mode ${show(working.getBodyMode)}`,
    );
    const unitRefused = tried.some((t) => t.combo.timestampUnit !== working.timestampUnit);
    add(
      'timestamp',
      'pass',
      `timestamps in ${working.timestampUnit === 'ms' ? 'milliseconds' : 'seconds'} are accepted${unitRefused ? ` (in ${working.timestampUnit === 'ms' ? 'seconds' : 'milliseconds'} they were refused)` : ''}`,
    );

    // 5. A GET with an order_id in the path: the status of one that cannot exist.
    const madeUp = `doctor-${randomBytes(6).toString('hex')}`;
    const status = await probe(settings, (c) => c.prepareGet(API_PATHS.payoutStatus(madeUp)));
    if (status.kind === 'refused') {
      add('status_get', 'fail', `GET ${API_PATHS.payoutStatus('<order_id>')} is refused although GET balance is accepted${serverSaid(status.err)}: polling payouts would fail`);
      return report('refused');
    }
    if (status.kind === 'network') {
      add('status_get', 'fail', `GET payout status failed: ${status.err.message}`);
      return report('unreachable');
    }
    if (status.kind === 'answered' && status.err.statusCode === 404) {
      add('status_get', 'pass', 'payout status: a made-up order_id gets 404, as documented (so a resend is judged right)');
    } else {
      add('status_get', 'warn', `payout status of a made-up order_id answered ${status.kind === 'ok' ? `HTTP ${status.res.statusCode}` : status.err.message}, not the documented 404`);
    }

    // 6. Body encoding: the payin lookup with an order_id holding "/" and a non-ASCII letter, in each encoding.
    // A server checking the bytes received accepts all three; one re-encoding first accepts only its own.
    const probeId = `doctor/\u00fc-${randomBytes(4).toString('hex')}`;
    const accepted: JsonEscapeMode[] = [];
    const refusals: string[] = [];
    for (const escape of [o.current.escape, ...other(JSON_ESCAPE_MODES, o.current.escape)]) {
      const p = await probe({ ...settings, escape }, (c) => c.preparePost(API_PATHS.payinStatus, { order_id: probeId }));
      if (p.kind === 'network') {
        add('body_encoding', 'fail', `the payin lookup POST failed: ${p.err.message}`);
        return report('unreachable');
      }
      if (p.kind === 'refused') refusals.push(`${escape}: ${p.err.statusCode}${serverSaid(p.err)}`);
      else accepted.push(escape);
    }
    if (accepted.length === 0) {
      add(
        'body_encoding',
        'fail',
        `POST signatures are refused in every body encoding (raw, ascii, php) although GET works: ${refusals.join('; ')}; payouts could not be sent`,
      );
      return report('refused');
    }
    const chosen: JsonEscapeMode = accepted.includes(o.current.escape) ? o.current.escape : accepted.includes('none') ? 'none' : accepted[0]!;
    settings.escape = chosen;
    sources.escape = 'probed';
    add(
      'body_encoding',
      'pass',
      accepted.length === JSON_ESCAPE_MODES.length
        ? `the server checks signatures over the bytes received: any encoding works; ${show(chosen)} (kept)`
        : `the server re-encodes bodies before checking signatures: only --json-escape ${chosen} is accepted (refused: ${refusals.join('; ')})`,
    );

    // 7. Mobile number as a number or a string: only an initiate tells, so only when asked.
    if (!o.probeInitiate) {
      add(
        'mobile',
        'info',
        `not probed (doctor is read-only by default); kept ${o.current.mobileAsNumber ? 'as a number' : 'as a string (the document\'s request example)'}. ` +
          '`payouts doctor --probe-initiate` asks the server with an initiate it must refuse (no amount, no account)',
      );
    } else {
      const r = await probeMobile(probe, settings);
      add('mobile', r.status, r.detail);
      if (r.verdict) return report(r.verdict);
      if (r.mobileAsNumber !== undefined) {
        settings.mobileAsNumber = r.mobileAsNumber;
        sources.mobileAsNumber = 'probed';
      }
    }
    return report('ok');
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await agent.close();
  }
}

type Prober = (s: ApiSettings, prepared: (c: AllianceClient) => PreparedRequest) => Promise<Probe>;

/**
 * Two initiates without amount, account, IFSC or name (no server can pay them): one with the mobile as a
 * string, one as a number. A field error on the mobile for one and not the other tells which it wants.
 */
async function probeMobile(
  probe: Prober,
  settings: ApiSettings,
): Promise<{ status: CheckStatus; detail: string; mobileAsNumber?: boolean; verdict?: DoctorVerdict }> {
  const errorsFor = async (mobile: string | number) => {
    const orderId = `doctor-never-paid-${randomBytes(6).toString('hex')}`;
    const p = await probe(settings, (c) => c.preparePost(API_PATHS.initiatePayout, { beneficiary_mobile_no: mobile, order_id: orderId }));
    return { p, orderId };
  };
  const results: Array<{ complaint: string | undefined }> = [];
  for (const mobile of ['7878787878', 7878787878] as const) {
    const { p, orderId } = await errorsFor(mobile);
    if (p.kind === 'ok') {
      return {
        status: 'fail',
        detail: `the server ACCEPTED an initiate without amount, account or IFSC (order_id ${orderId}, HTTP ${p.res.statusCode}): do not run a payroll; report it to Alliance`,
        verdict: 'server_problem',
      };
    }
    if (p.kind !== 'answered' || !(p.err instanceof ValidationError)) {
      return { status: 'warn', detail: `cannot tell: the incomplete initiate was answered ${p.kind === 'network' ? p.err.message : p.err.message.slice(0, 200)} instead of a 422` };
    }
    const fe = extractFieldErrors(p.err.raw);
    results.push({ complaint: fe['beneficiary_mobile_no']?.join(' ') });
  }
  const [asString, asNumber] = results as [{ complaint: string | undefined }, { complaint: string | undefined }];
  if (asString.complaint && !asNumber.complaint) {
    return { status: 'pass', detail: `the server wants beneficiary_mobile_no as a number (as a string: "${asString.complaint}"): --mobile-as-number`, mobileAsNumber: true };
  }
  if (!asString.complaint && asNumber.complaint) {
    return { status: 'pass', detail: `the server wants beneficiary_mobile_no as a string (as a number: "${asNumber.complaint}")`, mobileAsNumber: false };
  }
  if (!asString.complaint && !asNumber.complaint) {
    return { status: 'pass', detail: `beneficiary_mobile_no is accepted as a string and as a number: ${settings.mobileAsNumber ? 'a number' : 'a string'} (kept)` };
  }
  return { status: 'warn', detail: `beneficiary_mobile_no is refused both ways ("${asString.complaint}" / "${asNumber.complaint}"): ask Alliance` };
}

function show(v: string): string {
  return v === '{}' ? "'{}'" : v;
}

function serverSaid(err: AllianceError): string {
  const raw = err.raw as { message?: unknown; error?: unknown } | undefined;
  const m = raw && typeof raw === 'object' ? (typeof raw.message === 'string' ? raw.message : typeof raw.error === 'string' ? raw.error : '') : '';
  return m.trim() ? ` (the server said: "${m.trim().slice(0, 200)}")` : ` (HTTP ${err.statusCode})`;
}

function clockText(skewMs: number): string {
  const s = Math.round(Math.abs(skewMs) / 1000);
  if (s <= 1) return "this machine's clock agrees with the server's Date header (within its 1 s resolution)";
  return `this machine's clock is ${s}s ${skewMs > 0 ? 'behind' : 'ahead of'} the server's (its Date header)`;
}

/** Belt and braces: a server echoing a key back must not put it on a terminal. */
function scrub(text: string, o: DoctorOptions): string {
  let t = text;
  for (const secret of [o.secretKey, o.accessKey]) if (secret && secret.length >= 4) t = t.split(secret).join('[redacted]');
  return t;
}

async function checkTls(url: URL, timeoutMs: number): Promise<{ ok: boolean; warn?: boolean; detail: string }> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || 443);
  return new Promise((resolve) => {
    const socket = tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), timeout: timeoutMs });
    const done = (r: { ok: boolean; warn?: boolean; detail: string }) => {
      socket.destroy();
      resolve(r);
    };
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      const protocol = socket.getProtocol() ?? 'TLS';
      const validTo = cert?.valid_to ? Date.parse(cert.valid_to) : NaN;
      const days = Number.isNaN(validTo) ? undefined : Math.floor((validTo - Date.now()) / 86_400_000);
      const what = `${protocol}, certificate for ${cert?.subject?.CN ?? host}${days === undefined ? '' : `, valid for ${days} more days`}`;
      if (days !== undefined && days < 14) done({ ok: true, warn: true, detail: `${what}: it expires soon` });
      else done({ ok: true, detail: what });
    });
    socket.once('timeout', () => done({ ok: false, detail: `no TLS handshake with ${host}:${port} within ${timeoutMs} ms` }));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? 'error';
      const cert = /CERT|SELF_SIGNED|VERIFY|ALTNAME/.test(code);
      done({
        ok: false,
        detail: cert
          ? `TLS: the server's certificate is not trusted (${code}: ${err.message}); check ALLIANCE_BASE_URL is the API's address`
          : `cannot connect to ${host}:${port} (${code}: ${err.message}): check ALLIANCE_BASE_URL and the network`,
      });
    });
  });
}
