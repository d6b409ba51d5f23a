import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  bodyLine,
  serializeBody,
  sign,
  signatureMessage,
  signaturesEqual,
  signingPath,
  type GetBodyMode,
  type JsonEscapeMode,
} from '../src/alliance/signing.js';

/**
 * Known answers produced by the API document's own Python and JavaScript samples
 * (test/fixtures/gen-signatures.py and .cjs; see their header to regenerate).
 */
interface Case {
  name: string;
  sample: 'python' | 'javascript';
  secret: string;
  method: 'GET' | 'POST';
  path: string;
  timestamp: string;
  input: Record<string, unknown> | null;
  signedBody: string;
  hex: string;
}
const fixtures = JSON.parse(readFileSync(new URL('./fixtures/signatures.json', import.meta.url), 'utf8')) as { cases: Case[] };
const cases = fixtures.cases;

/** The Python sample json.dumps its dict (ASCII escapes) and signs "{}" for GET; the JS sample signs the string sent, "" for GET. */
const MODES: Record<Case['sample'], { escape: JsonEscapeMode; getBody: GetBodyMode }> = {
  python: { escape: 'ascii', getBody: '{}' },
  javascript: { escape: 'none', getBody: 'empty' },
};

/** What our code sends for a case: nothing for GET, the serialized object for POST. */
function sentBody(c: Case): string | undefined {
  if (c.method === 'GET') return undefined;
  return serializeBody(c.input, MODES[c.sample].escape);
}

describe('known answers from the document samples', () => {
  it('covers both samples, GET and POST, non-ASCII and "/"', () => {
    expect(cases.filter((c) => c.sample === 'python').length).toBeGreaterThanOrEqual(4);
    expect(cases.filter((c) => c.sample === 'javascript').length).toBeGreaterThanOrEqual(4);
    expect(cases.some((c) => c.method === 'GET' && c.path === 'api/v1/payout/ORD-1/status')).toBe(true);
    const unicode = cases.filter((c) => c.name.endsWith('-unicode'));
    expect(unicode).toHaveLength(2);
    for (const c of unicode) {
      expect(c.input).toMatchObject({ beneficiary_name: 'राम शर्मा', user_id: 'José', beneficiary_address: '12/3 MG Road' });
    }
    for (const c of cases) expect(c.hex).toMatch(/^[0-9a-f]{64}$/);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s: same body line and same hex', (_name, c) => {
    const { getBody } = MODES[c.sample];
    const line = bodyLine(c.method, sentBody(c), getBody);
    expect(line).toBe(c.signedBody);
    expect(sign(c.secret, c.method, c.path, line, c.timestamp)).toBe(c.hex);
    // A numeric timestamp signs the same as its decimal string.
    expect(sign(c.secret, c.method, c.path, line, Number(c.timestamp))).toBe(c.hex);
  });

  it('Python and JavaScript agree on an ASCII body and differ on a non-ASCII one', () => {
    const by = (n: string) => cases.find((c) => c.name === n)!;
    expect(by('py-post-initiate-doc').hex).toBe(by('js-post-initiate-doc').hex);
    expect(by('py-post-initiate-unicode').hex).not.toBe(by('js-post-initiate-unicode').hex);
    expect(by('py-post-initiate-unicode').signedBody).toContain('\\u0930\\u093e\\u092e');
    expect(by('py-post-initiate-unicode').signedBody).toContain('Jos\\u00e9');
    expect(by('js-post-initiate-unicode').signedBody).toContain('राम शर्मा');
    // The GET rule: Python signs "{}", the document's text (and the JS case) an empty line.
    expect(by('py-get-balance').signedBody).toBe('{}');
    expect(by('js-get-balance').signedBody).toBe('');
    expect(by('py-get-balance').hex).not.toBe(by('js-get-balance').hex);
  });

  it('a wrong escape mode does not reproduce the Python sample for non-ASCII', () => {
    const c = cases.find((x) => x.name === 'py-post-initiate-unicode')!;
    for (const escape of ['none', 'php'] as const) {
      const line = bodyLine('POST', serializeBody(c.input, escape), '{}');
      expect(line).not.toBe(c.signedBody);
      expect(sign(c.secret, c.method, c.path, line, c.timestamp)).not.toBe(c.hex);
    }
  });
});

describe('signature message', () => {
  it('is METHOD\\nPATH\\nBODY\\nTIMESTAMP\\n, HMAC-SHA256 lowercase hex over UTF-8', () => {
    expect(signatureMessage('post', 'api/v1/x', '{"a":1}', 17)).toBe('POST\napi/v1/x\n{"a":1}\n17\n');
    const want = createHmac('sha256', 's').update('POST\napi/v1/x\n{"a":"é"}\n17\n', 'utf8').digest('hex');
    expect(sign('s', 'POST', 'api/v1/x', '{"a":"é"}', 17)).toBe(want);
    expect(sign('s', 'POST', 'api/v1/x', '{"a":"é"}', 18)).not.toBe(want);
    expect(sign('t', 'POST', 'api/v1/x', '{"a":"é"}', 17)).not.toBe(want);
  });
});

describe('serializeBody', () => {
  const body = { beneficiary_name: 'राम शर्मा', user_id: 'José', beneficiary_address: '12/3 MG Road', amount: 100.5, remarks: null };

  it("'none' is JSON.stringify: UTF-8 as is, '/' kept, key order kept", () => {
    expect(serializeBody(body, 'none')).toBe(
      '{"beneficiary_name":"राम शर्मा","user_id":"José","beneficiary_address":"12/3 MG Road","amount":100.5,"remarks":null}',
    );
    expect(serializeBody({ b: 1, a: 2 })).toBe('{"b":1,"a":2}');
  });

  it("'ascii' escapes non-ASCII (lowercase \\uXXXX) and DEL but keeps '/'", () => {
    expect(serializeBody(body, 'ascii')).toBe(
      '{"beneficiary_name":"\\u0930\\u093e\\u092e \\u0936\\u0930\\u094d\\u092e\\u093e","user_id":"Jos\\u00e9","beneficiary_address":"12/3 MG Road","amount":100.5,"remarks":null}',
    );
    expect(serializeBody({ r: 'a\x7fb😀' }, 'ascii')).toBe('{"r":"a\\u007fb\\ud83d\\ude00"}');
  });

  it("'php' escapes '/' as '\\/' and non-ASCII, like PHP json_encode", () => {
    const php = serializeBody(body, 'php');
    expect(php).toBe(
      '{"beneficiary_name":"\\u0930\\u093e\\u092e \\u0936\\u0930\\u094d\\u092e\\u093e","user_id":"Jos\\u00e9","beneficiary_address":"12\\/3 MG Road","amount":100.5,"remarks":null}',
    );
    // Still the same JSON value.
    expect(JSON.parse(php)).toEqual(body);
    // A backslash before a slash stays unambiguous.
    const tricky = { p: 'a\\/b' };
    expect(JSON.parse(serializeBody(tricky, 'php'))).toEqual(tricky);
  });

  it('throws on a value JSON cannot represent', () => {
    expect(() => serializeBody(undefined)).toThrow(TypeError);
  });
});

describe('bodyLine', () => {
  it('GET: empty or "{}" by mode, whatever body is given', () => {
    expect(bodyLine('GET', undefined, 'empty')).toBe('');
    expect(bodyLine('get', undefined, '{}')).toBe('{}');
    expect(bodyLine('GET', '{"x":1}', 'empty')).toBe('');
  });

  it('POST: the bytes sent, or "{}" when empty', () => {
    expect(bodyLine('POST', '{"a":1}', 'empty')).toBe('{"a":1}');
    expect(bodyLine('POST', '{"a":1}', '{}')).toBe('{"a":1}');
    expect(bodyLine('POST', undefined, 'empty')).toBe('{}');
    expect(bodyLine('POST', '', 'empty')).toBe('{}');
  });
});

describe('signingPath', () => {
  it('strips the leading slash(es), the query and any origin', () => {
    expect(signingPath('api/v1/balance')).toBe('api/v1/balance');
    expect(signingPath('/api/v1/balance')).toBe('api/v1/balance');
    expect(signingPath('//api/v1/balance')).toBe('api/v1/balance');
    expect(signingPath('/api/v1/payout/ORD-1/status?x=1&y=2')).toBe('api/v1/payout/ORD-1/status');
    expect(signingPath('https://api.example.com/api/v1/balance?x=1')).toBe('api/v1/balance');
    expect(signingPath('HTTP://127.0.0.1:8080/api/v1/balance')).toBe('api/v1/balance');
  });
});

describe('signaturesEqual', () => {
  const a = sign('s', 'GET', 'api/v1/balance', '', 1);
  const b = sign('s', 'GET', 'api/v1/balance', '', 2);

  it('true only for the same hex; the received side is case-insensitive', () => {
    expect(signaturesEqual(a, a)).toBe(true);
    expect(signaturesEqual(a, a.toUpperCase())).toBe(true);
    expect(signaturesEqual(a, b)).toBe(false);
    // One flipped last character.
    const flipped = a.slice(0, -1) + (a.endsWith('0') ? '1' : '0');
    expect(signaturesEqual(a, flipped)).toBe(false);
  });

  it('false (not a throw) for different lengths, empty and non-ASCII input', () => {
    expect(signaturesEqual(a, a.slice(0, 63))).toBe(false);
    expect(signaturesEqual(a, a + '0')).toBe(false);
    expect(signaturesEqual(a, '')).toBe(false);
    // 64 characters, but more than 64 bytes in UTF-8.
    expect(signaturesEqual(a, 'é'.repeat(64))).toBe(false);
  });
});
