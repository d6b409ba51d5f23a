import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Request signing, shared by the client and the sandbox.
 *
 * The document's rule: message = METHOD \n PATH \n BODY \n TIMESTAMP \n, HMAC-SHA256 keyed with the
 * secret key, lowercase hex. PATH has no leading slash ("api/v1/balance").
 *
 * Where the document contradicts itself:
 * - GET body line: the text says empty, the Python sample signs "{}". `getBody` picks.
 * - Body bytes: the signature covers exactly the bytes sent. A server that re-encodes JSON before
 *   checking would compute a different string for non-ASCII or "/" characters; `escape` picks the
 *   encoding that matches such a server.
 */

/** How a GET request's body line is signed. 'empty' is the document's text; '{}' its Python sample. */
export type GetBodyMode = 'empty' | '{}';

/**
 * How a JSON body is serialized (and so signed).
 * - 'none':  JSON.stringify, UTF-8 as is (the JavaScript sample).
 * - 'ascii': non-ASCII (and DEL) as \uXXXX, "/" kept (Python's json.dumps default, as in the Python sample).
 * - 'php':   non-ASCII as \uXXXX and "/" as "\/" (PHP's json_encode default).
 */
export type JsonEscapeMode = 'none' | 'ascii' | 'php';

/** The Timestamp header: milliseconds (the document's text and every sample) or seconds (its header table). */
export type TimestampUnit = 'ms' | 's';
export const TIMESTAMP_UNITS: readonly TimestampUnit[] = ['ms', 's'];

export const JSON_ESCAPE_MODES: readonly JsonEscapeMode[] = ['none', 'ascii', 'php'];
export const GET_BODY_MODES: readonly GetBodyMode[] = ['empty', '{}'];

/** "/api/v1/balance" or "https://x/api/v1/balance" -> "api/v1/balance" */
export function signingPath(pathOrUrl: string): string {
  let p = pathOrUrl;
  if (/^https?:\/\//i.test(p)) p = new URL(p).pathname;
  const q = p.indexOf('?');
  if (q >= 0) p = p.slice(0, q);
  return p.replace(/^\/+/, '');
}

/** Compact JSON in the chosen escaping. Key order is the object's own order. */
export function serializeBody(body: unknown, escape: JsonEscapeMode = 'none'): string {
  const json = JSON.stringify(body);
  if (json === undefined) throw new TypeError('body is not JSON-serializable');
  if (escape === 'none') return json;
  // Python's json.dumps escapes everything outside printable ASCII, DEL (0x7f) included; PHP keeps DEL.
  const escaped = escape === 'ascii' ? /[\u007f-\uffff]/g : /[\u0080-\uffff]/g;
  let out = json.replace(escaped, (ch) => '\\u' + ch.charCodeAt(0).toString(16).padStart(4, '0'));
  if (escape === 'php') out = out.replace(/\//g, '\\/');
  return out;
}

/** The body line for a request: for GET per `getBody`; for any other method the bytes sent, or "{}" when empty. */
export function bodyLine(method: string, body: string | undefined, getBody: GetBodyMode): string {
  if (method.toUpperCase() === 'GET') return getBody === '{}' ? '{}' : '';
  return body === undefined || body === '' ? '{}' : body;
}

export function signatureMessage(method: string, path: string, body: string, timestamp: string | number): string {
  return `${method.toUpperCase()}\n${path}\n${body}\n${String(timestamp)}\n`;
}

export function sign(secret: string, method: string, path: string, body: string, timestamp: string | number): string {
  return createHmac('sha256', secret).update(signatureMessage(method, path, body, timestamp), 'utf8').digest('hex');
}

/** Constant-time comparison of a received hex signature with the expected one. */
export function signaturesEqual(expectedHex: string, receivedHex: string): boolean {
  const a = Buffer.from(expectedHex, 'utf8');
  const b = Buffer.from(receivedHex.toLowerCase(), 'utf8');
  if (a.length !== b.length) {
    // Still spend the time of a comparison so length is the only thing that leaks.
    timingSafeEqual(a, a);
    return false;
  }
  return timingSafeEqual(a, b);
}
