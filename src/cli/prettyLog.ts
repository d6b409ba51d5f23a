/**
 * pino's JSON lines made readable for a person at a terminal, each repeated warning printed once with a
 * count. During an API outage the engine logs the same warning for every payout and every retry (hundreds
 * of lines); a person needs "what is wrong, how often, and the latest example", a few lines in all.
 *
 * The first occurrence of a message is printed at once with its details; later ones with the same level and
 * message are counted and summarised ("… 37 more times in the last 10 s; latest: …") at most once per
 * `repeatEveryMs`, and whatever is left at the end by `flush()`. Redaction happened before (pino's redact):
 * this only formats what pino would have written.
 */
export interface PrettyLogOptions {
  /** How often counted repeats of one message are summarised. Default 10000 ms. */
  repeatEveryMs?: number;
  color?: boolean;
  now?: () => number;
}

const LEVELS: Record<number, { word: string; color: string }> = {
  10: { word: 'trace', color: '\x1b[90m' },
  20: { word: 'debug', color: '\x1b[90m' },
  30: { word: 'info', color: '\x1b[36m' },
  40: { word: 'warning', color: '\x1b[33m' },
  50: { word: 'error', color: '\x1b[31m' },
  60: { word: 'fatal', color: '\x1b[31m' },
};

/** Fields pino adds that a person does not need on every line. */
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'v']);

interface Repeats {
  /** Counted since the last line printed for this message. */
  pending: number;
  /** When the last line for this message was printed. */
  printedAt: number;
  latest: Record<string, unknown>;
  /** All occurrences, for the closing count. */
  total: number;
}

export class PrettyLog {
  private readonly seen = new Map<string, Repeats>();
  private partial = '';
  private timer: NodeJS.Timeout | undefined;
  private readonly every: number;
  private readonly now: () => number;

  constructor(
    private readonly print: (text: string) => void,
    private readonly o: PrettyLogOptions = {},
  ) {
    this.every = o.repeatEveryMs ?? 10_000;
    this.now = o.now ?? Date.now;
  }

  /** pino's destination interface: one or more newline-terminated JSON lines. */
  write(chunk: string): boolean {
    const text = this.partial + chunk;
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    for (const l of lines) if (l.trim()) this.entry(l);
    return true;
  }

  /** Prints the counts not yet printed (at the end of the command, and every `repeatEveryMs`). */
  flush(force = true): void {
    const now = this.now();
    for (const [key, r] of this.seen) {
      if (r.pending === 0) continue;
      if (!force && now - r.printedAt < this.every) continue;
      const [level, msg] = splitKey(key);
      const secs = Math.max(1, Math.round((now - r.printedAt) / 1000));
      this.print(
        this.head(level) +
          `${msg} — ${r.pending} more time${r.pending === 1 ? '' : 's'} in the last ${secs} s (${r.total} in all)` +
          fieldsText(r.latest, '; latest: ') +
          '\n',
      );
      r.pending = 0;
      r.printedAt = now;
    }
    if (force) this.stopTimer();
  }

  private entry(line: string): void {
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.print(line + '\n');
      return;
    }
    const level = typeof rec['level'] === 'number' ? rec['level'] : 30;
    const msg = typeof rec['msg'] === 'string' ? rec['msg'] : '';
    const key = `${level}\u0000${msg}`;
    const r = this.seen.get(key);
    if (!r) {
      this.seen.set(key, { pending: 0, printedAt: this.now(), latest: rec, total: 1 });
      this.print(this.head(level) + msg + fieldsText(rec, ' — ') + '\n');
      return;
    }
    r.pending++;
    r.total++;
    r.latest = rec;
    if (this.now() - r.printedAt >= this.every) this.flush(false);
    else this.startTimer();
  }

  private head(level: number): string {
    const l = LEVELS[level] ?? { word: `level ${level}`, color: '' };
    return this.o.color && l.color ? `${l.color}${l.word}:\x1b[0m ` : `${l.word}: `;
  }

  private startTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.flush(false);
      if ([...this.seen.values()].every((r) => r.pending === 0)) this.stopTimer();
    }, this.every);
    this.timer.unref();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

function splitKey(key: string): [number, string] {
  const i = key.indexOf('\u0000');
  return [Number(key.slice(0, i)), key.slice(i + 1)];
}

/** "orderId=PO12 err=\"connect ECONNREFUSED\"" from a record's own fields. */
export function fieldsText(rec: Record<string, unknown>, lead: string): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(rec)) {
    if (HIDDEN.has(k) || v === undefined) continue;
    parts.push(`${k}=${valueText(v)}`);
  }
  if (parts.length === 0) return '';
  const text = parts.join(' ');
  return lead + (text.length > 400 ? text.slice(0, 399) + '…' : text);
}

function valueText(v: unknown): string {
  if (v && typeof v === 'object' && 'message' in v && typeof (v as { message: unknown }).message === 'string') return quote((v as { message: string }).message);
  if (typeof v === 'string') return quote(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return JSON.stringify(v);
}

function quote(s: string): string {
  return /[\s"=]/.test(s) || s === '' ? JSON.stringify(s) : s;
}
