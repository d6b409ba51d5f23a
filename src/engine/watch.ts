import { mkdirSync } from 'node:fs';
import { link, mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { DEFAULT_TIME_ZONE, localTime } from '../time.js';
import path from 'node:path';
import { EXIT } from '../errors.js';
import { lockDataDir } from '../db/dataDirLock.js';
import type { BatchRecord } from '../db/batches.js';
import { sleep } from '../alliance/retry.js';
import { writersOf } from '../proc.js';
import { fileSha256 } from './ingest.js';

/**
 * Scheduled payroll: files dropped in an inbox are paid one at a time. A file is taken once its size and
 * modification time have stayed the same for `stableMs` and no process holds it open for writing (a file
 * still being copied in, or written row by row with pauses, is left alone), moved to `processing/` (the
 * move is the claim: two watchers cannot both take a file, and it never replaces a file of that name
 * there: that one is an unfinished batch), run as a batch named after it, then moved to `done/` (the run
 * finished: every row paid or reported) or `failed/` (it was refused or could not be read: a person must
 * look), with its reports beside it. A run that stopped early (API down, another process busy, rows
 * awaiting the bank) stays in `processing/` and is resumed first on the next round, so nothing is left
 * half-paid. One watcher per inbox (a lock file).
 *
 * The file's sha256 and size are taken when it is claimed. Before the first payout the file must still be
 * that file and the batch must have been read from it; otherwise nothing is sent and it goes to `failed/`.
 * After the run it is compared again: a file that changed while it was being paid is never reported done
 * (what was added was not paid): `failed/`, with what was paid and what to do.
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
   * only `batch` to resume; `reportDir` is where its reports go; `beforeSend` must be passed to the run
   * (a reason not to send holds the batch back). Returns the exit code.
   */
  runFile: (o: { batch: string; csv?: string; reportDir: string; beforeSend: (b: BatchRecord) => Promise<string | undefined> }) => Promise<{ exitCode: number; message: string; awaitingApproval?: boolean | undefined }>;
  onEvent?: (e: WatchEvent) => void;
  /** Who holds a file open for writing (pids): src/proc.ts `writersOf`; tests replace it. */
  writers?: (file: string) => number[];
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
  | { type: 'waiting'; file: string; why: string }
  /** Nothing can be paid while this lasts (done/ or failed/ cannot be written): files stay in the inbox. */
  | { type: 'blocked'; why: string }
  /** Something went wrong handling one file after its run (moving it, writing why.txt): the rest goes on. */
  | { type: 'error'; file: string; why: string };

export interface WatchResult {
  processed: { file: string; batch: string; exitCode: number; movedTo: string }[];
  /** Rounds in which nothing could be paid, and why (done/ or failed/ not writable). */
  blocked: string[];
}

/** The files the inbox pays: CSVs and Excel workbooks (their first sheet). */
const CSV = /\.(?:csv|xlsx)$/i;

/** Where a finished run's file goes: finished (paid or reported) to done, refused or unreadable to failed, unfinished stays. */
export function destinationFor(exitCode: number): 'done' | 'failed' | 'processing' {
  if (exitCode === EXIT.ok || exitCode === EXIT.unpaidRows) return 'done';
  if (exitCode === EXIT.usage || exitCode === EXIT.refused) return 'failed';
  return 'processing';
}

type Dirs = { processing: string; done: string; failed: string };

/** A file as it was when claimed. */
interface Claimed {
  sha256: string;
  size: number;
}

export async function watchInbox(o: WatchOptions): Promise<WatchResult> {
  const inbox = path.resolve(o.inbox);
  const dirs: Dirs = { processing: path.join(inbox, 'processing'), done: path.join(inbox, 'done'), failed: path.join(inbox, 'failed') };
  mkdirSync(dirs.processing, { recursive: true, mode: 0o700 });
  for (const d of [dirs.done, dirs.failed]) {
    // A done/ or failed/ that cannot be made is found before paying (below), not a crash here.
    try {
      mkdirSync(d, { recursive: true, mode: 0o700 });
    } catch {
      /* reported by writable() */
    }
  }
  // One watcher per inbox: two would race for the same files' batches.
  const release = await lockDataDir(dirs.processing, {
    what: `the inbox (its processing folder)`,
    use: 'One watcher per inbox: that process is watching it already; several inboxes need one watcher each.',
  });
  const result: WatchResult = { processed: [], blocked: [] };
  const seen = new Map<string, { size: number; mtimeMs: number; since: number }>();
  const tried = new Map<string, number>();
  const claims = new Map<string, Claimed>();
  const stableMs = o.stableMs ?? 5000;
  const writers = o.writers ?? writersOf;
  let round = 0;
  try {
    for (;; round++) {
      if (o.stopSignal?.aborted) break;
      // Where a finished file goes must be writable before anything is paid: a batch paid whose file cannot
      // be filed would be taken again and again.
      const cannot = await unwritable([dirs.processing, dirs.done, dirs.failed]);
      if (cannot) {
        const why = `nothing is paid from the inbox while ${cannot}: fix it (the files wait in ${inbox})`;
        if (result.blocked.at(-1) !== why) o.onEvent?.({ type: 'blocked', why });
        result.blocked.push(why);
      } else {
        // Unfinished runs first (a batch is finished before a new one starts), each at most once per retry period.
        for (const f of await csvFiles(dirs.processing)) {
          if (o.stopSignal?.aborted || (o.once && round > 0)) break;
          const last = tried.get(f);
          if (last !== undefined && Date.now() - last < (o.retryMs ?? 60_000)) continue;
          tried.set(f, Date.now());
          await runOne(o, dirs, f, claims.get(f), result);
          if (!(await exists(path.join(dirs.processing, f)))) claims.delete(f);
        }
      }
      const now = Date.now();
      let waiting = false;
      for (const f of cannot ? [] : await csvFiles(inbox)) {
        if (o.stopSignal?.aborted) break;
        const src = path.join(inbox, f);
        const st = await stat(src).catch(() => undefined);
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
        const open = writers(src);
        if (open.length > 0) {
          waiting = true;
          o.onEvent?.({ type: 'waiting', file: f, why: `it is still open for writing (process ${open.join(', ')})` });
          continue;
        }
        if (await exists(path.join(dirs.processing, f))) {
          // Never replaces an unfinished batch's file; the new one waits until that batch is done.
          o.onEvent?.({ type: 'waiting', file: f, why: `processing/${f} is an unfinished batch of that name: this file waits until it is finished` });
          continue;
        }
        seen.delete(f);
        // The fingerprint is taken before the move: the move only renames, it does not change the file.
        const before = await fingerprint(src).catch(() => undefined);
        if (!before) continue;
        const claim = await claimFile(src, path.join(dirs.processing, f));
        if (claim === 'gone') continue;
        if (claim === 'exists') {
          o.onEvent?.({ type: 'waiting', file: f, why: `processing/${f} is an unfinished batch of that name: this file waits until it is finished` });
          continue;
        }
        claims.set(f, before);
        tried.set(f, Date.now());
        await runOne(o, dirs, f, before, result);
        if (!(await exists(path.join(dirs.processing, f)))) claims.delete(f);
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

async function exists(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined)) !== undefined;
}

async function fingerprint(file: string): Promise<Claimed> {
  const st = await stat(file);
  return { sha256: await fileSha256(file), size: st.size };
}

/**
 * Moves `src` to `dst` unless `dst` exists: a hard link (which refuses an existing name, atomically) and
 * then the old name removed. Where hard links are not supported, a rename after checking (one watcher per
 * inbox is enforced, so nobody else creates `dst` meanwhile).
 */
export async function claimFile(src: string, dst: string): Promise<'claimed' | 'exists' | 'gone'> {
  try {
    await link(src, dst);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return 'exists';
    if (code === 'ENOENT') return 'gone';
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV' && code !== 'EMLINK') throw err;
    if (await exists(dst)) return 'exists';
    try {
      await rename(src, dst);
      return 'claimed';
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
      throw e;
    }
  }
  try {
    await unlink(src);
  } catch (err) {
    // Another watcher's claim cannot have taken it (one per inbox); a file already gone is fine.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return 'claimed';
}

/** The first of these folders that cannot be written ("done/ cannot be written: EACCES …"), or undefined. */
async function unwritable(dirs: string[]): Promise<string | undefined> {
  for (const d of dirs) {
    const probe = path.join(d, `.payouts-probe-${process.pid}`);
    try {
      await writeFile(probe, '', { mode: 0o600 });
      await unlink(probe);
    } catch (err) {
      return `${path.basename(d)}/ (${d}) cannot be written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
    }
  }
  return undefined;
}

/** "4.2 KiB" */
function size(n: number): string {
  return n < 1024 ? `${n} bytes` : `${(n / 1024).toFixed(1)} KiB`;
}

async function runOne(o: WatchOptions, dirs: Dirs, file: string, claimed: Claimed | undefined, result: WatchResult): Promise<void> {
  const batch = file.replace(CSV, '');
  const reportDir = path.join(dirs.processing, `${batch}.reports`);
  const csv = path.join(dirs.processing, file);
  o.onEvent?.({ type: 'taken', file, batch });
  // What the file must still be right before the first payout: as claimed (a file taken over from an
  // earlier round: as its batch was read), and the batch read from exactly that.
  const beforeSend = async (b: BatchRecord): Promise<string | undefined> => {
    const now = await fingerprint(csv).catch(() => undefined);
    const expected = claimed?.sha256 ?? b.file_sha256;
    if (!now) return `${file} can no longer be read in processing/: the batch is held back`;
    if (now.sha256 !== expected || b.file_sha256 !== expected) {
      return (
        `${file} changed after it was taken from the inbox (${claimed ? `${size(claimed.size)} when taken, ` : ''}${size(now.size)} now): it may still have been being written. ` +
        `The batch is held back; check the file and drop the complete file in the inbox again`
      );
    }
    return undefined;
  };
  let exitCode: number;
  let message: string;
  let awaiting = false;
  try {
    // A file taken over from an earlier round is read again (unchanged: nothing is re-read) and resumed.
    const r = await o.runFile({ batch, csv, reportDir, beforeSend });
    ({ exitCode, message } = r);
    awaiting = r.awaitingApproval === true;
  } catch (err) {
    const e = err as { exitCode?: number; message?: string };
    exitCode = typeof e.exitCode === 'number' ? e.exitCode : EXIT.unfinished;
    message = e.message ?? String(err);
  }
  // A file that changed while it was being paid: what was added was not paid; never "done".
  const after = await fingerprint(csv).catch(() => undefined);
  const expected = claimed?.sha256;
  if (expected !== undefined && after !== undefined && after.sha256 !== expected && exitCode !== EXIT.usage) {
    message =
      `${file} changed while it was being paid (${size(claimed!.size)} when taken, ${size(after.size)} now): the batch paid the file as it was when taken ` +
      `(${message}); whatever was added or changed since was NOT paid. Check the file, then pay the rest as a corrected copy: ` +
      `\`payouts run <the complete file> --batch ${batch} --revise\` (rows already paid are never paid again)`;
    exitCode = EXIT.usage;
  }
  // A batch awaiting its checkers' approvals (the approval policy) stays, to be paid once approved.
  const to = awaiting && exitCode === EXIT.refused ? 'processing' : destinationFor(exitCode);
  let storedAs = file;
  let reportsDir = reportDir;
  try {
    if (to === 'failed') {
      // A refused or unreadable file often has no report at all (nothing was stored): the reason goes beside it.
      await mkdir(reportDir, { recursive: true });
      await writeFile(path.join(reportDir, 'why.txt'), `${file}: not paid by the inbox (exit ${exitCode})\n\n${message}\n`, { mode: 0o600 });
    }
    if (to !== 'processing') {
      // A file of the same name may be there from an earlier round (refused, fixed, refused again): the
      // earlier one and its reports are kept, the new pair gets the first free "-2", "-3"… suffix.
      const ext = file.slice(batch.length);
      const suffix = await freeSuffix(dirs[to], (sfx) => [`${batch}${sfx}${ext}`, `${batch}${sfx}.reports`]);
      storedAs = `${batch}${suffix}${ext}`;
      reportsDir = path.join(dirs[to], `${batch}${suffix}.reports`);
      await rename(csv, path.join(dirs[to], storedAs));
      await rename(reportDir, reportsDir).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      if (to === 'done') await markResolved(dirs.failed, batch, file, storedAs);
    }
  } catch (err) {
    // The run's outcome stands (a finished batch is never paid again by a later round); the file stays
    // where it is for a person, and the other files go on.
    o.onEvent?.({ type: 'error', file, why: `${file} could not be moved to ${to}/ after its run (exit ${exitCode}): ${(err as Error).message}` });
  }
  result.processed.push({ file, batch, exitCode, movedTo: to });
  o.onEvent?.({ type: 'finished', file, batch, exitCode, message, movedTo: to, storedAs, reportsDir });
}

/**
 * A file of this name refused earlier (failed/<name>.reports/why.txt, or -2, -3…) and now paid: its why.txt
 * says so, so nobody acts on a refusal that is resolved.
 */
async function markResolved(failedDir: string, batch: string, file: string, storedAs: string): Promise<void> {
  const names = (await readdir(failedDir).catch(() => [] as string[])).filter((n) => n === `${batch}.reports` || new RegExp(`^${batch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-\\d+\\.reports$`).test(n));
  for (const n of names) {
    const why = path.join(failedDir, n, 'why.txt');
    if (!(await exists(why))) continue;
    const text = await readFile(why, 'utf8');
    if (text.includes('RESOLVED:')) continue;
    await writeFile(why, `RESOLVED: ${file} was paid later (done/${storedAs}, ${localTime(new Date(), DEFAULT_TIME_ZONE)}): the refusal below no longer stands.\n\n${text}`, { mode: 0o600 });
  }
}

/** "" when none of the names exist in `dir`, else the first "-N" (N ≥ 2) for which none does. */
async function freeSuffix(dir: string, names: (suffix: string) => string[]): Promise<string> {
  const taken = new Set(await readdir(dir).catch(() => [] as string[]));
  for (let n = 1; ; n++) {
    const sfx = n === 1 ? '' : `-${n}`;
    if (names(sfx).every((x) => !taken.has(x))) return sfx;
  }
}
