import { Rng } from './rng.js';

/** Each rate is a probability 0..1 applied per request, drawn from the seeded RNG. */
export interface FaultOptions {
  /** Added to every request. */
  latencyMs?: number;
  latencySpikeRate?: number;
  latencySpikeMs?: number;
  /** 500 without executing. */
  error5xxBeforeRate?: number;
  /** Executes the request (a payout is created), then answers 500. */
  error5xxAfterRate?: number;
  /** Executes, then destroys the socket without answering. */
  dropAfterRate?: number;
  /** Executes, then never answers: the client's timeout is the only way out. */
  hangAfterRate?: number;
  /** 429 regardless of the configured rate. */
  burst429Rate?: number;
  webhookDuplicateRate?: number;
  webhookReorder?: boolean;
  /**
   * A slow POST (issue 7): a payout initiate is executed this many ms after the request arrived, and only
   * then answered; a client that times out meanwhile does not stop it. Whether the order_id is already
   * taken is checked at execution, as a server that validates then writes would.
   */
  executeDelayMs?: number;
  /** Share of initiates that are slow, drawn from its own seeded stream. Default 1 (every one). */
  executeDelayRate?: number;
  /** Restrict request faults to these signing paths, e.g. ['api/v1/payout/initiate']. */
  onlyPaths?: string[];
}

/** What happens to one request, decided before it runs. */
export interface FaultPlan {
  delayMs: number;
  before: 'none' | '429' | '500';
  after: 'none' | '500' | 'drop' | 'hang';
}

export const NO_FAULT: FaultPlan = { delayMs: 0, before: 'none', after: 'none' };

/**
 * Draws a fixed number of values per request whatever the options are, so the n-th request's
 * fate depends only on the seed and n: changing one rate does not reshuffle the others.
 */
export function planFaults(f: FaultOptions, rng: Rng, signingPath: string): FaultPlan {
  const spike = rng.chance(f.latencySpikeRate);
  const burst = rng.chance(f.burst429Rate);
  const before500 = rng.chance(f.error5xxBeforeRate);
  const hang = rng.chance(f.hangAfterRate);
  const drop = rng.chance(f.dropAfterRate);
  const after500 = rng.chance(f.error5xxAfterRate);
  const applies = !f.onlyPaths || f.onlyPaths.length === 0 || f.onlyPaths.includes(signingPath);
  if (!applies) return NO_FAULT;

  const delayMs = Math.max(0, f.latencyMs ?? 0) + (spike ? Math.max(0, f.latencySpikeMs ?? 1000) : 0);
  // The most disruptive outcome wins when several are drawn for one request.
  const before: FaultPlan['before'] = burst ? '429' : before500 ? '500' : 'none';
  const after: FaultPlan['after'] = before !== 'none' ? 'none' : hang ? 'hang' : drop ? 'drop' : after500 ? '500' : 'none';
  return { delayMs, before, after };
}

export function describePlan(p: FaultPlan): string | undefined {
  const parts: string[] = [];
  if (p.delayMs > 0) parts.push(`delay:${p.delayMs}`);
  if (p.before !== 'none') parts.push(`before:${p.before}`);
  if (p.after !== 'none') parts.push(`after:${p.after}`);
  return parts.length ? parts.join(',') : undefined;
}

/** Accepts a FaultOptions from JSON (the admin endpoint), dropping anything it does not know. */
export function parseFaultOptions(input: unknown): FaultOptions {
  if (!input || typeof input !== 'object' || Array.isArray(input)) throw new TypeError('faults must be a JSON object');
  const src = input as Record<string, unknown>;
  const out: FaultOptions = {};
  const numKeys = [
    'latencyMs',
    'latencySpikeRate',
    'latencySpikeMs',
    'error5xxBeforeRate',
    'error5xxAfterRate',
    'dropAfterRate',
    'hangAfterRate',
    'burst429Rate',
    'webhookDuplicateRate',
    'executeDelayMs',
    'executeDelayRate',
  ] as const;
  for (const k of numKeys) {
    const v = src[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new TypeError(`${k} must be a non-negative number`);
    out[k] = v;
  }
  if (src['webhookReorder'] !== undefined) out.webhookReorder = Boolean(src['webhookReorder']);
  if (src['onlyPaths'] !== undefined) {
    const p = src['onlyPaths'];
    if (!Array.isArray(p) || !p.every((x) => typeof x === 'string')) throw new TypeError('onlyPaths must be an array of strings');
    out.onlyPaths = p.map((x) => x.replace(/^\/+/, ''));
  }
  return out;
}
