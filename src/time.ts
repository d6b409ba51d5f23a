/**
 * Times in reports are local to the people reading them (India by default), always with their offset, so
 * nobody has to guess whether 14:05 was IST or UTC, and a script can still parse them exactly.
 */

/** The time zone reports use unless told otherwise. */
export const DEFAULT_TIME_ZONE = 'Asia/Kolkata';

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** True when the runtime knows this IANA zone name (e.g. Asia/Kolkata, UTC, Europe/London). */
export function isTimeZone(timeZone: string): boolean {
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

interface LocalParts {
  date: string;
  time: string;
  offset: string;
}

/**
 * The zone's offset in minutes at an instant, cached per quarter hour of UTC: Intl is slow, and a report
 * of a million rows asks twice a row. A quarter whose two ends disagree (the offset changes inside it)
 * is never cached: each instant in it is computed exactly.
 */
const offsetCache = new Map<string, number>();
const QUARTER = 15 * 60_000;

function offsetMinutes(ms: number, timeZone: string): number {
  const q = Math.floor(ms / QUARTER);
  const key = `${timeZone}|${q}`;
  const hit = offsetCache.get(key);
  if (hit !== undefined) return hit;
  const start = exactOffset(q * QUARTER, timeZone);
  const end = exactOffset(q * QUARTER + QUARTER - 1000, timeZone);
  if (start !== end) return exactOffset(ms, timeZone);
  if (offsetCache.size > 10_000) offsetCache.clear();
  offsetCache.set(key, start);
  return start;
}

/** The offset from Intl: the wall clock it gives, read as UTC, minus the instant. */
function exactOffset(ms: number, timeZone: string): number {
  const p: Record<string, string> = {};
  for (const part of formatter(timeZone).formatToParts(new Date(ms))) p[part.type] = part.value;
  const wall = Date.UTC(Number(p['year']), Number(p['month']) - 1, Number(p['day']), Number(p['hour']), Number(p['minute']), Number(p['second']));
  return Math.round((wall - Math.floor(ms / 1000) * 1000) / 60_000);
}

const two = (n: number) => String(n).padStart(2, '0');

function localParts(at: Date, timeZone: string): LocalParts {
  const ms = Math.floor(at.getTime() / 1000) * 1000;
  const minutes = offsetMinutes(ms, timeZone);
  // The wall clock is the instant shifted by the offset, read in UTC.
  const w = new Date(ms + minutes * 60_000);
  const date = `${String(w.getUTCFullYear()).padStart(4, '0')}-${two(w.getUTCMonth() + 1)}-${two(w.getUTCDate())}`;
  const time = `${two(w.getUTCHours())}:${two(w.getUTCMinutes())}:${two(w.getUTCSeconds())}`;
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return { date, time, offset: `${sign}${two(Math.floor(abs / 60))}:${two(abs % 60)}` };
}

function toDate(at: Date | string | null | undefined): Date | undefined {
  if (at === null || at === undefined) return undefined;
  const d = at instanceof Date ? at : new Date(at);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** "2026-11-27 14:05:09 +05:30": for people (CSV, HTML). Empty for no time. */
export function localTime(at: Date | string | null | undefined, timeZone: string): string {
  const d = toDate(at);
  if (!d) return '';
  const p = localParts(d, timeZone);
  return `${p.date} ${p.time} ${p.offset}`;
}

/** "2026-11-27T14:05:09+05:30": ISO 8601 with the zone's offset, for scripts (JSON). Null for no time. */
export function isoLocalTime(at: Date | string | null | undefined, timeZone: string): string | null {
  const d = toDate(at);
  if (!d) return null;
  const p = localParts(d, timeZone);
  return `${p.date}T${p.time}${p.offset}`;
}
