import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { CsvRecordParser, type CsvRecord } from '../src/batch/csvRecords.js';

/** Parses `text`, pushed in pieces of the given sizes (the rest in one piece), then ended. */
function records(text: string, pieces: number[] = []): { records: CsvRecord[]; failure: CsvRecordParser['failure'] } {
  const p = new CsvRecordParser(1000);
  const out: CsvRecord[] = [];
  let pos = 0;
  for (const n of pieces) {
    out.push(...p.push(text.slice(pos, pos + n)));
    pos += n;
  }
  out.push(...p.push(text.slice(pos)));
  out.push(...p.end());
  return { records: out, failure: p.failure };
}

const brief = (rs: CsvRecord[]) => rs.map((r) => [r.line, r.endLine, r.terminated, r.cells]);

describe('CsvRecordParser', () => {
  it('gives each record the physical line it starts and ends on, blank lines counted and skipped', () => {
    const { records: rs, failure } = records('h1,h2\n\na,b\n"x, y",z\n\n\nlast,1\n');
    expect(failure).toBeUndefined();
    expect(brief(rs)).toEqual([
      [1, 1, true, ['h1', 'h2']],
      [3, 3, true, ['a', 'b']],
      [4, 4, true, ['x, y', 'z']],
      [7, 7, true, ['last', '1']],
    ]);
  });

  it('undoes doubled quotes; a quote inside an unquoted value is text; text after a closing quote is kept as written', () => {
    const { records: rs } = records('"Flat 1, ""Sunrise""",12" TV,"Sunrise" Apartments,""\n');
    expect(rs[0]!.cells).toEqual(['Flat 1, "Sunrise"', '12" TV', '"Sunrise" Apartments', '']);
  });

  it('a quoted value over line breaks: one record, with the lines its quote opened and closed on', () => {
    const { records: rs } = records('a,b,c\n1,"Addr 4\nstill addr\nend",x\n2,y,z\n');
    expect(brief(rs)).toEqual([
      [1, 1, true, ['a', 'b', 'c']],
      [2, 4, true, ['1', 'Addr 4\nstill addr\nend', 'x']],
      [5, 5, true, ['2', 'y', 'z']],
    ]);
    expect(rs[1]!.multiline).toEqual([{ column: 1, openLine: 2, closeLine: 4 }]);
    expect(rs[0]!.multiline).toBeUndefined();
  });

  it('a second multi-line value in the same record reports its own opening line', () => {
    const { records: rs } = records('"a\nb","c\nd\ne"\n');
    expect(rs[0]!.multiline).toEqual([
      { column: 0, openLine: 1, closeLine: 2 },
      { column: 1, openLine: 2, closeLine: 4 },
    ]);
  });

  it('a last line with no line break is returned by end() with terminated: false', () => {
    const { records: rs } = records('h\nrow,425');
    expect(brief(rs)).toEqual([
      [1, 1, true, ['h']],
      [2, 2, false, ['row', '425']],
    ]);
    expect(brief(records('h\n"quoted"').records)[1]).toEqual([2, 2, false, ['quoted']]);
    expect(brief(records('h\nrow,').records)[1]).toEqual([2, 2, false, ['row', '']]);
  });

  it('a quote that never closes is a failure at the line where it opened, not at the end of the file', () => {
    const { records: rs, failure } = records('h,i\na,b\nc,"open\nd,e\nf,g\n');
    expect(brief(rs)).toEqual([
      [1, 1, true, ['h', 'i']],
      [2, 2, true, ['a', 'b']],
    ]);
    expect(failure).toEqual({ code: 'unclosed_quote', line: 3, column: 1, recordLine: 3 });
  });

  it('a quote still open after maxRecordChars stops parsing, naming where it opened', () => {
    const p = new CsvRecordParser(50);
    expect(p.push('h\nok\n"never closed\n').map((r) => r.cells)).toEqual([['h'], ['ok']]);
    for (let i = 0; i < 10; i++) p.push('more text on another line\n');
    expect(p.failure).toEqual({ code: 'record_too_long', line: 3, quote: { line: 3, column: 0 }, maxChars: 50 });
    expect(p.push('x\n')).toEqual([]);
    expect(p.end()).toEqual([]);
  });

  it('pieces of any size give the same records (a record split anywhere, even inside "")', () => {
    const text = 'h1,h2\n"a ""q"" b",c\n"multi\nline",d\ne,"f"\nlast,"x"';
    const whole = records(text);
    for (let size = 1; size <= 7; size++) {
      const pieces = Array.from({ length: Math.ceil(text.length / size) }, () => size);
      expect(records(text, pieces)).toEqual(whole);
    }
  });
});

/** mulberry32 */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('CsvRecordParser agrees with csv-parse (relax_quotes, relax_column_count, skip_empty_lines)', () => {
  it('on 10,000 random inputs of commas, quotes, line breaks, spaces and letters, pushed in random pieces', () => {
    const rand = rng(20261127);
    const alphabet = ['a', 'b', ' ', ',', ',', '"', '\n', '\n', 'é', 'क'];
    let compared = 0;
    for (let t = 0; t < 10_000; t++) {
      let text = '';
      const len = Math.floor(rand() * 30);
      for (let i = 0; i < len; i++) text += alphabet[Math.floor(rand() * alphabet.length)];
      const pieces: number[] = [];
      for (let left = text.length; left > 0; ) {
        const n = Math.floor(rand() * 6);
        pieces.push(n);
        left -= n;
      }
      const mine = records(text, pieces);
      const whole = records(text);
      if (JSON.stringify(whole) !== JSON.stringify(mine)) expect(whole, JSON.stringify(text)).toEqual(mine);
      // The one place the dialects differ on purpose: text after a closing quote makes the value literal,
      // and here it stays exactly as written, while csv-parse undoes the doubled quotes before the text.
      if (mine.records.some((r) => r.cells.some((c) => c.startsWith('"') && c.includes('""')))) continue;
      let theirs: { record: string[]; info: { lines: number } }[] | 'failure';
      try {
        theirs = parse(text, { relax_quotes: true, relax_column_count: true, record_delimiter: '\n', skip_empty_lines: true, info: true }) as unknown as {
          record: string[];
          info: { lines: number };
        }[];
      } catch (e) {
        if ((e as { code?: string }).code !== 'CSV_QUOTE_NOT_CLOSED') throw e;
        theirs = 'failure';
      }
      const ours = mine.failure ? 'failure' : mine.records.map((r) => [r.cells, r.endLine]);
      const expected = theirs === 'failure' ? 'failure' : theirs.map((r) => [r.record, r.info.lines]);
      if (JSON.stringify(ours) !== JSON.stringify(expected)) expect(ours, JSON.stringify(text)).toEqual(expected);
      compared++;
    }
    expect(compared).toBeGreaterThan(7_500);
  });
});
