import type { TimestampUnit } from '../alliance/signing.js';
import { ApiUnavailableError, ConfigError, UsageError } from '../errors.js';
import { formatRupees, formatRupeesIndian, parseRupees } from '../money.js';
import type { ReencodeMode } from '../sandbox/auth.js';
import { runSandboxCommand } from '../sandbox/cli.js';
import type { FaultOptions } from '../sandbox/faults.js';
import type { Sandbox } from '../sandbox/server.js';
import { printJson, type CommandIO } from './context.js';

export interface SandboxCommandOptions {
  port: number;
  host: string;
  accessKey: string;
  secretKey: string;
  balancePaise: bigint;
  rate?: number | undefined;
  rateMode?: 'bucket' | 'sliding' | undefined;
  settleMs?: number | undefined;
  seed?: number | undefined;
  webhookUrl?: string | undefined;
  dedupOrderIds?: boolean;
  reencode?: ReencodeMode;
  getBodyMode?: 'empty' | '{}' | 'either';
  timestampUnit?: TimestampUnit;
  requireMobileNumber?: boolean;
  allowIps?: string[] | undefined;
  rejectSuffix?: string | undefined;
  adminToken?: string | undefined;
  faults: FaultOptions;
}

/** `payouts sandbox`: serves until the process is stopped; returns the running sandbox. */
export async function sandboxCommand(io: CommandIO, o: SandboxCommandOptions): Promise<Sandbox> {
  const suffix = o.rejectSuffix;
  return runSandboxCommand({
    accessKey: o.accessKey,
    secretKey: o.secretKey,
    balancePaise: o.balancePaise,
    port: o.port,
    host: o.host,
    ...(o.rate !== undefined ? { rate: o.rate } : {}),
    ...(o.rateMode ? { rateMode: o.rateMode } : {}),
    ...(o.settleMs !== undefined ? { settleMs: o.settleMs } : {}),
    ...(o.seed !== undefined ? { seed: o.seed } : {}),
    ...(o.webhookUrl ? { webhookUrl: o.webhookUrl } : {}),
    ...(o.dedupOrderIds !== undefined ? { dedupOrderIds: o.dedupOrderIds } : {}),
    ...(o.reencode ? { reencode: o.reencode } : {}),
    ...(o.getBodyMode ? { getBodyMode: o.getBodyMode } : {}),
    ...(o.timestampUnit ? { timestampUnit: o.timestampUnit } : {}),
    ...(o.requireMobileNumber ? { requireMobileNumber: true } : {}),
    ...(o.allowIps?.length ? { allowIps: o.allowIps } : {}),
    ...(suffix ? { rejectAccount: (acc: string) => acc.endsWith(suffix) } : {}),
    ...(o.adminToken ? { adminToken: o.adminToken } : {}),
    faults: o.faults,
    print: io.out,
  });
}

export interface SandboxPayinOptions {
  orderId: string;
  /** Rupees. */
  amount: string;
  outcome?: 'Approved' | 'Rejected' | undefined;
  userId?: string | undefined;
  method?: string | undefined;
  /** The sandbox's URL; default the configured API URL (a rehearsal points ALLIANCE_BASE_URL at the sandbox). */
  url?: string | undefined;
}

/**
 * `payouts sandbox-payin`: a customer pays into the sandbox. It creates the payin through the running
 * sandbox's admin API (POST /__admin/payins, with its admin token); the sandbox then sends the payin
 * webhooks and answers the payin lookup like the real API.
 */
export async function sandboxPayinCommand(io: CommandIO, o: SandboxPayinOptions): Promise<number> {
  const base = o.url ?? io.config.api.baseUrl;
  if (!base) throw new ConfigError('where is the sandbox? pass --url http://127.0.0.1:4010 (or set ALLIANCE_BASE_URL)');
  const token = io.config.sandboxAdminToken;
  if (!token) {
    throw new ConfigError('the sandbox admin token is missing: pass --admin-token or set PAYOUTS_SANDBOX_ADMIN_TOKEN (`payouts sandbox` prints it when it starts)');
  }
  const paise = parseRupees(o.amount);
  if (paise === undefined || paise <= 0n) throw new UsageError(`--amount must be rupees above zero like 100 or 1111.11; got "${o.amount}"`);
  if (!o.orderId.trim()) throw new UsageError('--order-id must not be empty');
  const url = `${base.replace(/\/+$/, '')}/__admin/payins`;
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-admin-token': token },
      body: JSON.stringify({
        order_id: o.orderId.trim(),
        amount: formatRupees(paise),
        outcome: o.outcome ?? 'Approved',
        ...(o.userId ? { user_id: o.userId } : {}),
        ...(o.method ? { method: o.method } : {}),
      }),
      signal: AbortSignal.timeout(15_000),
    });
  } catch (err) {
    throw new ApiUnavailableError(`cannot reach the sandbox at ${base}: ${(err as Error).message}; is \`payouts sandbox\` running there?`, { cause: err });
  }
  const body = (await res.json().catch(() => undefined)) as { data?: Record<string, unknown>; error?: unknown; message?: string } | undefined;
  if (res.status === 401) throw new ConfigError(`the sandbox at ${base} refused the admin token: use the one it printed when it started`);
  if (res.status === 404) throw new ConfigError(`${base} has no sandbox admin API: --url must point at \`payouts sandbox\`, not the real API`);
  if (res.status === 422) {
    const errors = body?.error && typeof body.error === 'object' ? Object.entries(body.error as Record<string, string[]>).map(([k, v]) => `${k}: ${[v].flat().join('; ')}`) : [];
    throw new UsageError(`the sandbox refused the payin: ${errors.join(', ') || body?.message || 'validation failed'}`);
  }
  if (res.status !== 201 || !body?.data) throw new ApiUnavailableError(`the sandbox answered HTTP ${res.status}: ${body?.message ?? 'no payin created'}`);
  if (io.json) printJson(io, body.data);
  else {
    io.out(`Payin ${o.orderId.trim()} created in the sandbox: ${formatRupeesIndian(paise)}, ${String(body.data['status'])}; it settles ${o.outcome ?? 'Approved'} after the sandbox's --settle-ms.`);
  }
  return 0;
}

/** The `sandbox` command's flags (the keys from the configuration: flags, then the environment). */
export async function startSandboxFromArgs(io: CommandIO, argv: Record<string, unknown>): Promise<Sandbox> {
  const { parseFaultOptions } = await import('../sandbox/faults.js');
  const { accessKey, secretKey } = io.config.api;
  if (!accessKey || !secretKey) throw new ConfigError('the sandbox needs --access-key and --secret-key (or ALLIANCE_ACCESS_KEY / ALLIANCE_SECRET_KEY)');
  const balance = parseRupees(String(argv['balance']));
  if (balance === undefined) throw new ConfigError(`--balance must be rupees like 500000 or 1111.11; got "${String(argv['balance'])}"`);
  let faults = {};
  if (argv['faults']) {
    try {
      faults = parseFaultOptions(JSON.parse(argv['faults'] as string));
    } catch (err) {
      throw new ConfigError(`--faults must be a JSON object of fault options: ${(err as Error).message}`);
    }
  }
  return sandboxCommand(io, {
    port: argv['port'] as number,
    host: argv['host'] as string,
    accessKey,
    secretKey,
    balancePaise: balance,
    rate: argv['rate'] as number | undefined,
    rateMode: argv['rateMode'] as 'bucket' | 'sliding',
    settleMs: argv['settleMs'] as number | undefined,
    seed: argv['seed'] as number | undefined,
    webhookUrl: argv['webhookUrl'] as string | undefined,
    dedupOrderIds: argv['dedup'] !== false,
    ...(argv['reencode'] ? { reencode: argv['reencode'] as 'raw' | 'php' | 'ascii' } : {}),
    getBodyMode: argv['acceptGetBody'] as 'empty' | '{}' | 'either',
    timestampUnit: argv['acceptTimestamp'] as 'ms' | 's',
    requireMobileNumber: Boolean(argv['requireMobileNumber']),
    allowIps: argv['allowIp'] as string[] | undefined,
    rejectSuffix: argv['rejectSuffix'] as string,
    adminToken: io.config.sandboxAdminToken,
    faults,
  });
}
