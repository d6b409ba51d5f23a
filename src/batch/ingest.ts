/**
 * Streaming CSV ingest: bytes -> UTF-8 check and line-ending normalization -> csv-parse -> header
 * mapping -> row validation -> in-file duplicate detection -> order ids. Memory stays bounded apart
 * from two small maps (payout identity -> first row, explicit order_id -> first row).
 *
 * File-level problems throw InputError. Most are found before the first row is yielded (missing file,
 * empty file, binary file, bad header), but a few only show up later in the stream (invalid UTF-8 in the
 * middle, an unclosed quote at the end): a consumer must treat an InputError from the iteration as
 * "the whole file is rejected", even after rows were yielded.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform, pipeline, type TransformCallback } from 'node:stream';
import { parse, CsvError, type Info } from 'csv-parse';
import { mapHeader, pickFields, type HeaderMapping } from './columns.js';
import { InputError } from '../errors.js';
import { contentKeyOf, deriveOrderId } from './orderId.js';
import { hasPayoutIdentity, validateRow, type RowIssue, type ValidatedRow } from './validate.js';

export interface IngestRow extends ValidatedRow {
  /** The CSV's order_id, or the derived one; null only when the row is invalid in a way that prevents either. */
  orderId: string | null;
  orderIdSource: 'csv' | 'derived' | null;
  /** "account|IFSC|paise" as normalized (amount empty when it did not parse). */
  contentKey: string;
}

export interface IngestOptions {
  /** The batch name: part of every derived order id. */
  batch: string;
  /** user_id for rows without one (the --user-id flag). */
  defaultUserId?: string;
  /** Called once with the header mapping (and its warnings) before the first row. */
  onHeader?: (mapping: HeaderMapping) => void;
}

/** A record longer than this (characters) is almost certainly an unclosed quote swallowing the file. */
export const MAX_RECORD_CHARS = 1_000_000;

function describeSource(input: string | NodeJS.ReadableStream): string {
  return typeof input === 'string' ? `the CSV file ${input}` : 'the CSV input';
}

async function openSource(input: string | NodeJS.ReadableStream): Promise<NodeJS.ReadableStream> {
  if (typeof input !== 'string') return input;
  let st;
  try {
    st = await stat(input);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new InputError(`CSV file not found: ${input}: check the path`, { cause: e });
    if (code === 'EACCES' || code === 'EPERM') {
      throw new InputError(`cannot read the CSV file ${input}: permission denied`, { cause: e });
    }
    throw new InputError(`cannot open the CSV file ${input}: ${(e as Error).message}`, { cause: e });
  }
  if (st.isDirectory()) throw new InputError(`${input} is a directory, not a CSV file`);
  if (st.isFile() && st.size === 0) {
    throw new InputError(`the CSV file ${input} is empty: it needs a header line and at least one row`);
  }
  return createReadStream(input);
}

/** Signatures of files that are not CSV text, checked on the first bytes. */
const MAGIC: ReadonlyArray<[number[], string]> = [
  [[0x50, 0x4b, 0x03, 0x04], 'an Excel workbook (.xlsx) or another zip file, not CSV: in Excel use File > Save As > "CSV UTF-8"'],
  [[0xd0, 0xcf, 0x11, 0xe0], 'an old Excel workbook (.xls), not CSV: in Excel use File > Save As > "CSV UTF-8"'],
  [[0xff, 0xfe], 'UTF-16 text ("Unicode Text"), not UTF-8: save it as "CSV UTF-8"'],
  [[0xfe, 0xff], 'UTF-16 text, not UTF-8: save it as "CSV UTF-8"'],
  [[0x25, 0x50, 0x44, 0x46], 'a PDF, not CSV: export the data as "CSV UTF-8"'],
  [[0x1f, 0x8b], 'gzip-compressed: decompress it first'],
];

function countNewlines(s: string): number {
  let n = 0;
  for (let i = s.indexOf('\n'); i !== -1; i = s.indexOf('\n', i + 1)) n++;
  return n;
}

/**
 * Bytes in, text out: rejects non-UTF-8 and binary input, strips a UTF-8 BOM and turns CRLF and lone CR
 * into LF (so csv-parse's line counts are exact and values carry plain \n line breaks).
 */
class TextGuard extends Transform {
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  private head: Buffer | null = Buffer.alloc(0);
  private pendingCR = false;
  /** Line breaks passed on so far. */
  private lines = 0;

  constructor(private readonly what: string) {
    super({ readableObjectMode: true });
  }

  override _transform(chunk: Buffer | string, _enc: BufferEncoding, cb: TransformCallback): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    if (this.head) {
      // Hold back the first few bytes until the file's signature can be checked.
      this.head = Buffer.concat([this.head, buf]);
      if (this.head.length < 4) return cb();
      const head = this.head;
      this.head = null;
      const bad = this.checkMagic(head);
      if (bad) return cb(bad);
      return this.emit_(head, cb);
    }
    this.emit_(buf, cb);
  }

  override _flush(cb: TransformCallback): void {
    if (this.head) {
      const head = this.head;
      this.head = null;
      const bad = head.length > 0 ? this.checkMagic(head) : null;
      if (bad) return cb(bad);
      const err = this.decode(head, true);
      if (err instanceof Error) return cb(err);
      this.pushText(err, true);
      return cb();
    }
    const rest = this.decode(Buffer.alloc(0), true);
    if (rest instanceof Error) return cb(rest);
    this.pushText(rest, true);
    cb();
  }

  private checkMagic(head: Buffer): InputError | null {
    for (const [sig, what] of MAGIC) {
      if (head.length >= sig.length && sig.every((b, i) => head[i] === b)) {
        return new InputError(`${this.what} is ${what}`);
      }
    }
    return null;
  }

  private emit_(buf: Buffer, cb: TransformCallback): void {
    const text = this.decode(buf, false);
    if (text instanceof Error) return cb(text);
    this.pushText(text, false);
    cb();
  }

  private decode(buf: Buffer, final: boolean): string | InputError {
    let text: string;
    try {
      text = this.decoder.decode(buf, { stream: !final });
    } catch (e) {
      // Find the line of the first bad byte for the message.
      const lossy = new TextDecoder('utf-8').decode(buf);
      const at = lossy.indexOf('\uFFFD');
      const line = this.lines + 1 + countNewlines(at >= 0 ? lossy.slice(0, at) : '');
      return new InputError(
        `${this.what} is not UTF-8 text (invalid bytes on line ${line}; Excel's plain "CSV" is Windows-1252): ` +
          `save it as "CSV UTF-8" and try again`,
        { cause: e },
      );
    }
    const nul = text.indexOf('\u0000');
    if (nul !== -1) {
      const line = this.lines + 1 + countNewlines(text.slice(0, nul));
      return new InputError(`${this.what} contains binary data (a NUL byte on line ${line}): it is not a CSV text file`);
    }
    return text;
  }

  private pushText(text: string, final: boolean): void {
    if (this.pendingCR) {
      text = '\r' + text;
      this.pendingCR = false;
    }
    if (!final && text.endsWith('\r')) {
      this.pendingCR = true;
      text = text.slice(0, -1);
    }
    if (text.length === 0) return;
    const out = text.includes('\r') ? text.replace(/\r\n?/g, '\n') : text;
    this.lines += countNewlines(out);
    this.push(out);
  }
}

/**
 * The key under which a payout identity is remembered: 96 bits of sha256 as 16 base64 characters,
 * a third of the memory of the full "account|IFSC|paise" string (about 60 bytes a row in the map).
 */
function fingerprint(contentKey: string): string {
  return createHash('sha256').update(contentKey).digest().toString('base64', 0, 12);
}

function isBlank(record: readonly string[]): boolean {
  return record.every((f) => f.trim() === '');
}

/** The line a record starts on: csv-parse reports where it ends; subtract the line breaks inside it. */
function startLine(record: readonly string[], info: Info): number {
  let inner = 0;
  for (const f of record) if (f.includes('\n')) inner += countNewlines(f);
  return info.lines - inner;
}

function toInputError(e: unknown, what: string): InputError {
  if (e instanceof InputError) return e;
  if (e instanceof CsvError) {
    const line = (e as CsvError & { lines?: number }).lines;
    if (e.code === 'CSV_QUOTE_NOT_CLOSED') {
      return new InputError(
        `${what} has a quote that is never closed (the field opened${line ? ` by line ${line}` : ''} runs to the end of the file): ` +
          `fix the quoting; a quote inside a quoted value must be doubled ("")`,
        { cause: e },
      );
    }
    if (e.code === 'CSV_MAX_RECORD_SIZE') {
      return new InputError(
        `${what} has a record longer than ${MAX_RECORD_CHARS} characters near line ${line ?? '?'}: most likely an unclosed quote; fix the quoting`,
        { cause: e },
      );
    }
    return new InputError(`${what} is not valid CSV${line ? ` at line ${line}` : ''}: ${e.message}`, { cause: e });
  }
  const err = e as NodeJS.ErrnoException;
  return new InputError(`cannot read ${what}: ${err?.message ?? String(e)}`, { cause: e });
}

/**
 * Reads a payout CSV row by row. Every data row is yielded, valid or not, with all its errors and
 * warnings, in file order.
 */
export async function* readBatchRows(
  input: string | NodeJS.ReadableStream,
  opts: IngestOptions,
): AsyncGenerator<IngestRow> {
  const what = describeSource(input);
  const source = await openSource(input);
  const guard = new TextGuard(what);
  const parser = parse({
    bom: true,
    info: true,
    relax_column_count: true,
    // A stray quote inside an unquoted value (12" TV) is kept as text; the field checks catch it where it matters.
    relax_quotes: true,
    skip_empty_lines: true,
    record_delimiter: '\n',
    max_record_size: MAX_RECORD_CHARS,
  });
  pipeline(source, guard, parser, () => {
    // Errors reach the consumer through the parser's iterator.
  });

  /** fingerprint of a payout identity -> first row number with it */
  const firstRowByKey = new Map<string, number>();
  /** payout identity -> rows seen with it minus one; only for identities seen more than once */
  const repeats = new Map<string, number>();
  /** explicit order_id -> first row number */
  const explicitIds = new Map<string, number>();

  let mapping: HeaderMapping | undefined;
  let dataRows = 0;

  try {
    for await (const chunk of parser as AsyncIterable<{ record: string[]; info: Info }>) {
      const { record, info } = chunk;
      if (isBlank(record)) continue;
      if (!mapping) {
        mapping = mapHeader(record);
        opts.onHeader?.(mapping);
        continue;
      }
      dataRows++;
      const rowNo = startLine(record, info);
      const row = validateRow(pickFields(mapping, record), rowNo, { defaultUserId: opts.defaultUserId });

      const width = mapping.header.length;
      if (
        record.length < width ||
        (record.length > width && !record.slice(width).every((f) => f.trim() === ''))
      ) {
        const issue: RowIssue = {
          field: 'row',
          code: 'field_count',
          message:
            `row has ${record.length} fields, header has ${width}: ` +
            (record.length > width
              ? 'a value containing a comma must be in double quotes'
              : 'fill in every column (leave a value empty between commas if it has none)'),
        };
        row.errors.unshift(issue);
      }

      let orderId: string | null = null;
      let orderIdSource: IngestRow['orderIdSource'] = null;
      if (row.orderId !== null) {
        const first = explicitIds.get(row.orderId);
        if (first !== undefined) {
          row.errors.push({
            field: 'order_id',
            code: 'order_id_duplicate',
            message: `order_id ${row.orderId} is also on row ${first}: order_ids must be unique; give this row its own id or remove it`,
          });
        } else {
          explicitIds.set(row.orderId, rowNo);
          orderId = row.orderId;
          orderIdSource = 'csv';
        }
      }

      let contentKey: string;
      if (hasPayoutIdentity(row)) {
        const identity = { accountNumber: row.accountNumber, ifsc: row.ifsc, amountPaise: row.amountPaise! };
        contentKey = contentKeyOf(identity);
        const fp = fingerprint(contentKey);
        let occurrence = 0;
        const first = firstRowByKey.get(fp);
        if (first === undefined) {
          firstRowByKey.set(fp, rowNo);
        } else {
          occurrence = (repeats.get(fp) ?? 0) + 1;
          repeats.set(fp, occurrence);
          row.warnings.push({
            field: 'row',
            code: 'possible_duplicate',
            message: `same account, IFSC and amount as row ${first}: check it is not a duplicate payment (remove one of the rows if it is)`,
          });
        }
        // A CSV that has an order_id column but leaves it empty on a row gets a derived id for that row.
        const explicitGiven = (pickFieldOrderId(mapping, record) ?? '') !== '';
        if (!explicitGiven) {
          orderId = deriveOrderId(opts.batch, identity, occurrence);
          orderIdSource = 'derived';
        }
      } else {
        contentKey = `${row.accountNumber}|${row.ifsc}|${row.amountPaise?.toString() ?? ''}`;
      }

      yield { ...row, orderId, orderIdSource, contentKey };
    }
  } catch (e) {
    // File and CSV problems become InputError; anything else is a bug and propagates as it is.
    if (e instanceof InputError || e instanceof CsvError || (e as NodeJS.ErrnoException)?.syscall !== undefined) {
      throw toInputError(e, what);
    }
    throw e;
  } finally {
    // Early exit by the consumer, or an error: release the file.
    if (!parser.destroyed) parser.destroy();
  }

  if (!mapping) {
    throw new InputError(`${what} has no header line (it is empty or only blank lines): add the header and the rows`);
  }
  if (dataRows === 0) {
    throw new InputError(`${what} has a header but no data rows: nothing to pay`);
  }
}

function pickFieldOrderId(mapping: HeaderMapping, record: readonly string[]): string | undefined {
  const i = mapping.columns.order_id;
  return i === undefined ? undefined : record[i]?.trim();
}
