import { runSandboxCommand } from '../sandbox/cli.js';
import type { FaultOptions } from '../sandbox/faults.js';
import type { Sandbox } from '../sandbox/server.js';
import type { CommandIO } from './context.js';

export interface SandboxCommandOptions {
  port: number;
  host: string;
  accessKey: string;
  secretKey: string;
  balancePaise: bigint;
  rate?: number | undefined;
  settleMs?: number | undefined;
  seed?: number | undefined;
  webhookUrl?: string | undefined;
  dedupOrderIds?: boolean;
  reencode?: 'raw' | 'php';
  getBodyMode?: 'empty' | '{}' | 'either';
  allowIps?: string[] | undefined;
  rejectSuffix?: string | undefined;
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
    ...(o.settleMs !== undefined ? { settleMs: o.settleMs } : {}),
    ...(o.seed !== undefined ? { seed: o.seed } : {}),
    ...(o.webhookUrl ? { webhookUrl: o.webhookUrl } : {}),
    ...(o.dedupOrderIds !== undefined ? { dedupOrderIds: o.dedupOrderIds } : {}),
    ...(o.reencode ? { reencode: o.reencode } : {}),
    ...(o.getBodyMode ? { getBodyMode: o.getBodyMode } : {}),
    ...(o.allowIps?.length ? { allowIps: o.allowIps } : {}),
    ...(suffix ? { rejectAccount: (acc: string) => acc.endsWith(suffix) } : {}),
    faults: o.faults,
    print: io.out,
  });
}

/** The `sandbox` command's flags (the keys from the configuration: flags, then the environment). */
export async function startSandboxFromArgs(io: CommandIO, argv: Record<string, unknown>): Promise<Sandbox> {
  const { ConfigError } = await import('../errors.js');
  const { parseRupees } = await import('../money.js');
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
    settleMs: argv['settleMs'] as number | undefined,
    seed: argv['seed'] as number | undefined,
    webhookUrl: argv['webhookUrl'] as string | undefined,
    dedupOrderIds: !argv['noDedup'],
    ...(argv['reencode'] ? { reencode: argv['reencode'] as 'raw' | 'php' } : {}),
    getBodyMode: argv['acceptGetBody'] as 'empty' | '{}' | 'either',
    allowIps: argv['allowIp'] as string[] | undefined,
    rejectSuffix: argv['rejectSuffix'] as string,
    faults,
  });
}
