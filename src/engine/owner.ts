import { randomBytes } from 'node:crypto';
import { PROCESS_ID, PROCESS_TAG, refIsDead } from '../proc.js';

export { PROCESS_TAG };

/**
 * A lease owner: "tag:pid:starttime:nonce". The start time (src/proc.ts) tells this process apart from a
 * later one given the same pid; the nonce tells apart two runners in one process.
 */
export function newOwner(): string {
  return `${PROCESS_ID}:${randomBytes(4).toString('hex')}`;
}

/**
 * Whether the runner named by a lease owner is known to be gone: on this very host, boot and pid namespace,
 * and not running (exited, a zombie, or its pid now someone else's). Reads "tag:pid:starttime:nonce" and the
 * older "tag:pid:nonce" (no start time: a zombie is still told apart, a reused pid is not).
 */
export function ownerIsDead(owner: string): boolean {
  const parts = owner.split(':');
  const [tag, pid] = parts;
  if (tag === undefined || pid === undefined) return false;
  const startTime = parts.length >= 4 && /^\d+$/.test(parts[2]!) ? parts[2] : undefined;
  return refIsDead({ tag, pid: Number(pid), startTime });
}
