/**
 * CSV text -> records, each knowing the physical lines it came from.
 *
 * Why not csv-parse: a payout file must not let one misplaced quote merge two people into one record,
 * and every problem must name the line a person sees in an editor. That needs, per record, the line it
 * starts on, the line where each quoted value opened and closed, whether its last line ended with a line
 * break, and for a quote that never closes, the line where it opened. csv-parse reports only where a
 * record ends (and, for an unclosed quote, the end of the file), and its `info` option doubles its cost.
 * The dialect here is small and fixed (comma, double quote, "" inside quotes, LF line breaks), so the
 * parser is too; test/batch-csv-records.test.ts checks it against csv-parse on generated input.
 *
 * Dialect (the same as csv-parse with relax_quotes and relax_column_count):
 * - A value that starts with `"` is quoted: it runs to the next `"` not doubled, may hold commas and
 *   line breaks, and `""` inside it stands for one `"`.
 * - A `"` anywhere else is an ordinary character (`12" TV`).
 * - Text after a closing quote (`"Sunrise" Apartments`) makes the value literal, as written (quotes
 *   kept), up to the next comma or line end.
 * - Empty lines are skipped (but counted); records may have any number of values.
 *
 * The input must use LF line breaks only: the text layer (textSource.ts) turns CRLF and CR into LF.
 */

/** A quoted value holding a line break: the record spans several physical lines. */
export interface MultilineValue {
  /** 0-based column of the value. */
  column: number;
  /** Line where the value (its opening quote) starts. */
  openLine: number;
  /** Line where the value ends (its closing quote). */
  closeLine: number;
}

export interface CsvRecord {
  /** The values, as read (quotes removed, `""` undone, nothing trimmed). */
  cells: string[];
  /** 1-based physical line the record starts on (every line break in the file counted). */
  line: number;
  /** Line the record ends on: more than `line` only when a quoted value holds a line break. */
  endLine: number;
  /** False only for a last record with no line break after it (a cut or still-growing file looks so). */
  terminated: boolean;
  /** The quoted values that hold line breaks; undefined when none (almost always). */
  multiline: MultilineValue[] | undefined;
}

/** A problem that stops parsing: nothing after it can be split into records reliably. */
export type CsvFailure =
  | {
      code: 'unclosed_quote';
      /** Line where the quote that never closes opened. */
      line: number;
      /** 0-based column of the value it opens. */
      column: number;
      /** Line the record starts on. */
      recordLine: number;
    }
  | {
      code: 'record_too_long';
      /** Line the record starts on. */
      line: number;
      /** Where a quote still open at that point opened, if one was (the likely cause). */
      quote: { line: number; column: number } | undefined;
      maxChars: number;
    };

const QUOTE = 34; // "
const COMMA = 44; // ,
const LF = 10;

/** Parsing stopped at the end of the available text inside a record. */
interface NeedMore {
  need: true;
  /** The quote open at that point, if any (for the record_too_long message). */
  quote: { line: number; column: number } | undefined;
}

interface Parsed {
  need: false;
  record: CsvRecord;
  /** Index just after the record (after its line break, when it has one). */
  next: number;
}

interface Unclosed {
  need: false;
  record: undefined;
  failure: CsvFailure;
}

function countLF(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = s.indexOf('\n', from); i !== -1 && i < to; i = s.indexOf('\n', i + 1)) n++;
  return n;
}

const LF_BYTE = 10;
const QUOTE_BYTE = 34;
const EMPTY = Buffer.alloc(0);

/**
 * Incremental parser: `push` the input as it arrives, `end` at the end of input. Records come out in
 * file order; a record is only returned once its line break has been seen, so the last line of a file
 * that has no line break is returned by `end` with `terminated: false`.
 *
 * It scans bytes and decodes one line at a time: a line of plain ASCII becomes a compact one-byte
 * string, where decoding whole chunks would make every value of a chunk holding one Hindi name a
 * two-byte string (twice the memory, slower everywhere after). Input must be UTF-8 with LF line
 * breaks, split anywhere except inside a multi-byte character (textSource.ts does all that).
 */
export class CsvRecordParser {
  /** Bytes not yet returned as records; always starts at a record boundary. */
  private rest: Buffer = EMPTY;
  /** Line on which `rest` starts. */
  private line = 1;
  private ended = false;
  /** Set when parsing had to stop; `push` and `end` then return nothing. */
  failure: CsvFailure | undefined;

  /** @param maxRecordChars a record longer than this is almost surely a quote swallowing the file */
  constructor(private readonly maxRecordChars = 1_000_000) {}

  push(input: Buffer | string): CsvRecord[] {
    if (this.failure || this.ended) return [];
    const chunk = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
    const buf = this.rest.length === 0 ? chunk : Buffer.concat([this.rest, chunk]);
    const out: CsvRecord[] = [];
    const n = buf.length;
    let pos = 0;
    let line = this.line;
    // Position of the next quote at or after pos (-1: none left); refreshed only when passed.
    let nextQuote = buf.indexOf(QUOTE_BYTE);
    let pendingQuote: NeedMore['quote'];
    while (pos < n) {
      const nl = buf.indexOf(LF_BYTE, pos);
      if (nl === -1) break;
      if (nextQuote !== -1 && nextQuote < pos) nextQuote = buf.indexOf(QUOTE_BYTE, pos);
      if (nextQuote === -1 || nextQuote > nl) {
        // Fast path: a line with no quote is one record, split at the commas.
        if (nl > pos) {
          out.push({ cells: buf.toString('utf8', pos, nl).split(','), line, endLine: line, terminated: true, multiline: undefined });
        }
        line++;
        pos = nl + 1;
        continue;
      }
      // A line with a quote: parse it as text, taking in more lines while a quoted value runs over.
      let end = nl;
      let r: NeedMore | Parsed | Unclosed;
      for (;;) {
        r = parseRecord(buf.toString('utf8', pos, end + 1), 0, line, false);
        if (!r.need) break;
        const next = buf.indexOf(LF_BYTE, end + 1);
        if (next === -1 || next - pos > this.maxRecordChars) break;
        end = next;
      }
      if (r.need) {
        pendingQuote = r.quote;
        break;
      }
      if (r.record === undefined) throw new Error('unreachable: a failure before the end of input');
      out.push(r.record);
      line = r.record.endLine + 1;
      // r.next is past the record's line break, which is the last character parsed.
      pos = end + 1;
    }
    this.rest = pos === 0 ? buf : pos === n ? EMPTY : buf.subarray(pos);
    this.line = line;
    if (this.rest.length > this.maxRecordChars) {
      const quote = pendingQuote ?? (parseRecord(this.rest.toString('utf8'), 0, line, false) as NeedMore).quote;
      this.failure = { code: 'record_too_long', line, quote, maxChars: this.maxRecordChars };
      this.rest = EMPTY;
    }
    return out;
  }

  /** End of input: the last record if it had no line break, or a failure for a quote left open. */
  end(): CsvRecord[] {
    if (this.failure || this.ended) return [];
    this.ended = true;
    const text = this.rest.toString('utf8');
    this.rest = EMPTY;
    const out: CsvRecord[] = [];
    let pos = 0;
    let line = this.line;
    while (pos < text.length) {
      const r = parseRecord(text, pos, line, true);
      if (r.need) throw new Error('unreachable: more input needed at the end of input');
      if (r.record === undefined) {
        this.failure = r.failure;
        break;
      }
      out.push(r.record);
      line = r.record.endLine + 1;
      pos = r.next;
    }
    this.line = line;
    return out;
  }
}

/**
 * One record starting at `start` (a record boundary, not an empty line). With `final` false, returns
 * NeedMore when the record may continue beyond the text; with `final` true, the end of the text ends it.
 */
function parseRecord(buf: string, start: number, line: number, final: boolean): NeedMore | Parsed | Unclosed {
  const n = buf.length;
  const cells: string[] = [];
  let multiline: MultilineValue[] | undefined;
  let cur = line;
  let i = start;
  for (;;) {
    const column = cells.length;
    if (buf.charCodeAt(i) === QUOTE) {
      const openLine = cur;
      // Find the closing quote: the first " not followed by another ".
      let j = i + 1;
      let close = -1;
      let escaped = false;
      for (;;) {
        const k = buf.indexOf('"', j);
        if (k === -1) break;
        if (k + 1 >= n && !final) break; // cannot tell "" from " yet
        if (buf.charCodeAt(k + 1) === QUOTE) {
          escaped = true;
          j = k + 2;
          continue;
        }
        close = k;
        break;
      }
      if (close === -1) {
        if (!final) return { need: true, quote: { line: openLine, column } };
        return {
          need: false,
          record: undefined,
          failure: { code: 'unclosed_quote', line: openLine, column, recordLine: line },
        };
      }
      const breaks = countLF(buf, i + 1, close);
      cur += breaks;
      const after = close + 1;
      const c = after < n ? buf.charCodeAt(after) : -1;
      let value: string;
      let next: number;
      if (c === COMMA || c === LF || (c === -1 && final)) {
        value = buf.slice(i + 1, close);
        if (escaped) value = value.replaceAll('""', '"');
        next = after;
      } else if (c === -1) {
        return { need: true, quote: undefined };
      } else {
        // Text after the closing quote: the value is taken as written, up to the next comma or line end.
        const end = endOfUnquoted(buf, after);
        if (end === -1 && !final) return { need: true, quote: undefined };
        next = end === -1 ? n : end;
        value = buf.slice(i, next);
      }
      if (breaks > 0) (multiline ??= []).push({ column, openLine, closeLine: cur });
      cells.push(value);
      i = next;
    } else {
      const end = endOfUnquoted(buf, i);
      if (end === -1 && !final) return { need: true, quote: undefined };
      const next = end === -1 ? n : end;
      cells.push(buf.slice(i, next));
      i = next;
    }
    // i is at a comma, a line break or the end of the text.
    if (i >= n) {
      return { need: false, record: { cells, line, endLine: cur, terminated: false, multiline }, next: n };
    }
    if (buf.charCodeAt(i) === LF) {
      return { need: false, record: { cells, line, endLine: cur, terminated: true, multiline }, next: i + 1 };
    }
    i++; // the comma
    if (i >= n && !final) return { need: true, quote: undefined };
  }
}

/**
 * Index of the comma or line break that ends an unquoted value starting at `from`, or -1. A character
 * loop, not indexOf: an indexOf for a comma would scan far past the line end in a file with few commas.
 */
function endOfUnquoted(buf: string, from: number): number {
  const n = buf.length;
  for (let i = from; i < n; i++) {
    const c = buf.charCodeAt(i);
    if (c === COMMA || c === LF) return i;
  }
  return -1;
}
