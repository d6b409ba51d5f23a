import { startSandbox, type Sandbox, type SandboxOptions } from './server.js';

/** Starts the sandbox for the `sandbox` command; the caller (yargs wiring) keeps the process alive. */
export async function runSandboxCommand(opts: SandboxOptions & { print: (s: string) => void }): Promise<Sandbox> {
  const { print, ...rest } = opts;
  const sb = await startSandbox(rest);
  print(`Sandbox listening on ${sb.url}`);
  print(`  seed ${sb.seed} (pass --seed ${sb.seed} to replay the same faults and UTRs)`);
  // A token given on the command line is the operator's own: printing it back adds nothing.
  const token = opts.adminToken === undefined ? sb.adminToken : '<the --admin-token given>';
  print(`  admin token: ${token} (header x-admin-token, or PAYOUTS_SANDBOX_ADMIN_TOKEN for \`payouts sandbox-payin\`)`);
  print(`  admin: GET ${sb.url}/__admin/ledger, POST ${sb.url}/__admin/payins | /__admin/faults | /__admin/settle`);
  return sb;
}
