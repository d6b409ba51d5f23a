import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { buildConsole } from '../console/server.js';
import { clientOf, dataDirOf, dbOf, loggerOf, type CommandIO } from './context.js';

export interface ConsoleCommandOptions {
  port: number;
  host: string;
  reportDir: string;
  insecureCookie?: boolean | undefined;
  rate?: number | undefined;
}

/**
 * `payouts console`: the web console (src/console/) over this database and API until stopped (Ctrl-C stops
 * its runs as Ctrl-C stops `payouts run`). Wiring only: the server and its rules are the engine's.
 */
export async function consoleCommand(io: CommandIO, o: ConsoleCommandOptions): Promise<number> {
  const logger = loggerOf(io);
  const client = clientOf(io, logger);
  const db = await dbOf(io);
  try {
    const c = await buildConsole({
      db: db.knex,
      client,
      logger,
      reportDir: path.resolve(o.reportDir),
      uploadDir: path.join(dataDirOf(io), 'uploads'),
      timeZone: io.config.timeZone,
      defaultUserId: io.config.userId,
      secureCookie: !o.insecureCookie,
      ...(o.rate !== undefined ? { run: { engine: { rate: o.rate } } } : {}),
    });
    await c.app.listen({ port: o.port, host: o.host });
    const a = c.app.server.address() as AddressInfo;
    const url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    if (io.json) io.out(JSON.stringify({ listening: url }));
    else io.out(`Console on ${url} (${db.where}); sign in with a user of \`payouts users add\`; Ctrl-C stops`);
    await new Promise<void>((resolve) => {
      if (!io.stopSignal || io.stopSignal.aborted) return resolve();
      io.stopSignal.addEventListener('abort', () => resolve(), { once: true });
    });
    await c.close();
    if (io.json) io.out(JSON.stringify({ stopped: true }));
    else io.out('Console stopped');
    return 0;
  } finally {
    await client.close();
    await db.close();
  }
}
