import { listPayins, type PayinRow } from '../db/payins.js';
import { UsageError } from '../errors.js';
import { formatRupees, formatRupeesIndian } from '../money.js';
import { printJson, withDb, type CommandIO } from './context.js';

export interface PayinsCommandOptions {
  /** Approved, Rejected, Pending (any case). */
  status?: string | undefined;
  /** "2026-11-01" (local midnight), an ISO time, or an age like "7d", "12h", "30m". */
  since?: string | undefined;
  /** Clock, for tests. */
  now?: () => number;
}

/** "2026-11-01" -> local midnight; "2026-11-01T10:00:00Z" -> that instant; "7d" / "12h" / "30m" -> that long ago. */
export function parseSince(text: string, now = Date.now()): Date {
  const t = text.trim();
  const age = /^(\d+)\s*(d|h|m)$/.exec(t);
  if (age) return new Date(now - Number(age[1]) * { d: 86_400_000, h: 3_600_000, m: 60_000 }[age[2] as 'd' | 'h' | 'm']);
  const day = /^(\d{4})-(\d{2})-(\d{2})$/.exec(t);
  if (day) {
    const d = new Date(Number(day[1]), Number(day[2]) - 1, Number(day[3]));
    if (d.getMonth() === Number(day[2]) - 1 && d.getDate() === Number(day[3])) return d;
  } else if (/^\d{4}-\d{2}-\d{2}T/.test(t) && !Number.isNaN(Date.parse(t))) {
    return new Date(Date.parse(t));
  }
  throw new UsageError(`--since must be a date like 2026-11-01, a time like 2026-11-01T10:00:00+05:30, or an age like 7d, 12h or 30m; got "${text}"`);
}

const money = (p: string | number | null) => (p === null ? null : formatRupees(BigInt(p)));
const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);

/** A stored payin for --json: snake_case, amounts as rupee decimal strings. */
export function payinRowJson(r: PayinRow): Record<string, unknown> {
  const ev = r.raw_event as { event?: string; received_at?: string } | null;
  return {
    order_id: r.order_id,
    status: r.status,
    amount: money(r.amount_paise),
    request_amount: money(r.request_amount_paise),
    user_id: r.user_id,
    method: r.method,
    utr: r.utr,
    bank_upi: r.bank_upi,
    bank_name: r.bank_name,
    comments: r.comments,
    time_of_processing: r.time_of_processing,
    api_created_at: iso(r.api_created_at),
    api_updated_at: iso(r.api_updated_at),
    first_seen_at: iso(r.first_seen_at),
    updated_at: iso(r.updated_at),
    last_checked_at: iso(r.last_checked_at),
    last_webhook_event: ev?.event ?? null,
    last_webhook_at: ev?.received_at ?? null,
  };
}

/** `payouts payins [--status S] [--since 2026-11-01|7d]`: the payins stored (looked up or confirmed after a webhook). */
export async function payinsCommand(io: CommandIO, o: PayinsCommandOptions = {}): Promise<number> {
  const since = o.since ? parseSince(o.since, (o.now ?? Date.now)()) : undefined;
  return withDb(io, async (db) => {
    const rows = await listPayins(db.knex, { status: o.status, since });
    if (io.json) {
      printJson(io, { count: rows.length, payins: rows.map(payinRowJson) });
      return 0;
    }
    const filter = [o.status ? `status ${o.status}` : '', since ? `since ${since.toISOString()}` : ''].filter(Boolean).join(', ');
    if (rows.length === 0) {
      io.out(`No payins stored${filter ? ` (${filter})` : ''}. \`payouts payin-status <order-id>\` looks one up; \`payouts webhooks\` stores them as they arrive.`);
      return 0;
    }
    io.out(`${rows.length} payin${rows.length === 1 ? '' : 's'}${filter ? ` (${filter})` : ''}:`);
    for (const r of rows) {
      const amount = r.amount_paise === null ? '?' : formatRupeesIndian(BigInt(r.amount_paise));
      const when = iso(r.api_created_at) ?? iso(r.first_seen_at);
      io.out(`  ${r.order_id}  ${r.status.padEnd(8)}  ${amount.padStart(14)}  ${r.method ?? ''}${r.utr ? `  UTR ${r.utr}` : ''}  ${when}`);
    }
    const approved = rows.filter((r) => r.status === 'Approved' && r.amount_paise !== null).reduce((sum, r) => sum + BigInt(r.amount_paise!), 0n);
    io.out(`Approved total: ${formatRupeesIndian(approved)}`);
    return 0;
  });
}
