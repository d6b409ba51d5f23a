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

function localParts(at: Date, timeZone: string): LocalParts {
  const p: Record<string, string> = {};
  for (const part of formatter(timeZone).formatToParts(at)) p[part.type] = part.value;
  const date = `${p['year']}-${p['month']}-${p['day']}`;
  const time = `${p['hour']}:${p['minute']}:${p['second']}`;
  // The zone's offset at that instant: local wall time read as UTC, minus the instant (whole seconds).
  const wall = Date.UTC(Number(p['year']), Number(p['month']) - 1, Number(p['day']), Number(p['hour']), Number(p['minute']), Number(p['second']));
  const minutes = Math.round((wall - Math.floor(at.getTime() / 1000) * 1000) / 60_000);
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  const offset = `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  return { date, time, offset };
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
