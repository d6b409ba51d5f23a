import { spawn as ptySpawn, type IPty } from '@lydell/node-pty';
import { MAIN, ROOT, testDataHome } from './cli.js';

/**
 * The built command in a pseudo-terminal: what a person at a keyboard sees and types. stdin, stdout and
 * stderr are all the terminal, unless the command line given to `shell` redirects one (a pipe to tee).
 */
export interface PtyRun {
  pty: IPty;
  /** Everything the terminal showed so far (ANSI codes included). */
  output(): string;
  /** Types into the terminal. */
  type(text: string): void;
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<{ exitCode: number; signal?: number | undefined }>;
}

export function ptyRun(file: string, args: string[], opts: { env?: Record<string, string>; cwd?: string; cols?: number } = {}): PtyRun {
  const pty = ptySpawn(file, args, {
    name: 'xterm-256color',
    cols: opts.cols ?? 120,
    rows: 40,
    cwd: opts.cwd ?? ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', XDG_DATA_HOME: testDataHome(), TERM: 'xterm-256color', ...opts.env },
  });
  let out = '';
  const waiters = new Set<() => void>();
  pty.onData((d) => {
    out += d;
    for (const w of [...waiters]) w();
  });
  const exited = new Promise<{ exitCode: number; signal?: number | undefined }>((resolve) => pty.onExit((e) => resolve(e)));
  return {
    pty,
    output: () => out,
    type: (text) => pty.write(text),
    exited,
    waitFor: (re, timeoutMs = 60_000) =>
      new Promise<string>((resolve, reject) => {
        const check = () => {
          const m = re.exec(out);
          if (m) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(m[0]);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${re} in the terminal; it showed:\n${out}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
  };
}

/** `payouts <args>` in a pseudo-terminal. */
export function ptyCli(args: string[], opts: { env?: Record<string, string>; cwd?: string; cols?: number } = {}): PtyRun {
  return ptyRun(process.execPath, [MAIN, ...args], opts);
}

/** A shell command line in a pseudo-terminal (for pipes: `payouts run … | tee log`). */
export function ptyShell(commandLine: string, opts: { env?: Record<string, string>; cwd?: string } = {}): PtyRun {
  return ptyRun('bash', ['-c', commandLine], opts);
}

/** The terminal's text without colours and cursor movement (what remains readable in a log). */
export function plain(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
}

/**
 * What a person sees: the raw output played into a headless terminal (xterm.js) of the same width, every
 * line of its scrollback and screen, with cursor movements and erasures applied.
 */
export async function rendered(raw: string, cols = 120): Promise<string[]> {
  const { Terminal } = (await import('@xterm/headless')).default as typeof import('@xterm/headless');
  const term = new Terminal({ cols, rows: 40, scrollback: 100_000, allowProposedApi: true });
  await new Promise<void>((resolve) => term.write(raw, resolve));
  const buf = term.buffer.active;
  const lines: string[] = [];
  for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i)?.translateToString(true) ?? '');
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  term.dispose();
  return lines;
}
