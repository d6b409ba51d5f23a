import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { isAlive } from '../db/connect.js';

/**
 * Who this process is, precise enough that "that process is dead" is never said of a live one: the host
 * name, the boot, and the pid namespace (containers sharing a host name have their own), then the pid.
 */
function processTag(): string {
  const read = (f: string) => {
    try {
      return f.endsWith('boot_id') ? readFileSync(f, 'utf8').trim().slice(0, 8) : readlinkSync(f).replace(/\D/g, '');
    } catch {
      return '?';
    }
  };
  return `${hostname().replace(/[:~]/g, '_')}~${read('/proc/sys/kernel/random/boot_id')}~${read('/proc/self/ns/pid')}`;
}

export const PROCESS_TAG = processTag();

/** "tag:pid:nonce" of a process on this very host, boot and pid namespace that no longer runs. */
export function ownerIsDead(owner: string): boolean {
  const [tag, pid] = owner.split(':');
  return tag === PROCESS_TAG && !PROCESS_TAG.includes('?') && !isAlive(Number(pid));
}
