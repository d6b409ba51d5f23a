/**
 * Bytes in, checked bytes out: opens the CSV, refuses what is not UTF-8 text (a workbook, UTF-16, a PDF,
 * binary, invalid UTF-8) naming the line, drops a UTF-8 BOM, and turns CRLF and lone CR into LF so that
 * line numbers are exact and values carry plain \n line breaks. It stays in bytes (validated with
 * buffer.isUtf8): the record parser decodes one line at a time (see csvRecords.ts for why).
 */
import { isUtf8 } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { InputError } from '../errors.js';

/** How the input is named in messages. */
export function describeSource(input: string | NodeJS.ReadableStream): string {
  return typeof input === 'string' ? `the CSV file ${input}` : 'the CSV input';
}

/** Read size: large enough that per-chunk work is negligible, small enough to stream. */
const CHUNK_BYTES = 256 * 1024;

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
  return createReadStream(input, { highWaterMark: CHUNK_BYTES });
}

/** Signatures of files that are not CSV text, checked on the first bytes. */
const MAGIC: ReadonlyArray<[number[], string]> = [
  [[0x50, 0x4b, 0x03, 0x04], 'an Excel workbook (.xlsx) or another zip file, not CSV: if it is a workbook, name it .xlsx (workbooks are read directly), or in Excel use File > Save As > "CSV UTF-8"'],
  [[0xd0, 0xcf, 0x11, 0xe0], 'an old Excel workbook (.xls), not CSV: in Excel use File > Save As > "CSV UTF-8"'],
  [[0xff, 0xfe], 'UTF-16 text ("Unicode Text"), not UTF-8: save it as "CSV UTF-8"'],
  [[0xfe, 0xff], 'UTF-16 text, not UTF-8: save it as "CSV UTF-8"'],
  [[0x25, 0x50, 0x44, 0x46], 'a PDF, not CSV: export the data as "CSV UTF-8"'],
  [[0x1f, 0x8b], 'gzip-compressed: decompress it first'],
];

function checkMagic(head: Buffer, what: string): void {
  for (const [sig, desc] of MAGIC) {
    if (head.length >= sig.length && sig.every((b, i) => head[i] === b)) throw new InputError(`${what} is ${desc}`);
  }
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError(`the CSV input must be bytes or text, got ${typeof chunk}`);
}

/** A stream or file-system error while reading becomes an InputError; anything else is a bug. */
function readError(e: unknown, what: string): unknown {
  if (e instanceof InputError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err?.syscall !== undefined || err?.code !== undefined) {
    return new InputError(`cannot read ${what}: ${err.message}`, { cause: e });
  }
  return e;
}

const CR = 13;
const LF = 10;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/**
 * Where an incomplete UTF-8 sequence starts at the end of `buf` (a character split between two reads),
 * or buf.length when the buffer ends on a character boundary.
 */
function incompleteTail(buf: Buffer): number {
  const n = buf.length;
  for (let i = n - 1; i >= 0 && i >= n - 3; i--) {
    const b = buf[i]!;
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: look further back for the lead byte
    if (b < 0xc0) return n; // ASCII (or a stray continuation, which validation reports)
    const len = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
    return n - i < len ? i : n;
  }
  return n;
}

/** CRLF and lone CR -> LF, copying only when there is a CR. */
function normalizeLineBreaks(buf: Buffer): Buffer {
  let cr = buf.indexOf(CR);
  if (cr === -1) return buf;
  const out = Buffer.allocUnsafe(buf.length);
  let o = 0;
  let from = 0;
  while (cr !== -1) {
    o += buf.copy(out, o, from, cr);
    out[o++] = LF;
    from = buf[cr + 1] === LF ? cr + 2 : cr + 1;
    cr = buf.indexOf(CR, from);
  }
  o += buf.copy(out, o, from);
  return out.subarray(0, o);
}

function countLF(buf: Buffer, end = buf.length): number {
  let n = 0;
  for (let i = buf.indexOf(LF); i !== -1 && i < end; i = buf.indexOf(LF, i + 1)) n++;
  return n;
}

/**
 * The input as chunks of UTF-8 bytes with LF line breaks only, never splitting a character, without a
 * BOM. Throws InputError for a file that is not UTF-8 CSV text. Stopping early (break, return) closes
 * the file.
 */
export async function* readText(input: string | NodeJS.ReadableStream): AsyncGenerator<Buffer, void, undefined> {
  const what = describeSource(input);
  const source = await openSource(input);
  /** Bytes held back for the next chunk: the start of a split character, or a CR that may precede a LF. */
  let carry: Buffer = Buffer.alloc(0);
  let started = false;
  /** Line breaks passed on so far (for the line of an error). */
  let lines = 0;

  const check = (buf: Buffer): void => {
    if (!isUtf8(buf)) {
      // Find the line of the first bad byte for the message.
      const lossy = new TextDecoder('utf-8').decode(buf);
      const at = lossy.indexOf('\uFFFD');
      const line = lines + 1 + countLF(Buffer.from(at >= 0 ? lossy.slice(0, at) : '', 'utf8'));
      throw new InputError(
        `${what} is not UTF-8 text (invalid bytes on line ${line}; Excel's plain "CSV" is Windows-1252): ` +
          `save it as "CSV UTF-8" and try again`,
      );
    }
    const nul = buf.indexOf(0);
    if (nul !== -1) {
      const line = lines + 1 + countLF(buf, nul);
      throw new InputError(`${what} contains binary data (a NUL byte on line ${line}): it is not a CSV text file`);
    }
  };

  /** Validates and normalizes a run of whole characters; returns what to pass on. */
  const pass = (buf: Buffer, final: boolean): Buffer => {
    check(buf);
    if (!final && buf.length > 0 && buf[buf.length - 1] === CR) {
      // It may be the first half of a CRLF split across reads.
      carry = buf.subarray(buf.length - 1);
      buf = buf.subarray(0, buf.length - 1);
    }
    const out = normalizeLineBreaks(buf);
    lines += countLF(out);
    return out;
  };

  try {
    for await (const chunk of source as AsyncIterable<unknown>) {
      let buf = toBuffer(chunk);
      if (carry.length > 0) {
        buf = Buffer.concat([carry, buf]);
        carry = Buffer.alloc(0);
      }
      if (!started) {
        // Hold back the first few bytes until the file's signature can be checked.
        if (buf.length < 4) {
          carry = buf;
          continue;
        }
        started = true;
        checkMagic(buf, what);
        if (buf.subarray(0, 3).equals(BOM)) buf = buf.subarray(3);
      }
      const cut = incompleteTail(buf);
      const whole = cut === buf.length ? buf : buf.subarray(0, cut);
      const tail = cut === buf.length ? undefined : buf.subarray(cut);
      const out = pass(whole, false);
      if (tail) carry = carry.length > 0 ? Buffer.concat([carry, tail]) : Buffer.from(tail);
      if (out.length > 0) yield out;
    }
    if (!started && carry.length > 0) {
      checkMagic(carry, what);
      if (carry.subarray(0, 3).equals(BOM)) carry = carry.subarray(3);
    }
    // What is left: a character cut by the end of the file (invalid), or a final CR.
    const out = pass(carry, true);
    if (out.length > 0) yield out;
  } catch (e) {
    throw readError(e, what);
  } finally {
    // Stopped early or failed: release the file.
    const s = source as NodeJS.ReadableStream & { destroy?: () => void; destroyed?: boolean };
    if (typeof s.destroy === 'function' && !s.destroyed) s.destroy();
  }
}
