/**
 * Bytes in, text out: opens the CSV, refuses what is not UTF-8 text (a workbook, UTF-16, a PDF, binary,
 * invalid UTF-8) naming the line, drops a UTF-8 BOM, and turns CRLF and lone CR into LF so that line
 * numbers are exact and values carry plain \n line breaks.
 */
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

/** Result of reading the whole input: whether its last character was a line break. */
export interface TextEnd {
  endsWithNewline: boolean;
}

/**
 * The input as LF-only text chunks. Throws InputError for a file that is not UTF-8 CSV text. After the
 * last chunk, `end.endsWithNewline` tells whether the input ended with a line break. Stopping early
 * (break, return) closes the file.
 */
export async function* readText(
  input: string | NodeJS.ReadableStream,
  end: TextEnd = { endsWithNewline: false },
): AsyncGenerator<string, void, undefined> {
  const what = describeSource(input);
  const source = await openSource(input);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let head: Buffer | null = Buffer.alloc(0);
  let pendingCR = false;
  /** Line breaks passed on so far (for the line of an error). */
  let lines = 0;
  let last = '';

  const decode = (buf: Buffer, final: boolean): string => {
    let text: string;
    try {
      text = decoder.decode(buf, { stream: !final });
    } catch (e) {
      // Find the line of the first bad byte for the message.
      const lossy = new TextDecoder('utf-8').decode(buf);
      const at = lossy.indexOf('\uFFFD');
      const line = lines + 1 + countNewlines(at >= 0 ? lossy.slice(0, at) : '');
      throw new InputError(
        `${what} is not UTF-8 text (invalid bytes on line ${line}; Excel's plain "CSV" is Windows-1252): ` +
          `save it as "CSV UTF-8" and try again`,
        { cause: e },
      );
    }
    const nul = text.indexOf('\u0000');
    if (nul !== -1) {
      const line = lines + 1 + countNewlines(text.slice(0, nul));
      throw new InputError(`${what} contains binary data (a NUL byte on line ${line}): it is not a CSV text file`);
    }
    return text;
  };

  const normalize = (text: string, final: boolean): string => {
    if (pendingCR) {
      text = '\r' + text;
      pendingCR = false;
    }
    if (!final && text.endsWith('\r')) {
      // It may be the first half of a CRLF split across chunks.
      pendingCR = true;
      text = text.slice(0, -1);
    }
    const out = text.includes('\r') ? text.replace(/\r\n?/g, '\n') : text;
    lines += countNewlines(out);
    if (out.length > 0) last = out;
    return out;
  };

  try {
    for await (const chunk of source as AsyncIterable<unknown>) {
      let buf = toBuffer(chunk);
      if (head) {
        // Hold back the first few bytes until the file's signature can be checked.
        head = head.length === 0 ? buf : Buffer.concat([head, buf]);
        if (head.length < 4) continue;
        checkMagic(head, what);
        buf = head;
        head = null;
      }
      const text = normalize(decode(buf, false), false);
      if (text.length > 0) yield text;
    }
    if (head && head.length > 0) checkMagic(head, what);
    const rest = normalize(decode(head ?? Buffer.alloc(0), true), true);
    if (rest.length > 0) yield rest;
    end.endsWithNewline = last.endsWith('\n');
  } catch (e) {
    throw readError(e, what);
  } finally {
    // Stopped early or failed: release the file.
    const s = source as NodeJS.ReadableStream & { destroy?: () => void; destroyed?: boolean };
    if (typeof s.destroy === 'function' && !s.destroyed) s.destroy();
  }
}
