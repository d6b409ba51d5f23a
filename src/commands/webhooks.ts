import { randomBytes } from 'node:crypto';
import { ConfigError } from '../errors.js';
import { payinHintHandler } from '../engine/payins.js';
import { payoutHintHandler } from '../engine/hints.js';
import { Runner } from '../engine/context.js';
import { startWebhookReceiver, WEBHOOK_PATH, type ReceiverStats, type WebhookHint } from '../webhooks/receiver.js';
import { clientOf, dbOf, loggerOf, type CommandIO } from './context.js';

export interface WebhooksCommandOptions {
  port: number;
  host: string;
  allowIps?: string[] | undefined;
  maxBodyBytes?: number | undefined;
  /** Called once listening (tests). */
  onListening?: (url: string) => void;
  /** API requests per second for the status checks hints lead to. Default 5. */
  rate?: number | undefined;
  /** The receiver's bounds (webhooks/receiver.ts). */
  idleTimeoutMs?: number | undefined;
  maxConnections?: number | undefined;
  maxQueuedHints?: number | undefined;
}

/**
 * `payouts webhooks`: receives Alliance's webhooks until stopped (Ctrl-C). Payin hints are confirmed
 * with the payin status API and stored; a payout hint leads to one status check of that payout, which
 * moves its row forward if the API says so (batch runs on the same database see it).
 */
export async function webhooksCommand(io: CommandIO, o: WebhooksCommandOptions): Promise<number> {
  const logger = loggerOf(io);
  const given = io.config.webhookToken;
  if (given !== undefined && !/^[A-Za-z0-9._~-]{16,}$/.test(given)) {
    throw new ConfigError('--webhook-token (PAYOUTS_WEBHOOK_TOKEN) must be at least 16 URL-safe characters: letters, digits, . _ ~ -');
  }
  const token = given ?? randomBytes(24).toString('base64url');
  const client = clientOf(io, logger);
  const db = await dbOf(io);
  try {
    // Status checks go through a runner: the API account's rate budget (shared with batch runs on PostgreSQL).
    // Every lookup here is prompted by a webhook: all take the hint lane, which on PostgreSQL keeps to its
    // share of the account's rate so that batch runs elsewhere on the database keep theirs.
    const runner = new Runner({ db: db.knex, client, logger }, { rate: o.rate ?? 5 });
    const onPayinHint = payinHintHandler({ client, db: db.knex, logger, gate: runner.hintGate });
    const onPayoutHint = payoutHintHandler(runner, { gate: runner.hintGate });
    const rx = await startWebhookReceiver({
      token,
      port: o.port,
      host: o.host,
      allowIps: o.allowIps,
      ...(o.maxBodyBytes ? { maxBodyBytes: o.maxBodyBytes } : {}),
      ...(o.idleTimeoutMs !== undefined ? { idleTimeoutMs: o.idleTimeoutMs } : {}),
      ...(o.maxConnections !== undefined ? { maxConnections: o.maxConnections } : {}),
      ...(o.maxQueuedHints !== undefined ? { maxQueuedHints: o.maxQueuedHints } : {}),
      logger,
      onPayinHint: (h: WebhookHint) => onPayinHint(h),
      // A payout hint schedules one authenticated status check; only the API's answer moves the row.
      onPayoutHint: (h: WebhookHint, stopping: AbortSignal) => onPayoutHint(h, stopping),
    });
    const shown = given ? rx.url.replace(`${WEBHOOK_PATH}${token}`, `${WEBHOOK_PATH}<your --webhook-token>`) : rx.url;
    // --json: one line when listening, one when stopped (a supervisor can read them as they come).
    if (io.json) io.out(JSON.stringify({ listening: shown, token_generated: !given }));
    else {
      io.out(`Receiving webhooks on ${shown}`);
      if (!given) io.out('  (token generated for this run: pass --webhook-token or PAYOUTS_WEBHOOK_TOKEN to keep the URL stable)');
      io.out(`  each hint is confirmed with the status API (payouts and payins) in ${db.where}; Ctrl-C stops`);
    }
    o.onListening?.(rx.url);
    await new Promise<void>((resolve) => {
      if (!io.stopSignal || io.stopSignal.aborted) return resolve();
      io.stopSignal.addEventListener('abort', () => resolve(), { once: true });
    });
    await rx.close();
    await rx.idle();
    const stats: ReceiverStats = rx.stats();
    if (io.json) io.out(JSON.stringify({ stopped: true, stats }));
    else {
      // One line, what was shed included only when something was (a flood, a stop with hints waiting).
      const shed = stats.deduplicated + stats.dropped + stats.droppedOnStop + stats.refusedConnections + stats.idleClosed;
      io.out(
        `Stopped: ${stats.received} received, ${stats.hints} hints (${Object.entries(stats.outcomes).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}), ${stats.duplicates} duplicates, ${stats.malformed} malformed, ${stats.badToken} with a wrong token` +
          (shed > 0
            ? `; ${stats.deduplicated} hints folded into one for the same order_id, ${stats.dropped} dropped (queue full), ${stats.droppedOnStop} dropped at the stop, ${stats.refusedConnections} connections refused (over the cap), ${stats.idleClosed} closed idle`
            : ''),
      );
    }
    return 0;
  } finally {
    await client.close();
    await db.close();
  }
}
