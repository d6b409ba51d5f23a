import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MAIN = path.join(ROOT, 'dist/src/main.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

let xdg: string | undefined;
/**
 * The per-user data directory of the commands tests start: a temporary one, so a test that forgets
 * --data-dir never writes into the real ~/.local/share/alliance-payouts.
 */
export function testDataHome(): string {
  xdg ??= mkdtempSync(path.join(tmpdir(), 'payouts-test-xdg-'));
  return xdg;
}

/** Runs the built `payouts` command in a child process with a clean environment plus `env`. */
export function runCli(args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number; input?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', XDG_DATA_HOME: testDataHome(), ...opts.env },
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export interface SandboxProcess {
  url: string;
  /** The admin token it printed (or undefined when it was given one). */
  adminToken: string | undefined;
  stdout: () => string;
  stop: () => Promise<void>;
}

/** Starts `payouts sandbox …` as a child process and waits for its URL. */
export async function startSandboxCli(args: string[], env: Record<string, string> = {}): Promise<SandboxProcess> {
  const child = spawn(process.execPath, [MAIN, 'sandbox', ...args], {
    env: { PATH: process.env['PATH'] ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m && /admin token: \S+/.test(out)) resolve(m[1]!);
    });
    void closed.then(() => reject(new Error(`sandbox exited: ${out}\n${err}`)));
  });
  const token = /admin token: (\S+)/.exec(out)?.[1];
  return {
    url,
    adminToken: token && !token.startsWith('<') ? token : undefined,
    stdout: () => out,
    stop: async () => {
      child.kill('SIGTERM');
      await closed;
    },
  };
}
