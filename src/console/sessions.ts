import { randomBytes } from 'node:crypto';

/**
 * The console's sessions, kept in the server's memory and keyed by a random cookie value (32 bytes): the
 * cookie carries nothing but the key, so nothing in it can be forged or replayed after logout or a
 * restart. A restart logs everyone out (the sessions are gone): acceptable for an operators' console.
 * Each request looks the user up again (src/console/server.ts), so a user disabled meanwhile is out at once.
 */
export interface Session {
  readonly id: string;
  readonly user: string;
  readonly createdAt: number;
  lastSeen: number;
  /** The secret @fastify/csrf-protection keeps "in the session" (its @fastify/session mode). */
  _csrf?: string;
  /** The token handed out at login and put in every page's forms. */
  csrfToken?: string;
  /** One line to show on the next page (after a form's redirect). */
  flash?: { kind: 'ok' | 'error'; text: string } | undefined;
}

export interface SessionOptions {
  /** A session unused this long ends. Default 30 minutes. */
  idleMs?: number;
  /** A session ends this long after login, used or not. Default 12 hours. */
  maxAgeMs?: number;
  now?: () => number;
}

export class SessionStore {
  private readonly sessions = new Map<string, Session>();
  readonly idleMs: number;
  readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(o: SessionOptions = {}) {
    this.idleMs = o.idleMs ?? 30 * 60_000;
    this.maxAgeMs = o.maxAgeMs ?? 12 * 3600_000;
    this.now = o.now ?? Date.now;
  }

  create(user: string): Session {
    this.sweep();
    const t = this.now();
    const s: Session = { id: randomBytes(32).toString('base64url'), user, createdAt: t, lastSeen: t };
    this.sessions.set(s.id, s);
    return s;
  }

  /** The live session of this key (its idle time restarts), or undefined. */
  get(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const s = this.sessions.get(id);
    if (!s) return undefined;
    const t = this.now();
    if (t - s.lastSeen > this.idleMs || t - s.createdAt > this.maxAgeMs) {
      this.sessions.delete(id);
      return undefined;
    }
    s.lastSeen = t;
    return s;
  }

  delete(id: string): void {
    this.sessions.delete(id);
  }

  /** Ends every session of a user (disabled by an admin). */
  deleteUser(user: string): void {
    for (const [id, s] of this.sessions) if (s.user === user) this.sessions.delete(id);
  }

  private sweep(): void {
    const t = this.now();
    for (const [id, s] of this.sessions) if (t - s.lastSeen > this.idleMs || t - s.createdAt > this.maxAgeMs) this.sessions.delete(id);
  }
}
