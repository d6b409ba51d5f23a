import { DEFAULT_TIME_ZONE, localTime } from '../time.js';
import { closeSync, linkSync, openSync, readFileSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BusyError } from '../errors.js';
import { isAlive, isLocalTag, PROCESS_ID, PROCESS_TAG, type ProcessRef } from '../proc.js';

/**
 * The lock beside PGlite's data: PGlite is one process's memory over files, and a second process on the same
 * directory would corrupt it. The lock is a file `<dir>/lock` whose first line names the holder as
 * "tag:pid:starttime" (src/proc.ts); a holder that is gone (exited, a zombie, or its pid now another process's)
 * is taken over; one that cannot be judged from here (another host, container or pid namespace) is not.
 *
 * Why a file and not a lock the kernel drops when the process dies: Node 20 has no flock/fcntl without a
 * native module. An abstract Unix socket would do on Linux, but only within one network namespace, so two
 * containers sharing the volume would not see each other's; the file is needed for them anyway, and with the
 * start time it is as exact as the kernel's lock on one host.
 */

export interface LockHolder {
  /** The first line of the lock file, as written. */
  id: string;
  ref: ProcessRef;
  /** When it took the lock (second line), for the message. */
  since: string | undefined;
}

/** What the lock file says. Also reads the older "hostname:pid" lock (no pid namespace, no start time). */
export function parseLockFile(text: string): LockHolder | undefined {
  const [first = '', second] = text.split('\n');
  const parts = first.trim().split(':');
  const since = second?.startsWith('since ') ? second.slice(6).trim() : undefined;
  if (parts.length === 3 && /^\d+$/.test(parts[1]!)) {
    return { id: first.trim(), ref: { tag: parts[0]!, pid: Number(parts[1]), startTime: /^\d+$/.test(parts[2]!) ? parts[2] : undefined }, since };
  }
  if (parts.length === 2 && /^\d+$/.test(parts[1]!)) {
    // An older lock: the plain host name. On this host it is judged by pid alone (zombie-aware).
    const tag = parts[0] === hostname() ? PROCESS_TAG : parts[0]!;
    return { id: first.trim(), ref: { tag, pid: Number(parts[1]), startTime: undefined }, since };
  }
  return undefined;
}

type Verdict = 'dead' | 'alive' | 'unknown';

function judge(h: LockHolder): Verdict {
  if (!isLocalTag(h.ref.tag)) return 'unknown';
  return isAlive(h.ref.pid, h.ref.startTime) ? 'alive' : 'dead';
}

/** What a lock guards, in the words of its refusal (the embedded database's data directory by default). */
export interface LockWords {
  /** "the data directory" */
  what: string;
  /** Why one process at a time, and what to do for more. */
  use: string;
}

const DATA_DIR: LockWords = {
  what: 'the data directory',
  use: 'PGlite allows one process at a time; to run several runners at once, set DATABASE_URL to a PostgreSQL database.',
};

function busy(dir: string, lock: string, h: LockHolder | undefined, verdict: Verdict | 'self' | 'unreadable', words: LockWords = DATA_DIR): BusyError {
  // The lock file records UTC; people read India time, as everywhere else (a --time-zone elsewhere is for reports).
  const at = h?.since ? new Date(h.since) : undefined;
  const since = h?.since ? ` since ${at && !Number.isNaN(at.getTime()) ? localTime(at, DEFAULT_TIME_ZONE) : h.since}` : '';
  const use = words.use;
  switch (verdict) {
    case 'self':
      return new BusyError(`${words.what} ${dir} is already open in this process (pid ${process.pid}): close it before opening it again`);
    case 'alive':
      return new BusyError(
        `${words.what} ${dir} is in use by process ${h!.ref.pid} on this machine${since}. ${use} Wait for that process to finish (or stop it: \`kill ${h!.ref.pid}\`), then run again.`,
      );
    case 'unknown':
      return new BusyError(
        `${words.what} ${dir} is locked by process ${h!.ref.pid} of ${h!.ref.tag.split('~')[0]}${since}, on another machine, container or pid namespace: ` +
          `this process cannot tell whether it still runs. If no payouts process uses ${dir} any more, delete ${lock} and run again. ${use}`,
      );
    default:
      return new BusyError(
        `${words.what} ${dir} is locked, but its lock file ${lock} names no process. If no payouts process uses ${dir}, delete ${lock} and run again.`,
      );
  }
}

function readOrUndefined(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function tryUnlink(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    /* already gone */
  }
}

/**
 * Creates `file` holding `content`, or fails with EEXIST: all at once, so a reader never sees it empty (a
 * temporary file hard-linked into place). Where links are not supported, an exclusive create then a write.
 */
function createExclusive(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  writeFileSync(tmp, content, { mode: 0o600 });
  try {
    linkSync(tmp, file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
    const fd = openSync(file, 'wx', 0o600);
    try {
      writeSync(fd, content);
    } finally {
      closeSync(fd);
    }
  } finally {
    tryUnlink(tmp);
  }
}

/**
 * Removes a lock whose holder is gone, exactly that lock: two processes finding the same stale lock must not
 * have the slower remove the faster's fresh one. A takeover therefore holds `<lock>.takeover` (taken the
 * same exclusive way) while it checks the lock still reads `stale` and removes it; a takeover file whose own
 * holder died is removed in turn. Returns after one attempt; the caller tries to create the lock again.
 */
async function removeStale(lock: string, stale: string): Promise<void> {
  const guard = `${lock}.takeover`;
  try {
    createExclusive(guard, `${PROCESS_ID}\n`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const text = readOrUndefined(guard);
    const g = text === undefined ? undefined : parseLockFile(text);
    // A taker that died inside these few microseconds leaves its guard; anyone else is done in a moment.
    if (text !== undefined && (!g || judge(g) === 'dead')) tryUnlink(guard);
    else await sleep(20);
    return;
  }
  try {
    if (readOrUndefined(lock) === stale) unlinkSync(lock);
  } finally {
    tryUnlink(guard);
  }
}

/**
 * Takes the lock on `dir` for this process, or throws a BusyError naming the holder and what to do.
 * Returns the release function (removes the lock only if it is still this process's).
 */
export async function lockDataDir(dir: string, words: LockWords = DATA_DIR): Promise<() => void> {
  const lock = path.join(dir, 'lock');
  const content = `${PROCESS_ID}\nsince ${new Date().toISOString()}\n`;
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      createExclusive(lock, content);
      return () => {
        if (readOrUndefined(lock) === content) tryUnlink(lock);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const text = readOrUndefined(lock);
    if (text === undefined) continue; // released in between: try again
    const holder = parseLockFile(text);
    if (!holder) throw busy(dir, lock, undefined, 'unreadable', words);
    if (holder.id === PROCESS_ID) throw busy(dir, lock, holder, 'self', words);
    const verdict = judge(holder);
    if (verdict !== 'dead') throw busy(dir, lock, holder, verdict, words);
    await removeStale(lock, text);
  }
  throw new BusyError(`could not lock ${words.what} ${dir}: other processes keep taking it. Run one payouts process at a time on it.`);
}
