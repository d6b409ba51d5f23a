import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { startSandbox } from '../sandbox/server.js';
import { runCommand } from './run.js';
import type { CommandIO } from './context.js';

/** The project's root (where package.json is), from the sources or from dist. */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'samples'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error('cannot find the package root (samples/ beside package.json)');
}

export interface DemoOptions {
  csv?: string | undefined;
  reportDir?: string | undefined;
}

/**
 * `payouts demo`: the whole job with nothing to set up. The sandbox runs in-process, the embedded
 * database keeps the batch, and samples/payroll.csv is paid: some rows invalid, some rejected by the bank.
 */
export async function demoCommand(io: CommandIO, o: DemoOptions = {}): Promise<number> {
  const accessKey = `demo-${randomBytes(4).toString('hex')}`;
  const secretKey = randomBytes(24).toString('hex');
  const sb = await startSandbox({ accessKey, secretKey, balancePaise: 50_00_000_00n, settleMs: 400, rate: 50, seed: 42 });
  const csv = o.csv ?? path.join(packageRoot(), 'samples', 'payroll.csv');
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  try {
    if (!io.json) io.out(`Demo: sandbox API at ${sb.url} (balance ₹50,00,000.00), paying ${path.relative(io.cwd, csv) || csv}`);
    // The demo never touches a real payroll's database: always the embedded one, by default in its own
    // directory under the per-user data directory.
    const db = io.config.db;
    const demoIo: CommandIO = {
      ...io,
      config: {
        ...io.config,
        api: { ...io.config.api, baseUrl: sb.url, accessKey, secretKey },
        db: { ...db, databaseUrl: undefined, dataDir: db.dataDirFrom === 'default' ? path.join(db.dataDir, 'demo') : db.dataDir },
      },
    };
    const code = await runCommand(demoIo, {
      csv,
      batch: `demo-${stamp}`,
      userId: 'demo-merchant',
      reportDir: o.reportDir,
      rate: 20,
      concurrency: 4,
      yes: true,
      // Every demo pays the same sample again, to a new sandbox of its own: not a duplicate upload, and its
      // rows are no repeats of another demo's (the second demo was refused as "already run").
      allowDuplicateFile: true,
      repeatWindowDays: 0,
      engine: { pollIntervalMs: 250, pollMaxIntervalMs: 1000 },
      pollTimeoutMs: 60_000,
    });
    // The sample has invalid and rejected rows on purpose: a real run exits 1 for them; the demo succeeded.
    if (code === 1 && !io.json) io.out('(The sample has invalid and rejected rows on purpose: a real run would exit 1 here.)');
    return code === 1 ? 0 : code;
  } finally {
    await sb.close();
  }
}
