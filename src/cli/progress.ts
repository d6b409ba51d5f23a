import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { RunEvent } from '../engine/events.js';
import { formatRupees, formatRupeesIndian } from '../money.js';
import { isAlive, isLocalTag, PROCESS_ID } from '../proc.js';
import type { Screen } from './screen.js';
import { paiseOf, type StatusTotalsLike } from './summary.js';

/**
 * Live progress of a run (or reconcile, or cancel) for whoever watches: a status block redrawn in place on
 * a terminal, a plain line every ~10 s (and at each phase change) without one, and, on the embedded
 * database, a small snapshot file that `payouts status <batch> --follow` reads from another terminal (the
 * running process holds the database; nobody else can open it).
 *
 * The counts come from the database (the report's summary), never from counting events: events only say
 * that something moved, and what is shown must be what is stored. The summary is asked for at most once a
 * second, and less often when it is slow (never more than a tenth of the time), so a big batch on PGlite is
 * not slowed by being watched.
 */

/** What a watcher sees; also the snapshot file's content (JSON-safe: amounts are rupee strings). */
export interface ProgressState {
  version: 1;
  batch: string;
  /** Who writes it: "tag:pid:starttime" (src/proc.ts), so a reader can tell whether the run still lives. */
  process: string;
  command: string;
  phase: Phase;
  started_at: number;
  updated_at: number;
  ingest_rows: number;
  ingest_pass: number;
  to_send: number | null;
  to_send_amount: string | null;
  statuses: StatusTotalsLike | null;
  checked: number;
  check_total: number | null;
  /** Payouts an earlier run left unfinished, taken over by this one (asked about before anything is sent). */
  recovering: number;
  api_trouble: string | null;
  /** This run's rows being sent (claimed), and of them those whose request is on the wire; the rest are not sent yet. */
  claimed: number;
  on_wire: number;
  /** Per second, over the last ~15 s; null until it can be measured. */
  rate: number | null;
  eta_s: number | null;
  done: boolean;
  exit_code: number | null;
  message: string | null;
}

export type Phase = 'start' | 'ingest' | 'preflight' | 'confirm' | 'send' | 'poll' | 'report' | 'reconcile' | 'done';

export interface ProgressOptions {
  screen: Screen;
  batch: string;
  command: string;
  /** The batch's statuses from the database. */
  refresh?: (() => Promise<StatusTotalsLike>) | undefined;
  /** Write the state here every second (embedded database only). */
  snapshotFile?: string | undefined;
  /** Plain lines without a terminal: one every this many ms, and one at every phase change. Default 10000. */
  plainEveryMs?: number;
  /** Redraw of the terminal block. Default 200 ms. */
  drawEveryMs?: number;
  now?: () => number;
}

export function newState(batch: string, command: string, now: number): ProgressState {
  return {
    version: 1,
    batch,
    process: PROCESS_ID,
    command,
    phase: 'start',
    started_at: now,
    updated_at: now,
    ingest_rows: 0,
    ingest_pass: 1,
    to_send: null,
    to_send_amount: null,
    statuses: null,
    checked: 0,
    check_total: null,
    recovering: 0,
    api_trouble: null,
    claimed: 0,
    on_wire: 0,
    rate: null,
    eta_s: null,
    done: false,
    exit_code: null,
    message: null,
  };
}

/** Applies one engine event to the state (pure apart from the state object). Returns true on a phase change. */
export function applyEvent(s: ProgressState, e: RunEvent, now: number): boolean {
  s.updated_at = now;
  switch (e.type) {
    case 'phase': {
      const changed = s.phase !== e.phase;
      s.phase = e.phase;
      return changed;
    }
    case 'ingest_progress':
      // A corrected copy is read twice: the count starts again.
      if (e.rows < s.ingest_rows) s.ingest_pass++;
      s.ingest_rows = e.rows;
      return false;
    case 'ingested':
      s.ingest_rows = e.ingest.rows;
      return false;
    case 'preflight':
      s.to_send = e.preflight.toSend;
      s.to_send_amount = formatRupees(e.preflight.amountPaise);
      return false;
    case 'recovering':
      s.recovering += e.rows;
      return false;
    case 'checked':
      s.checked = e.checked;
      return false;
    case 'api_trouble':
      s.api_trouble = e.message;
      return false;
    case 'api_ok':
      s.api_trouble = null;
      return false;
    case 'wire':
      s.claimed = e.claimed;
      s.on_wire = e.onWire;
      return false;
    case 'stopping':
      s.api_trouble = e.reason;
      return false;
    case 'row':
      return false;
  }
}

/** Rows that can still be paid or are paid (not invalid, not cancelled). */
function eligible(st: StatusTotalsLike): number {
  let n = 0;
  for (const [k, v] of Object.entries(st.counts)) if (k !== 'invalid' && k !== 'cancelled') n += v;
  return n;
}

/** The measure a phase moves forward, and its end when known. */
export function measure(s: ProgressState): { done: number; total: number | null; unit: string; label: string } {
  const st = s.statuses;
  switch (s.phase) {
    case 'ingest':
      return { done: s.ingest_rows, total: null, unit: 'rows read', label: s.ingest_pass > 1 ? `Reading the file (pass ${s.ingest_pass})` : 'Reading the file' };
    case 'reconcile':
      return { done: s.checked, total: s.check_total, unit: 'checked', label: 'Reconciling with the API' };
    case 'preflight':
      return { done: 0, total: null, unit: '', label: 'Checking the balance' };
    case 'confirm':
      return { done: 0, total: null, unit: '', label: 'Waiting for confirmation' };
    case 'report':
    case 'done':
      if (st) return { done: eligible(st) - st.counts.not_sent, total: eligible(st), unit: 'sent', label: s.phase === 'done' ? 'Done' : 'Writing the report' };
      return { done: 0, total: null, unit: '', label: s.phase === 'done' ? 'Done' : 'Writing the report' };
    default: {
      if (!st) return { done: 0, total: s.to_send, unit: 'sent', label: 'Sending' };
      const all = eligible(st);
      if (st.counts.not_sent === 0 && st.counts.sending === 0 && st.counts.pending > 0) {
        const final = st.counts.approved + st.counts.rejected + st.counts.failed + st.counts.needs_review;
        return { done: final, total: all, unit: 'final', label: 'Awaiting the bank' };
      }
      return { done: all - st.counts.not_sent, total: all, unit: 'sent', label: 'Sending' };
    }
  }
}

/**
 * The counts in the order a payout moves, each in three lengths (words, short, numbers only), so a narrow
 * terminal drops words before it drops money. "Sending" is told honestly: of the rows this run claimed,
 * those whose request is on the wire, and those still waiting for their turn (not sent yet); a 429 storm
 * shows as waiting, never as money that may have moved.
 */
type Part = [long: string, short: string, tiny: string];

function sendingPart(s: ProgressState, c: StatusTotalsLike['counts']): Part {
  const waiting = Math.max(0, Math.min(c.sending, s.claimed - s.on_wire));
  const onWire = Math.max(0, c.sending - waiting);
  if (c.sending === 0) return ['sending 0', 'sending 0', 'sending 0'];
  if (waiting === 0) return [`sending ${c.sending} (on the wire, outcome not known yet)`, `sending ${c.sending}`, `sending ${c.sending}`];
  return [
    `sending ${c.sending}: ${onWire} on the wire, ${waiting} waiting for their turn (not sent yet)`,
    `sending ${onWire}, ${waiting} waiting (not sent)`,
    `sending ${onWire}+${waiting} waiting`,
  ];
}

function countsParts(s: ProgressState, st: StatusTotalsLike): { money: Part; open: Part[]; final: Part[] } {
  const r = (k: keyof StatusTotalsLike['counts']) => formatRupeesIndian(paiseOf(st, k));
  const c = st.counts;
  const moved = paiseOf(st, 'approved') + paiseOf(st, 'pending') + paiseOf(st, 'sending');
  const money: Part = [
    `moved so far ${formatRupeesIndian(moved)} (paid ${r('approved')}, at the bank ${r('pending')}, in flight ${r('sending')})`,
    `moved so far ${formatRupeesIndian(moved)}`,
    `moved ${formatRupeesIndian(moved)}`,
  ];
  const open: Part[] = [
    [`not sent ${c.not_sent} (${r('not_sent')})`, `not sent ${c.not_sent} (${r('not_sent')})`, `not sent ${c.not_sent}`],
    sendingPart(s, c),
    [`sent, awaiting the bank ${c.pending} (${r('pending')})`, `at the bank ${c.pending} (${r('pending')})`, `bank ${c.pending}`],
  ];
  const final: Part[] = [
    [`paid ${c.approved} (${r('approved')})`, `paid ${c.approved} (${r('approved')})`, `paid ${c.approved}`],
    [`rejected ${c.rejected}`, `rejected ${c.rejected}`, `rej ${c.rejected}`],
    [`refused by the API ${c.failed}`, `refused ${c.failed}`, `ref ${c.failed}`],
  ];
  if (c.needs_review) final.push([`needs review ${c.needs_review}`, `review ${c.needs_review}`, `rev ${c.needs_review}`]);
  if (c.invalid) final.push([`invalid ${c.invalid}`, `invalid ${c.invalid}`, `inv ${c.invalid}`]);
  if (c.cancelled) final.push([`cancelled ${c.cancelled}`, `cancelled ${c.cancelled}`, `canc ${c.cancelled}`]);
  return { money, open, final };
}

/**
 * The parts joined, each as long as the width allows: the longest part is shortened first, one step at a
 * time, until the line fits (the shortest forms if nothing fits: the screen cuts the line).
 */
function fit(prefix: string, parts: Part[], sep: string, width: number): string {
  const level = parts.map(() => 0);
  const text = () => prefix + parts.map((p, i) => p[level[i]!]).join(sep);
  while (text().length > width) {
    let best = -1;
    for (let i = 0; i < parts.length; i++) {
      if (level[i]! < 2 && (best < 0 || parts[i]![level[i]!].length > parts[best]![level[best]!].length)) best = i;
    }
    if (best < 0) break;
    level[best]!++;
  }
  return text();
}

function countsText(s: ProgressState, st: StatusTotalsLike, sep: string): string {
  const p = countsParts(s, st);
  return [...p.open, ...p.final].map((x) => x[0]).join(sep);
}

export function durationText(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

function rateText(s: ProgressState): string {
  const parts: string[] = [];
  if (s.rate !== null) parts.push(`${s.rate >= 10 ? Math.round(s.rate) : s.rate.toFixed(1)}/s`);
  if (s.eta_s !== null) parts.push(`ETA ${durationText(s.eta_s)}`);
  return parts.join(', ');
}

const SPIN = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * The terminal's status block, every line fitted to `width` columns: words go before numbers (money last of
 * all), so nothing is cut mid-amount at 80 columns.
 */
export function terminalLines(s: ProgressState, now: number, width: number): string[] {
  const w = Math.max(20, width - 1);
  const m = measure(s);
  const spin = SPIN[Math.floor(now / 100) % SPIN.length];
  const rt = rateText(s);
  const heads: string[] = [];
  if (m.total !== null && m.total > 0) {
    const frac = Math.min(1, Math.max(0, m.done / m.total));
    const pct = `${String(Math.floor(frac * 100)).padStart(3)}%`;
    const count = `${m.done}/${m.total} ${m.unit}`;
    for (const barWidth of [Math.max(10, Math.min(30, w - 60)), 10, 0]) {
      const full = Math.round(frac * barWidth);
      const bar = barWidth ? `  [${'█'.repeat(full)}${'░'.repeat(barWidth - full)}]` : '';
      heads.push(`${spin} ${m.label}${bar} ${pct}  ${count}${rt ? `  ${rt}` : ''}`);
    }
    heads.push(`${spin} ${m.label} ${pct} ${m.done}/${m.total}`);
  } else {
    heads.push(`${spin} ${m.label}${m.unit ? `  ${m.done} ${m.unit}` : ''}${rt ? `  ${rt}` : ''}`);
  }
  const lines = [heads.find((h) => h.length <= w) ?? heads[heads.length - 1]!];
  if (s.api_trouble) lines.push(fit('  ', [[`API trouble: ${s.api_trouble}`, `API: ${s.api_trouble}`, `API: ${s.api_trouble.split(':')[0]}`]], '', w));
  if (s.statuses && s.phase !== 'ingest') {
    const p = countsParts(s, s.statuses);
    if (s.phase !== 'report' && s.phase !== 'done') lines.push(fit('  ', [p.money], '', w));
    lines.push(fit('  ', p.open, ' · ', w), fit('  ', p.final, ' · ', w));
  }
  if (s.recovering) lines.push(fit('  ', [[`asking about ${s.recovering} payouts an earlier run left unfinished before anything else`, `asking about ${s.recovering} unfinished payouts first`, `asking ${s.recovering} first`]], '', w));
  return lines;
}

/** One plain line (no terminal: cron's mail, a log file). */
export function plainLine(s: ProgressState, now: number): string {
  const m = measure(s);
  const elapsed = durationText((now - s.started_at) / 1000);
  let text = `progress ${s.batch}: ${m.label.charAt(0).toLowerCase()}${m.label.slice(1)}`;
  if (m.unit) text += m.total !== null ? `, ${m.done}/${m.total} ${m.unit}` : `, ${m.done} ${m.unit}`;
  if (s.statuses && s.phase !== 'ingest') text += `; ${countsText(s, s.statuses, ', ')}`;
  const rt = rateText(s);
  if (rt) text += `; ${rt}`;
  if (s.api_trouble) text += `; API trouble: ${s.api_trouble}`;
  return `${text} [${elapsed}]`;
}

export class Progress {
  readonly state: ProgressState;
  private readonly now: () => number;
  private samples: [number, number][] = [];
  private sampledUnit = '';
  private timers: NodeJS.Timeout[] = [];
  private refreshing: Promise<void> | undefined;
  private nextRefreshAt = 0;
  private lastPlainAt = 0;
  private dirty = true;
  private snapshotFailed = false;

  constructor(private readonly o: ProgressOptions) {
    this.now = o.now ?? Date.now;
    this.state = newState(o.batch, o.command, this.now());
  }

  start(): void {
    const { screen } = this.o;
    if (screen.tty) this.timers.push(setInterval(() => this.tick(), this.o.drawEveryMs ?? 200));
    else this.timers.push(setInterval(() => this.tick(), Math.min(1000, this.o.plainEveryMs ?? 10_000)));
    if (this.o.snapshotFile) this.timers.push(setInterval(() => this.writeSnapshot(), 1000));
    for (const t of this.timers) t.unref();
    this.writeSnapshot();
  }

  /** A phase the engine does not announce (reconcile), with the total it works towards. */
  setPhase(phase: Phase, total?: number): void {
    this.state.phase = phase;
    if (total !== undefined) this.state.check_total = total;
    this.samples = [];
    this.nextRefreshAt = 0;
    this.dirty = true;
    if (!this.o.screen.tty) this.plain(this.now());
  }

  /** For `onEvent`. */
  event(e: RunEvent): void {
    const now = this.now();
    const before = this.state.phase;
    const trouble = this.state.api_trouble;
    const changed = applyEvent(this.state, e, now);
    this.dirty = true;
    // Without a terminal the block is never drawn: trouble with the API gets a line of its own, at once.
    if (!this.o.screen.tty && e.type === 'api_trouble' && e.message !== trouble) this.o.screen.line(`warning: ${e.message}`, 'warn');
    if (!this.o.screen.tty && e.type === 'api_ok' && trouble) this.o.screen.line('the API answers again', 'info');
    if (e.type === 'recovering' && this.state.recovering === e.rows) {
      this.o.screen.line(`Asking about payouts an earlier run left unfinished before anything else (status first, never sent blindly)`);
    }
    if (!changed) return;
    this.samples = [];
    if (this.state.phase === 'confirm') {
      // The prompt needs the screen: no status block under it.
      this.o.screen.clearStatus();
      return;
    }
    if (before === 'ingest' || this.state.phase === 'send' || this.state.phase === 'report' || this.state.phase === 'reconcile') {
      // Counts at once when sending starts, not a tick later: a watcher's first look already has them.
      this.nextRefreshAt = 0;
      this.maybeRefresh(now);
    }
    // The line at a phase change carries the counts read for it, not the ones from a moment before.
    if (!this.o.screen.tty) {
      if (this.refreshing) void this.refreshing.then(() => this.plain(this.now()));
      else this.plain(now);
    }
  }

  /** The end: the final counts, one last line or block, the snapshot marked done. */
  async stop(end?: { exitCode: number; message: string; statuses?: StatusTotalsLike | undefined }): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.refreshing?.catch(() => {});
    if (end?.statuses) this.state.statuses = end.statuses;
    this.state.phase = 'done';
    this.state.done = true;
    this.state.exit_code = end?.exitCode ?? null;
    this.state.message = end?.message ?? null;
    this.state.updated_at = this.now();
    this.state.eta_s = null;
    this.o.screen.clearStatus();
    this.writeSnapshot();
  }

  private tick(): void {
    const now = this.now();
    this.maybeRefresh(now);
    this.sample(now);
    if (this.o.screen.tty) {
      if (this.state.phase !== 'confirm' && this.state.phase !== 'start') this.o.screen.status(terminalLines(this.state, now, this.o.screen.columns()));
    } else if (now - this.lastPlainAt >= (this.o.plainEveryMs ?? 10_000)) {
      this.plain(now);
    }
  }

  private plain(now: number): void {
    if (this.state.phase === 'confirm' || this.state.phase === 'start') return;
    this.lastPlainAt = now;
    this.o.screen.line(plainLine(this.state, now), 'info', { progress: true });
  }

  private maybeRefresh(now: number): void {
    const p = this.state.phase;
    if (!this.o.refresh || this.refreshing || now < this.nextRefreshAt) return;
    if (p !== 'send' && p !== 'poll' && p !== 'report' && p !== 'reconcile') return;
    if (!this.dirty && this.nextRefreshAt !== 0 && now - this.nextRefreshAt < 5000) return;
    this.dirty = false;
    const t0 = this.now();
    this.refreshing = this.o
      .refresh()
      .then((st) => {
        this.state.statuses = st;
        this.state.updated_at = this.now();
        this.writeSnapshot();
      })
      .catch(() => {
        // A failed read is shown as stale numbers, never as a failure of the run.
      })
      .finally(() => {
        const took = this.now() - t0;
        this.nextRefreshAt = this.now() + Math.max(1000, 10 * took);
        this.refreshing = undefined;
      });
  }

  private sample(now: number): void {
    const m = measure(this.state);
    if (!m.unit) {
      this.state.rate = null;
      this.state.eta_s = null;
      return;
    }
    // "sent" and "final" count different things: the rate starts again when the measure changes.
    if (m.unit !== this.sampledUnit) {
      this.samples = [];
      this.sampledUnit = m.unit;
      this.state.rate = null;
      this.state.eta_s = null;
    }
    this.samples.push([now, m.done]);
    while (this.samples.length > 2 && now - this.samples[0]![0] > 15_000) this.samples.shift();
    const [t0, v0] = this.samples[0]!;
    const dt = (now - t0) / 1000;
    if (dt < 2) return;
    const rate = Math.max(0, (m.done - v0) / dt);
    this.state.rate = rate;
    const left = m.total !== null ? m.total - m.done : null;
    this.state.eta_s = left !== null && rate > 0 ? left / rate : null;
  }

  private writeSnapshot(): void {
    if (!this.o.snapshotFile || this.snapshotFailed) return;
    try {
      writeSnapshotFile(this.o.snapshotFile, this.state);
    } catch (err) {
      this.snapshotFailed = true;
      this.o.screen.line(`note: cannot write the progress file ${this.o.snapshotFile} (${(err as Error).message}): \`payouts status --follow\` will not see this run`, 'warn');
    }
  }
}

/** Where a batch's progress snapshot lives under the data directory. */
export function snapshotPath(dataDir: string, batch: string): string {
  return path.join(dataDir, 'progress', `${encodeURIComponent(batch).replace(/\./g, '%2E')}.json`);
}

/** Written whole or not at all (a temporary file renamed over), readable by the owner only. */
export function writeSnapshotFile(file: string, state: ProgressState): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state) + '\n', { mode: 0o600 });
  renameSync(tmp, file);
}

export function readSnapshotFile(file: string): ProgressState | undefined {
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as ProgressState;
    return s.version === 1 ? s : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the process that writes a snapshot still runs: on this host by its pid and start time; a writer
 * on another host or pid namespace (a shared volume) by the freshness of its last write.
 */
export function writerAlive(s: ProgressState, now = Date.now()): boolean {
  const [tag = '', pid = '', start = ''] = s.process.split(':');
  if (isLocalTag(tag)) return isAlive(Number(pid), start || undefined);
  return now - s.updated_at < 5000;
}
