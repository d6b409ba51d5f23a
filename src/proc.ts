import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * Which processes are alive, told precisely enough that "that process is dead" is never said of a live
 * one, and that a dead one is not taken for alive because the kernel still lists it (a zombie) or gave its
 * pid to someone else. Serves both the embedded database's lock file (src/db/connect.ts) and the owners
 * of row leases (src/engine/owner.ts). The lowest layer: imports nothing of the program.
 *
 * `kill(pid, 0)` alone is not enough: it succeeds on a zombie (a runner killed with kill -9 whose parent
 * never reaps it, as in a container without an init), and on an unrelated process that was given the pid
 * later. So a holder is named by its pid *and its start time* (field 22 of /proc/<pid>/stat, clock ticks
 * since boot: two processes with one pid in one boot never share it), and a process in state Z (or X) is
 * dead.
 */

/** What /proc/<pid>/stat says: the state letter (R, S, D, Z, …) and the start time in clock ticks after boot. */
export interface ProcStat {
  state: string;
  startTime: string;
}

/**
 * Parses /proc/<pid>/stat. The second field, the command name, is in parentheses and may itself hold
 * spaces and ')' (a process may name itself `a) Z 1 (`), so the fields after it are found from the LAST
 * ')' in the line, never by splitting the whole line on spaces.
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  // After ") ": field 3 (state) is rest[0], so field n is rest[n - 3]; starttime is field 22.
  const rest = text.slice(close + 2).trim().split(/\s+/);
  const state = rest[0];
  const startTime = rest[19];
  if (!state || !startTime || !/^\d+$/.test(startTime)) return undefined;
  return { state, startTime };
}

/** Whether this system has a procfs to ask (Linux); elsewhere only `kill(pid, 0)` can be used. */
const HAVE_PROCFS = existsSync('/proc/self/stat');

type StatRead = ProcStat | 'gone' | 'unreadable';

function readStat(pid: number): StatRead {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8')) ?? 'unreadable';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ESRCH' ? 'gone' : 'unreadable';
  }
}

/** This process's start time, or undefined without a procfs. */
export const SELF_START_TIME: string | undefined = HAVE_PROCFS
  ? (() => {
      const s = readStat(process.pid);
      return typeof s === 'object' ? s.startTime : undefined;
    })()
  : undefined;

/**
 * Whether process `pid` runs. With `startTime` (as recorded by the process itself) a process with that pid
 * but another start time is a different process, so the one named is dead. Answers "alive" whenever it
 * cannot tell (no procfs, a hidden /proc entry): a live holder taken for dead could corrupt data, a dead
 * one taken for alive only refuses with a message.
 */
export function isAlive(pid: number, startTime?: string): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to another user; anything else but ESRCH: cannot tell.
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  if (!HAVE_PROCFS) return true;
  const stat = readStat(pid);
  // kill() saw it a moment ago and /proc no longer lists it: it has just exited (and been reaped).
  if (stat === 'gone') return false;
  if (stat === 'unreadable') return true;
  // Z: a zombie, exited and waiting for a parent that may never reap it; X: being torn down.
  if (stat.state === 'Z' || stat.state === 'X' || stat.state === 'x') return false;
  if (startTime !== undefined && stat.startTime !== startTime) return false;
  return true;
}

/**
 * Who this process is, precise enough that a pid compared on another machine or in another container is
 * never compared at all: the host name, the boot, and the pid namespace (containers sharing a host name
 * have their own). A '?' part means it could not be read, and then no liveness verdict is given.
 */
function processTag(): string {
  const read = (f: string) => {
    try {
      return f.endsWith('boot_id') ? readFileSync(f, 'utf8').trim().slice(0, 8) : readlinkSync(f).replace(/\D/g, '');
    } catch {
      return '?';
    }
  };
  return `${hostname().replace(/[:~\s]/g, '_')}~${read('/proc/sys/kernel/random/boot_id')}~${read('/proc/self/ns/pid')}`;
}

export const PROCESS_TAG = processTag();

/** Whether pids recorded under `tag` can be judged from here: this host, this boot, this pid namespace. */
export function isLocalTag(tag: string): boolean {
  return tag === PROCESS_TAG && !PROCESS_TAG.includes('?');
}

/**
 * This process as "tag:pid:starttime" (starttime empty without a procfs): what a lock file or a lease owner
 * records so that a later process can tell whether it still runs.
 */
export const PROCESS_ID = `${PROCESS_TAG}:${process.pid}:${SELF_START_TIME ?? ''}`;

/** A process as recorded by `PROCESS_ID` (each caller parses its own format: lock file, lease owner). */
export interface ProcessRef {
  tag: string;
  pid: number;
  /** Absent in identities written before start times were recorded, or without a procfs. */
  startTime: string | undefined;
}

/** Whether the process named is known to be gone: on this host, boot and pid namespace, and not running. */
export function refIsDead(ref: ProcessRef): boolean {
  return isLocalTag(ref.tag) && !isAlive(ref.pid, ref.startTime);
}

/**
 * The processes (pids) that hold this file open for writing, as far as this process can see: on Linux, the
 * open files of every process /proc lets us read (our own user's, or all as root); elsewhere, or when
 * nothing can be read, none. A file still being copied in (scp, a spreadsheet saving, a script writing row
 * by row that pauses) is open for writing until it is complete, whatever its size did in the last seconds.
 */
export function writersOf(file: string): number[] {
  if (!HAVE_PROCFS) return [];
  let target: { dev: number; ino: number };
  try {
    const st = statSync(file);
    target = { dev: st.dev, ino: st.ino };
  } catch {
    return [];
  }
  const out: number[] = [];
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return [];
  }
  for (const pid of pids) {
    if (Number(pid) === process.pid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // another user's process, or gone
    }
    for (const fd of fds) {
      try {
        const st = statSync(`/proc/${pid}/fd/${fd}`);
        if (st.ino !== target.ino || st.dev !== target.dev) continue;
        // flags are octal: O_WRONLY is 01, O_RDWR 02.
        const flags = /^flags:\s*([0-7]+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
        if (flags && (parseInt(flags[1]!, 8) & 3) !== 0) {
          out.push(Number(pid));
          break;
        }
      } catch {
        // closed meanwhile, or not a file
      }
    }
  }
  return out;
}
