import { mkdirSync } from 'node:fs';
import { mkdir, readdir, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { EXIT } from '../errors.js';
import { lockDataDir } from '../db/dataDirLock.js';
import { sleep } from '../alliance/retry.js';

/**
 * Scheduled payroll: files dropped in an inbox are paid one at a time. A file is taken once its size and
 * modification time have stayed the same for `stableMs` (a file still being copied in is left alone),
 * moved to `processing/` (the move is the claim: two watchers cannot both take a file), run as a batch
 * named after it, then moved to `done/` (the run finished: every row paid or reported) or `failed/` (it
 * was refused or could not be read: a person must look), with its reports beside it. A run that stopped
 * early (API down, another process busy, rows awaiting the bank) stays in `processing/` and is resumed
 * first on the next round, so nothing is left half-paid. One watcher per inbox (a lock file).
 */
export interface WatchOptions {
  inbox: string;
  /** How long a file's size and time must stay the same before it is taken. Default 5000 ms. */
  stableMs?: number;
  /** How often the inbox is looked at. Default 2000 ms. */
  pollMs?: number;
  /** Look once, pay what is there (and what was left in processing/), then return: for cron. */
  once?: boolean;
  /** A run that stopped early (left in processing/) is tried again after this long. Default 60000 ms. */
  retryMs?: number;
  stopSignal?: AbortSignal | undefined;
  /**
   * Runs one file as a batch (the command wires runBatch with its options): `csv` to read and pay, or
   * only `batch` to resume; `reportDir` is where its reports go. Returns the exit code.
   */
  runFile: (o: { batch: string; csv?: string; reportDir: string }) => Promise<{ exitCode: number; message: string }>;
  onEvent?: (e: WatchEvent) => void;
}

export type WatchEvent =
  | { type: 'taken'; file: string; batch: string }
  | {
      type: 'finished';
      file: string;
      batch: string;
      exitCode: number;
      message: string;
      movedTo: 'done' | 'failed' | 'processing';
      /** The file's name where it now is (another when that name was taken there). */
      storedAs: string;
      /** Where its reports (and a failed file's why.txt) now are. */
      reportsDir: string;
    }
  | { type: 'waiting'; file: string; why: string };

export interface WatchResult {
  processed: { file: string; batch: string; exitCode: number; movedTo: string }[];
}

const CSV = /\.csv$/i;

/** Where a finished run's file goes: finished (paid or reported) to done, refused or unreadable to failed, unfinished stays. */
export function destinationFor(exitCode: number): 'done' | 'failed' | 'processing' {
  if (exitCode === EXIT.ok || exitCode === EXIT.unpaidRows) return 'done';
  if (exitCode === EXIT.usage || exitCode === EXIT.refused) return 'failed';
  return 'processing';
}

export async function watchInbox(o: WatchOptions): Promise<WatchResult> {
  const inbox = path.resolve(o.inbox);
  const dirs = { processing: path.join(inbox, 'processing'), done: path.join(inbox, 'done'), failed: path.join(inbox, 'failed') };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true, mode: 0o700 });
  // One watcher per inbox: two would race for the same files' batches.
  const release = await lockDataDir(dirs.processing, {
    what: `the inbox (its processing folder)`,
    use: 'One watcher per inbox: that process is watching it already; several inboxes need one watcher each.',
  });
  const result: WatchResult = { processed: [] };
  const seen = new Map<string, { size: number; mtimeMs: number; since: number }>();
  const tried = new Map<string, number>();
  const stableMs = o.stableMs ?? 5000;
  let round = 0;
  try {
    for (;; round++) {
      if (o.stopSignal?.aborted) break;
      // Unfinished runs first (a batch is finished before a new one starts), each at most once per retry period.
      for (const f of await csvFiles(dirs.processing)) {
        if (o.stopSignal?.aborted || (o.once && round > 0)) break;
        const last = tried.get(f);
        if (last !== undefined && Date.now() - last < (o.retryMs ?? 60_000)) continue;
        tried.set(f, Date.now());
        await runOne(o, dirs, f, result);
      }
      const now = Date.now();
      let waiting = false;
      for (const f of await csvFiles(inbox)) {
        if (o.stopSignal?.aborted) break;
        const st = await stat(path.join(inbox, f)).catch(() => undefined);
        if (!st?.isFile()) continue;
        const prev = seen.get(f);
        if (!prev || prev.size !== st.size || prev.mtimeMs !== st.mtimeMs) {
          seen.set(f, { size: st.size, mtimeMs: st.mtimeMs, since: now });
          waiting = true;
          o.onEvent?.({ type: 'waiting', file: f, why: 'its size is still changing' });
          continue;
        }
        if (now - prev.since < stableMs) {
          waiting = true;
          continue;
        }
        seen.delete(f);
        // The move is the claim: another watcher that lost the race finds the file gone.
        try {
          await rename(path.join(inbox, f), path.join(dirs.processing, f));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw err;
        }
        tried.set(f, Date.now());
        await runOne(o, dirs, f, result);
      }
      if (o.once && !waiting) break;
      try {
        await sleep(o.pollMs ?? 2000, o.stopSignal);
      } catch {
        break;
      }
    }
  } finally {
    release();
  }
  return result;
}

async function csvFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => CSV.test(n) && !n.startsWith('.')).sort();
}

async function runOne(
  o: WatchOptions,
  dirs: { processing: string; done: string; failed: string },
  file: string,
  result: WatchResult,
): Promise<void> {
  const batch = file.replace(CSV, '');
  const reportDir = path.join(dirs.processing, `${batch}.reports`);
  o.onEvent?.({ type: 'taken', file, batch });
  let exitCode: number;
  let message: string;
  try {
    // A file taken over from an earlier round is read again (unchanged: nothing is re-read) and resumed.
    ({ exitCode, message } = await o.runFile({ batch, csv: path.join(dirs.processing, file), reportDir }));
  } catch (err) {
    const e = err as { exitCode?: number; message?: string };
    exitCode = typeof e.exitCode === 'number' ? e.exitCode : EXIT.unfinished;
    message = e.message ?? String(err);
  }
  const to = destinationFor(exitCode);
  if (to === 'failed') {
    // A refused or unreadable file often has no report at all (nothing was stored): the reason goes beside it.
    await mkdir(reportDir, { recursive: true });
    await writeFile(path.join(reportDir, 'why.txt'), `${file}: not paid by the inbox (exit ${exitCode})\n\n${message}\n`, { mode: 0o600 });
  }
  let storedAs = file;
  let reportsDir = reportDir;
  if (to !== 'processing') {
    // A file of the same name may be there from an earlier round (refused, fixed, refused again): the
    // earlier one and its reports are kept, the new pair gets the first free "-2", "-3"… suffix.
    const ext = file.slice(batch.length);
    const suffix = await freeSuffix(dirs[to], (sfx) => [`${batch}${sfx}${ext}`, `${batch}${sfx}.reports`]);
    storedAs = `${batch}${suffix}${ext}`;
    reportsDir = path.join(dirs[to], `${batch}${suffix}.reports`);
    await rename(path.join(dirs.processing, file), path.join(dirs[to], storedAs));
    await rename(reportDir, reportsDir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
  result.processed.push({ file, batch, exitCode, movedTo: to });
  o.onEvent?.({ type: 'finished', file, batch, exitCode, message, movedTo: to, storedAs, reportsDir });
}

/** "" when none of the names exist in `dir`, else the first "-N" (N ≥ 2) for which none does. */
async function freeSuffix(dir: string, names: (suffix: string) => string[]): Promise<string> {
  const taken = new Set(await readdir(dir).catch(() => [] as string[]));
  for (let n = 1; ; n++) {
    const sfx = n === 1 ? '' : `-${n}`;
    if (names(sfx).every((x) => !taken.has(x))) return sfx;
  }
}
