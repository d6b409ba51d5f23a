import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { maxInWindow } from '../../bench/meter.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'meter-child.mjs');

export interface MeterProcess {
  url: string;
  /** Arrival times (ms since the epoch) and 429s, as the meter's own process recorded them. */
  seen(): Promise<{ arrivals: number[]; refused: number; maxInWindow: number }>;
  close(): Promise<void>;
}

/** The rate-limit witness (meter-child.mjs) in its own process, in front of `target`, refusing beyond `limit`. */
export async function startMeterProcess(target: string, limit: number): Promise<MeterProcess> {
  const child: ChildProcess = spawn(process.execPath, [CHILD], { env: { ...process.env, TARGET: target, LIMIT: String(limit) }, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (l) => resolve((JSON.parse(l) as { url: string }).url));
    child.once('exit', (code) => reject(new Error(`the meter exited (${code}) before it listened`)));
  });
  return {
    url,
    seen: async () => {
      const r = (await (await fetch(`${url}/__meter`)).json()) as { arrivals: number[]; refused: number };
      return { ...r, maxInWindow: maxInWindow(r.arrivals) };
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
