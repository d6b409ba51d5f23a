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
