import { bodyLine, serializeBody, sign, signaturesEqual, type TimestampUnit } from '../alliance/signing.js';

/**
 * The API's request authentication as a server would apply it: access key, timestamp window,
 * HMAC signature, replay protection and an optional IP allowlist.
 */

export type SandboxGetBodyMode = 'empty' | '{}' | 'either';
/**
 * What the server hashes for a POST body: the bytes received ('raw'), or the parsed body encoded again
 * the way PHP's json_encode ('php': "/" and non-ASCII escaped) or Python's json.dumps with the
 * document's separators ('ascii': non-ASCII escaped) would.
 */
export type ReencodeMode = 'raw' | 'php' | 'ascii';
export const REENCODE_MODES: readonly ReencodeMode[] = ['raw', 'php', 'ascii'];

export interface AuthConfig {
  accessKey: string;
  secretKey: string;
  getBodyMode: SandboxGetBodyMode;
  reencode: ReencodeMode;
  /** The unit the server reads the Timestamp header in. */
  timestampUnit: TimestampUnit;
  maxSkewMs: number;
  allowIps: string[] | undefined;
}

export interface AuthInput {
  method: string;
  /** The path as received, without the leading slash or query: what the client must have signed. */
  signingPath: string;
  rawBody: string;
  headers: Record<string, string | string[] | undefined>;
  remoteAddress: string | undefined;
  now: number;
}

export type AuthResult = { ok: true; signature: string } | { ok: false; message: string };

function header(h: AuthInput['headers'], name: string): string | undefined {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** "::ffff:127.0.0.1" -> "127.0.0.1", so an allowlist can be written in plain IPv4. */
export function normalizeIp(ip: string | undefined): string {
  if (!ip) return '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

/**
 * What a PHP server would hash for a POST body: json_decode then json_encode, which escapes "/"
 * and every non-ASCII character. A body that does not parse is hashed as received (the request
 * then fails later with 400, as PHP would fail its own validation).
 */
export function phpReencode(raw: string): string {
  return reencodeBody(raw, 'php');
}

export function reencodeBody(raw: string, mode: ReencodeMode): string {
  if (mode === 'raw') return raw;
  try {
    return serializeBody(JSON.parse(raw), mode);
  } catch {
    return raw;
  }
}

/** The body lines whose signatures the server accepts for this request. */
function candidateBodyLines(cfg: AuthConfig, method: string, rawBody: string): string[] {
  if (method.toUpperCase() === 'GET') {
    if (cfg.getBodyMode === 'either') return ['', '{}'];
    return [bodyLine('GET', undefined, cfg.getBodyMode)];
  }
  const line = bodyLine(method, rawBody, 'empty');
  return [rawBody !== '' ? reencodeBody(line, cfg.reencode) : line];
}

/**
 * Remembers signatures accepted within the timestamp window. Outside the window the timestamp
 * check already rejects a replay, so entries can be forgotten once they are that old.
 */
export class ReplayCache {
  private readonly seen = new Map<string, number>();
  constructor(private readonly windowMs: number) {}

  /** Returns false when the signature was already used. */
  remember(signature: string, now: number): boolean {
    this.prune(now);
    if (this.seen.has(signature)) return false;
    this.seen.set(signature, now + 2 * this.windowMs);
    return true;
  }

  private prune(now: number): void {
    // Map iteration is insertion order and expiries grow with insertion time (near enough).
    for (const [sig, expires] of this.seen) {
      if (expires > now) break;
      this.seen.delete(sig);
    }
  }
}

export function authenticate(cfg: AuthConfig, input: AuthInput, replay: ReplayCache): AuthResult {
  if (cfg.allowIps && cfg.allowIps.length > 0) {
    const ip = normalizeIp(input.remoteAddress);
    if (!cfg.allowIps.map(normalizeIp).includes(ip)) return { ok: false, message: 'IP address is not whitelisted.' };
  }
  const key = header(input.headers, 'access-key');
  if (!key || key !== cfg.accessKey) return { ok: false, message: 'Invalid access key.' };

  const tsText = header(input.headers, 'timestamp');
  if (!tsText || !/^\d{1,16}$/.test(tsText.trim())) return { ok: false, message: 'Invalid timestamp.' };
  const ts = Number(tsText.trim()) * (cfg.timestampUnit === 's' ? 1000 : 1);
  if (Math.abs(input.now - ts) > cfg.maxSkewMs) return { ok: false, message: 'Request timestamp expired.' };

  const received = header(input.headers, 'signature');
  if (!received || !/^[0-9a-fA-F]{64}$/.test(received.trim())) return { ok: false, message: 'Invalid signature.' };
  const sig = received.trim().toLowerCase();

  const matches = candidateBodyLines(cfg, input.method, input.rawBody).some((body) =>
    signaturesEqual(sign(cfg.secretKey, input.method, input.signingPath, body, tsText.trim()), sig),
  );
  if (!matches) return { ok: false, message: 'Invalid signature.' };

  if (!replay.remember(sig, input.now)) return { ok: false, message: 'Duplicate request (signature already used).' };
  return { ok: true, signature: sig };
}
