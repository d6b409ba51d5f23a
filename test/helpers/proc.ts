import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseProcStat } from '../../src/proc.js';

/** /proc/<pid>/stat's state letter, or undefined once the pid is gone. */
export function procState(pid: number): string | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.state;
  } catch {
    return undefined;
  }
}

export function procStartTime(pid: number): string {
  return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))!.startTime;
}

export async function waitFor(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * A parent that never reaps: `sh` starts `argv` in the background, prints its pid, then becomes `sleep`
 * (exec keeps the pid), which never calls wait(). Killing the child leaves a real zombie until the parent
 * itself is killed (then init reaps it).
 */
export async function unreapingParent(argv: string[], env: Record<string, string> = {}): Promise<{ parent: ChildProcess; childPid: number }> {
  const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const parent = spawn('sh', ['-c', `${quoted} >/dev/null 2>&1 </dev/null & echo $!; exec sleep 600`], {
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const childPid = await new Promise<number>((resolve, reject) => {
    let out = '';
    parent.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    parent.on('error', reject);
    parent.on('exit', () => reject(new Error('the parent exited')));
  });
  // Only once the shell has become `sleep` does nothing reap the child: a shell still running its script
  // may reap a child killed meanwhile, and no zombie would ever appear.
  await waitFor(`the parent ${parent.pid} to exec sleep`, () => {
    try {
      return readFileSync(`/proc/${parent.pid}/comm`, 'utf8').trim() === 'sleep';
    } catch {
      return false;
    }
  });
  return { parent, childPid };
}

/** Kills with SIGKILL and waits until the pid is a zombie (its parent does not reap it). */
export async function killToZombie(pid: number): Promise<void> {
  process.kill(pid, 'SIGKILL');
  await waitFor(`process ${pid} to become a zombie`, () => procState(pid) === 'Z');
}
