/**
 * A small seeded PRNG (mulberry32) so that every random choice the sandbox makes (faults, UTRs,
 * webhook duplication and delays) can be replayed from a seed. Math.random is never used here:
 * a chaos test that fails must be reproducible with the same seed.
 */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** True with probability p (p outside 0..1 is clamped; undefined or 0 never). */
  chance(p: number | undefined): boolean {
    const u = this.next();
    if (p === undefined || !(p > 0)) return false;
    return u < Math.min(1, p);
  }

  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** A string of `n` decimal digits that does not start with 0 (a UTR-like reference). */
  digits(n: number): string {
    let s = String(this.int(1, 9));
    for (let i = 1; i < n; i++) s += String(this.int(0, 9));
    return s;
  }
}

/**
 * Independent streams derived from one seed. Separate streams keep, for example, the fault
 * sequence independent of how many payouts happened to settle in between (UTR draws would
 * otherwise shift every later fault decision).
 */
export function deriveSeed(seed: number, stream: string): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (let i = 0; i < stream.length; i++) {
    h = Math.imul(h ^ stream.charCodeAt(i), 0x01000193) >>> 0;
  }
  // One round of mixing so that similar stream names give unrelated seeds.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return h >>> 0;
}
