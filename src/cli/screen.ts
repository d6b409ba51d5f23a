/**
 * stderr as people and programs see it: log lines, progress and problems, never results (stdout keeps those).
 *
 * On a terminal a status block (the progress display) sits at the bottom; a log line is written above it
 * (the block is cleared, the line printed, the block drawn again), so the two never garble each other.
 * In JSON mode (`--log-format json`) every line is a JSON object, so stderr stays machine-readable whole.
 */
export interface ScreenOptions {
  /** Where to write (process.stderr in the program; a collector in tests). */
  write: (text: string) => void;
  /** A terminal: the status block is drawn and redrawn in place. */
  tty: boolean;
  /** Every line as a JSON object instead of text. */
  json?: boolean;
  /** Columns of the terminal, for cutting the status block to fit. Default 100. */
  columns?: () => number;
  /** ANSI colours (a terminal without NO_COLOR). */
  color?: boolean;
  now?: () => number;
}

export type LineLevel = 'info' | 'warn' | 'error';
const PINO_LEVEL: Record<LineLevel, number> = { info: 30, warn: 40, error: 50 };

export class Screen {
  private block: string[] = [];
  private drawn = 0;
  private readonly finishers: (() => void)[] = [];

  constructor(private readonly o: ScreenOptions) {}

  get tty(): boolean {
    return this.o.tty;
  }
  get json(): boolean {
    return this.o.json ?? false;
  }
  get color(): boolean {
    return (this.o.color ?? false) && this.o.tty;
  }
  columns(): number {
    return Math.max(40, this.o.columns?.() ?? 100);
  }

  /** One line for people (or one JSON object with `--log-format json`), above the status block. */
  line(text: string, level: LineLevel = 'info', fields: Record<string, unknown> = {}): void {
    if (this.json) {
      this.raw(JSON.stringify({ level: PINO_LEVEL[level], time: (this.o.now ?? Date.now)(), msg: text, ...fields }) + '\n');
      return;
    }
    const body = text.endsWith('\n') ? text.slice(0, -1) : text;
    // On a terminal a long line is broken between words (the terminal would break it mid-word, mid-amount).
    this.raw((this.o.tty ? wrapWords(body, this.columns() - 1) : body) + '\n');
  }

  /** Text written as is (a log formatter's output, already one or more whole lines). */
  raw(text: string): void {
    if (this.drawn > 0) {
      this.o.write(this.erase());
      this.o.write(text);
      this.o.write(this.draw());
    } else {
      this.o.write(text);
    }
  }

  /**
   * Runs `write` (a line on stdout, which shares the terminal) with the status block lifted out of the way
   * and drawn again below it: the block's cursor movements assume nothing else was written under it.
   */
  around(write: () => void): void {
    if (this.drawn === 0) return write();
    this.o.write(this.erase());
    write();
    this.o.write(this.draw());
  }

  /** Replaces the status block (terminal only; elsewhere it is ignored: plain lines go through `line`). */
  status(lines: string[]): void {
    if (!this.o.tty) return;
    const width = this.columns() - 1;
    const next = lines.map((l) => cut(l, width));
    if (next.length === this.block.length && next.every((l, i) => l === this.block[i]) && this.drawn === next.length) return;
    const erase = this.drawn > 0 ? this.erase() : '';
    this.block = next;
    this.o.write(erase + this.draw());
  }

  /** Removes the status block (before a prompt, and at the end). */
  clearStatus(): void {
    if (this.drawn > 0) this.o.write(this.erase());
    this.block = [];
  }

  /** Runs at the end of the command (repeated-warning counts, the last progress line). */
  onFinish(fn: () => void): void {
    this.finishers.push(fn);
  }

  finish(): void {
    for (const f of this.finishers.splice(0)) {
      try {
        f();
      } catch {
        // The end of the program: a formatter's failure must not hide the exit code.
      }
    }
    this.clearStatus();
  }

  private drawnLines: string[] = [];
  private draw(): string {
    this.drawn = this.block.length;
    this.drawnLines = [...this.block];
    return this.block.length ? this.block.join('\n') + '\n' : '';
  }

  /**
   * Cursor up over the block, then clear to the end of the screen. The rows it takes are counted at the
   * terminal's width now: after a resize to fewer columns each line of the block wraps onto more rows, and
   * moving up only one row a line would leave a stale copy of the block on the screen.
   */
  private erase(): string {
    const cols = Math.max(1, this.o.columns?.() ?? 100);
    const n = this.drawnLines.reduce((rows, l) => rows + Math.max(1, Math.ceil(visibleLength(l) / cols)), 0);
    this.drawn = 0;
    this.drawnLines = [];
    return n > 0 ? `\x1b[${n}A\r\x1b[J` : '';
  }
}

/** Characters a line shows (ANSI colour codes do not count). */
export function visibleLength(line: string): number {
  return line.replace(/\x1b\[[0-9;]*m/g, '').length;
}

/** Cuts a line to `width` visible characters (ANSI colour codes do not count). */
export function cut(line: string, width: number): string {
  let visible = 0;
  let out = '';
  let coloured = false;
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '\x1b') {
      const m = /^\x1b\[[0-9;]*m/.exec(line.slice(i));
      if (m) {
        out += m[0];
        coloured = true;
        i += m[0].length - 1;
        continue;
      }
    }
    if (visible >= width) return coloured ? out + '\x1b[0m' : out;
    out += line[i];
    visible++;
  }
  return out;
}

/**
 * Breaks each line longer than `width` between words; the lines it continues onto are indented by two
 * spaces. A word longer than the width stays whole (the terminal wraps it; cutting would lose characters).
 */
export function wrapWords(text: string, width: number): string {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (visibleLength(line) <= width) {
      out.push(line);
      continue;
    }
    const indent = /^\s*/.exec(line)![0];
    const words = line.slice(indent.length).split(' ');
    let cur = indent + words[0]!;
    for (const word of words.slice(1)) {
      if (visibleLength(cur) + 1 + visibleLength(word) <= width) cur += ` ${word}`;
      else {
        out.push(cur);
        cur = `${indent}  ${word}`;
      }
    }
    out.push(cur);
  }
  return out.join('\n');
}
