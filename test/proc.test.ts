/**
 * Process liveness (issue 8 item 5): a zombie is dead, a pid given to another process is not the holder.
 * Real processes throughout: a real zombie (a parent that never reaps), a real live process with another
 * start time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { isAlive, parseProcStat, PROCESS_ID, PROCESS_TAG, SELF_START_TIME } from '../src/proc.js';
import { newOwner, ownerIsDead } from '../src/engine/owner.js';
import { killToZombie, procStartTime, unreapingParent } from './helpers/proc.js';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

function sleeper(): ChildProcess {
  const c = spawn('sleep', ['600'], { stdio: 'ignore' });
  children.push(c);
  return c;
}

describe('/proc/<pid>/stat', () => {
  it('reads state and start time after the last ")", whatever the command name holds', () => {
    const tail = 'S 1 1 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10';
    expect(parseProcStat(`42 (node) ${tail}`)).toEqual({ state: 'S', startTime: '987654' });
    // A name with spaces and parentheses, crafted to look like a zombie with start time 1 if split naively.
    expect(parseProcStat(`42 (a) Z 1 (b c) ${tail}`)).toEqual({ state: 'S', startTime: '987654' });
    expect(parseProcStat(`42 ()) R ) ${tail}`)).toEqual({ state: 'S', startTime: '987654' });
    expect(parseProcStat('42 (x) S 1 2')).toBeUndefined();
    expect(parseProcStat('garbage')).toBeUndefined();
  });

  it('knows its own start time and writes it into its identity and lease owners', () => {
    expect(SELF_START_TIME).toMatch(/^\d+$/);
    expect(SELF_START_TIME).toBe(procStartTime(process.pid));
    expect(PROCESS_ID).toBe(`${PROCESS_TAG}:${process.pid}:${SELF_START_TIME}`);
    expect(newOwner()).toMatch(new RegExp(`^${PROCESS_ID.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:[0-9a-f]{8}$`));
    expect(isAlive(process.pid, SELF_START_TIME)).toBe(true);
    expect(ownerIsDead(newOwner())).toBe(false);
  });
});

describe('liveness', () => {
  it('a zombie is dead, although kill(pid, 0) still finds it', async () => {
    const { parent, childPid } = await unreapingParent(['sleep', '600']);
    children.push(parent);
    const start = procStartTime(childPid);
    expect(isAlive(childPid, start)).toBe(true);
    expect(ownerIsDead(`${PROCESS_TAG}:${childPid}:${start}:abcd1234`)).toBe(false);
    await killToZombie(childPid);
    expect(() => process.kill(childPid, 0)).not.toThrow(); // the trap: the kernel still lists it
    expect(isAlive(childPid)).toBe(false);
    expect(isAlive(childPid, start)).toBe(false);
    expect(ownerIsDead(`${PROCESS_TAG}:${childPid}:${start}:abcd1234`)).toBe(true);
    // The owner format before start times were recorded ("tag:pid:nonce") is judged zombie-aware too.
    expect(ownerIsDead(`${PROCESS_TAG}:${childPid}:abcd1234`)).toBe(true);
  });

  it('a live process with the recorded pid but another start time is not the one recorded', async () => {
    const s = sleeper();
    await new Promise((r) => s.once('spawn', r));
    const pid = s.pid!;
    const start = procStartTime(pid);
    const other = String(Number(start) + 1);
    expect(isAlive(pid, start)).toBe(true);
    expect(isAlive(pid, other)).toBe(false);
    expect(ownerIsDead(`${PROCESS_TAG}:${pid}:${start}:00000000`)).toBe(false);
    expect(ownerIsDead(`${PROCESS_TAG}:${pid}:${other}:00000000`)).toBe(true);
    // Without a start time (the old format) a live pid must count as alive: never call a live one dead.
    expect(ownerIsDead(`${PROCESS_TAG}:${pid}:12345678`)).toBe(false);
  });

  it('an exited and reaped process is dead; a process of another host or namespace is never judged', async () => {
    const s = sleeper();
    await new Promise((r) => s.once('spawn', r));
    const pid = s.pid!;
    const start = procStartTime(pid);
    s.kill('SIGKILL');
    await new Promise((r) => s.once('exit', r));
    expect(isAlive(pid, start)).toBe(false);
    expect(ownerIsDead(`${PROCESS_TAG}:${pid}:${start}:00000000`)).toBe(true);
    expect(ownerIsDead(`otherhost~${PROCESS_TAG.split('~')[1]}~1:${pid}:${start}:00000000`)).toBe(false);
    expect(ownerIsDead('garbage')).toBe(false);
    expect(isAlive(0)).toBe(false);
    expect(isAlive(-1)).toBe(false);
  });
});
