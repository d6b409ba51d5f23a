/**
 * exceljs's streaming workbook reader, with the XML of each part decoded as one UTF-8 stream.
 *
 * exceljs 4.4.0 (lib/utils/parse-sax.js) decodes every chunk of a part on its own (`TextDecoder.decode(chunk)`
 * without `stream: true`), so a character whose UTF-8 bytes straddle two chunks becomes U+FFFD: in a
 * 3,000-row sheet of Devanagari names, 4 names came out garbled ("राजेश कुमार ��र्मा"), and they would have
 * been paid under those names (exceljs issue #2316; test/xlsx.test.ts). That module is replaced here,
 * before exceljs's reader loads it, by the same parser fed by a streaming decoder that refuses bytes that are
 * not UTF-8 (an XML part must be UTF-8; the reader's caller turns the error into "cannot be read as a
 * workbook"). The report writer does not parse XML and imports exceljs as it is.
 *
 * exceljs loaded earlier in the process (the report writer, a test) keeps its own modules: this one loads a
 * copy of exceljs's lib with the replaced parser. Loaded first, its copy is the one later imports get.
 */
import { createRequire, Module } from 'node:module';
import path from 'node:path';
import type ExcelJS from 'exceljs';

const req = createRequire(import.meta.url);
const lib = path.join(path.dirname(req.resolve('exceljs/package.json')), 'lib') + path.sep;
const parseSaxPath = req.resolve('exceljs/lib/utils/parse-sax.js');

type SaxEvent = { eventType: 'opentag' | 'text' | 'closetag'; value: unknown };
interface SaxesParser {
  on(event: 'error', f: (e: Error) => void): void;
  on(event: 'opentag' | 'text' | 'closetag', f: (v: unknown) => void): void;
  write(s: string): void;
}
const { SaxesParser } = createRequire(parseSaxPath)('saxes') as { SaxesParser: new () => SaxesParser };

/** exceljs's parse-sax with one decoder per part: the events of each chunk, in order (its inputs, exceljs's
 * own stream iterators and file streams, are all async iterables on Node 20). */
export async function* parseSaxStreaming(iterable: AsyncIterable<Buffer | string>): AsyncGenerator<SaxEvent[], void, undefined> {
  const parser = new SaxesParser();
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let error: Error | undefined;
  parser.on('error', (e) => {
    error = e;
  });
  let events: SaxEvent[] = [];
  parser.on('opentag', (value) => events.push({ eventType: 'opentag', value }));
  parser.on('text', (value) => events.push({ eventType: 'text', value }));
  parser.on('closetag', (value) => events.push({ eventType: 'closetag', value }));
  for await (const chunk of iterable) {
    parser.write(typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
    if (error) throw error;
    yield events;
    events = [];
  }
  // A part that ends inside a character is not UTF-8: the fatal decoder throws here.
  const tail = decoder.decode();
  if (tail !== '') {
    parser.write(tail);
    if (error) throw error;
    yield events;
  }
}

function loadReader(): typeof ExcelJS {
  // exceljs's lib, not its main file: an ESM import of 'exceljs' may already hold a placeholder for the
  // main file (made when the import was linked, loaded when it is evaluated), which must stay as it is.
  const earlier = Object.keys(req.cache).filter((k) => k.startsWith(lib));
  const saved = new Map(earlier.map((k) => [k, req.cache[k]]));
  for (const k of earlier) delete req.cache[k];
  const m = new Module(parseSaxPath);
  m.filename = parseSaxPath;
  m.loaded = true;
  m.exports = parseSaxStreaming;
  req.cache[parseSaxPath] = m;
  try {
    return req(path.join(lib, 'exceljs.nodejs.js')) as typeof ExcelJS;
  } finally {
    // A copy loaded before keeps its modules for whoever requires them next; with none, this copy stays.
    for (const [k, v] of saved) req.cache[k] = v;
  }
}

const ExcelJSReading = loadReader();

/** The streaming reader of a copy of exceljs whose XML parser decodes each part as one UTF-8 stream. */
export const WorkbookReader = ExcelJSReading.stream.xlsx.WorkbookReader;

