import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeaderMapping } from '../src/batch/columns.js';
import { InputError } from '../src/errors.js';
import { readBatchRows, type IngestRow } from '../src/batch/ingest.js';

const HEADER =
  'beneficiary_name,beneficiary_email,beneficiary_mobile_no,beneficiary_address,payment_method,beneficiary_acc_no,bank_name,ifsc,amount,remarks';

function line(name: string, acc = '99999999999', amount = '100', extra: Partial<{ ifsc: string; mobile: string; address: string }> = {}) {
  return [
    name,
    'test.test@gmail.com',
    extra.mobile ?? '7878787878',
    extra.address ?? 'NOIDA',
    'IMPS',
    acc,
    'SBI',
    extra.ifsc ?? 'SBIN0016745',
    amount,
    'salary',
  ].join(',');
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'batch-ingest-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
async function file(content: string | Buffer): Promise<string> {
  const p = join(dir, `f${n++}.csv`);
  await writeFile(p, content);
  return p;
}

async function collect(
  input: string | NodeJS.ReadableStream,
  opts: { batch?: string; defaultUserId?: string; onHeader?: (m: HeaderMapping) => void } = {},
): Promise<IngestRow[]> {
  const rows: IngestRow[] = [];
  for await (const r of readBatchRows(input, { batch: opts.batch ?? 'b1', defaultUserId: opts.defaultUserId ?? 'u1', onHeader: opts.onHeader })) {
    rows.push(r);
  }
  return rows;
}

async function inputError(input: string | NodeJS.ReadableStream): Promise<InputError> {
  try {
    await collect(input);
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).exitCode).toBe(2);
    return e as InputError;
  }
  throw new Error('expected an InputError');
}

describe('readBatchRows: parsing', () => {
  it('handles a BOM, CRLF, quoted commas and quotes, blank lines, with spreadsheet row numbers', async () => {
    const csv =
      '\uFEFF' +
      [
        HEADER,
        line('Row Two'),
        line('Row Three', '11111111111', '200', { address: '"12/3 MG Road, Bengaluru"' }),
        '',
        '',
        line('Row Six', '22222222222', '"1,00,000.50"', { address: '"Flat 1, ""Sunrise"""' }),
        ',,,,,,,,,',
        line('José राजेश', '33333333333'),
      ].join('\r\n') +
      '\r\n';
    const rows = await collect(await file(csv));
    expect(rows.map((r) => [r.rowNo, r.name])).toEqual([
      [2, 'Row Two'],
      [3, 'Row Three'],
      [6, 'Row Six'],
      [8, 'José राजेश'],
    ]);
    expect(rows.every((r) => r.errors.length === 0)).toBe(true);
    expect(rows[1]!.address).toBe('12/3 MG Road, Bengaluru');
    expect(rows[2]!.address).toBe('Flat 1, "Sunrise"');
    expect(rows[2]!.amountPaise).toBe(10000050n);
  });

  it('decodes correctly when bytes arrive one at a time (multi-byte characters and CRLF split)', async () => {
    const csv = Buffer.from(`\uFEFF${HEADER}\r\n${line('José राजेश')}\r\n"Quoted, Name",x@y.in,9845012345,A,NEFT,12345678,SBI,SBIN0016745,5,\r\n`);
    const chunks = [...csv].map((b) => Buffer.from([b]));
    const rows = await collect(Readable.from(chunks));
    expect(rows.map((r) => [r.rowNo, r.name])).toEqual([
      [2, 'José राजेश'],
      [3, 'Quoted, Name'],
    ]);
    expect(rows.map((r) => r.errors)).toEqual([[], []]);
  });

  it('a quoted value over a line break refuses the file at the line it opened, even arriving byte by byte', async () => {
    const csv = Buffer.from(`\uFEFF${HEADER}\r\n${line('José राजेश')}\r\n"Multi\r\nLine",x@y.in,9845012345,A,NEFT,12345678,SBI,SBIN0016745,5,\r\n`);
    const e = await inputError(Readable.from([...csv].map((b) => Buffer.from([b]))));
    expect(e.message).toMatch(/^the CSV input is refused: line 3: the value in "beneficiary_name" \(column 1\) opens a quote \(\"\) that closes only on line 4/);
  });

  it('accepts alias headers and reports ignored columns', async () => {
    let mapping: HeaderMapping | undefined;
    const csv = 'Name,Email,Phone,Address,Mode,Account No,IFSC Code,Amount,Department\nA B,a@b.in,+91 98450 12345,Pune,neft,12345678,hdfc0005989,"Rs 2,500",Sales\n';
    const rows = await collect(await file(csv), { onHeader: (m) => (mapping = m) });
    expect(mapping!.ignored).toEqual(['Department (column 9)']);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      rowNo: 2,
      mobile: '9845012345',
      method: 'NEFT',
      ifsc: 'HDFC0005989',
      bankName: 'HDFC Bank',
      amountPaise: 250000n,
    });
    expect(rows[0]!.errors).toEqual([]);
    expect(rows[0]!.warnings.map((w) => w.code)).toEqual(['bank_name_filled']);
  });

  it('a short or long row is a row error, not a crash; trailing empty cells are fine', async () => {
    const csv = [HEADER, 'A,a@b.in,9845012345,Pune,IMPS,12345678,SBI,SBIN0016745,5', line('Long') + ',extra', line('Padded') + ',,', line('Fine')].join('\n') + '\n';
    const rows = await collect(await file(csv));
    expect(rows.map((r) => r.rowNo)).toEqual([2, 3, 4, 5]);
    expect(rows[0]!.errors[0]).toMatchObject({ field: 'row', code: 'field_count', message: expect.stringMatching(/^row has 9 fields, header has 10/) });
    expect(rows[1]!.errors[0]).toMatchObject({ code: 'field_count', message: expect.stringMatching(/^row has 11 fields, header has 10/) });
    expect(rows[2]!.errors).toEqual([]);
    expect(rows[3]!.errors).toEqual([]);
  });

  it('rows with a bad value are yielded with their errors, in file order', async () => {
    const csv = [HEADER, line('Good'), line('Bad', '7.87879E+09'), line('Good2', '44444444444')].join('\n') + '\n';
    const rows = await collect(await file(csv));
    expect(rows.map((r) => r.errors.length)).toEqual([0, 1, 0]);
    expect(rows[1]!.orderId).toBeNull();
    expect(rows[1]!.orderIdSource).toBeNull();
  });
});

describe('readBatchRows: file-level problems are InputError', () => {
  it('missing file', async () => {
    expect((await inputError(join(dir, 'nope.csv'))).message).toMatch(/not found/);
  });
  it('a directory', async () => {
    const d = join(dir, 'adir');
    await mkdir(d);
    expect((await inputError(d)).message).toMatch(/directory/);
  });
  it('empty file', async () => {
    expect((await inputError(await file(''))).message).toMatch(/empty/);
  });
  it('only blank lines', async () => {
    expect((await inputError(await file('\r\n\n  \n'))).message).toMatch(/no header/);
  });
  it('header but no rows', async () => {
    expect((await inputError(await file(HEADER + '\n'))).message).toMatch(/no data rows/);
  });
  it('missing column', async () => {
    expect((await inputError(await file(HEADER.replace(',ifsc', '') + '\n'))).message).toMatch(/missing the required column ifsc/);
  });
  it('not UTF-8 (Windows-1252 é), naming the line', async () => {
    const bytes = Buffer.concat([Buffer.from(`${HEADER}\n${line('A')}\n`), Buffer.from('Jos'), Buffer.from([0xe9]), Buffer.from(',x@y.in\n')]);
    const e = await inputError(await file(bytes));
    expect(e.message).toMatch(/not UTF-8/);
    expect(e.message).toMatch(/line 3/);
  });
  it('an Excel workbook', async () => {
    expect((await inputError(await file(Buffer.from([0x50, 0x4b, 0x03, 0x04, 1, 2, 3])))).message).toMatch(/xlsx/);
  });
  it('UTF-16', async () => {
    expect((await inputError(await file(Buffer.from('\uFEFFname', 'utf16le')))).message).toMatch(/UTF-16/);
  });
  it('binary (NUL bytes)', async () => {
    expect((await inputError(await file(Buffer.from('abc\u0000def\n')))).message).toMatch(/binary/);
  });
  it('an unclosed quote', async () => {
    const e = await inputError(await file(`${HEADER}\n${line('A')}\n"B,x@y.in\n${line('C')}\n`));
    expect(e.message).toMatch(/never closed/);
  });
  it('a stream input too', async () => {
    expect((await inputError(Readable.from([Buffer.alloc(0)]))).message).toMatch(/no header/);
  });
});

describe('readBatchRows: duplicates and order ids', () => {
  const withIds = (id: string, name: string, acc: string) => `${line(name, acc)},${id}`;

  it('a repeated explicit order_id is an error on the later row naming the first', async () => {
    const csv = [HEADER + ',order_id', withIds('A-1', 'a', '11111111'), withIds('A-2', 'b', '22222222'), withIds('A-1', 'c', '33333333'), withIds('', 'd', '44444444')].join('\n') + '\n';
    const rows = await collect(await file(csv));
    expect(rows.map((r) => [r.orderId, r.orderIdSource])).toEqual([
      ['A-1', 'csv'],
      ['A-2', 'csv'],
      [null, null],
      [expect.stringMatching(/^PO/), 'derived'],
    ]);
    expect(rows[2]!.errors).toEqual([
      { field: 'order_id', code: 'order_id_duplicate', message: expect.stringMatching(/^order_id A-1 is also on row 2: order_ids must be unique/) },
    ]);
  });

  it('same account, IFSC and amount: warning naming the earlier row, distinct derived ids', async () => {
    const csv = [HEADER, line('a'), line('b', '55555555'), line('a again'), line('a third time'), line('a other amount', '99999999999', '101')].join('\n') + '\n';
    const rows = await collect(await file(csv));
    expect(rows.map((r) => r.warnings.map((w) => w.message))).toEqual([
      [],
      [],
      [expect.stringMatching(/^same account, IFSC and amount as row 2: check it is not a duplicate payment/)],
      [expect.stringMatching(/as row 2/)],
      [],
    ]);
    expect(rows.every((r) => r.errors.length === 0)).toBe(true);
    const ids = rows.map((r) => r.orderId);
    expect(new Set(ids).size).toBe(5);
    expect(rows[0]!.contentKey).toBe('99999999999|SBIN0016745|10000');
    expect(rows[0]!.contentKey).toBe(rows[2]!.contentKey);
  });

  it('derived ids survive reordering, a name fix, a mobile fix and added rows; change with the batch', async () => {
    const original = [HEADER, line('Ravi Kumr', '10000001'), line('Sita', '10000002', '250.50'), line('Twin', '10000003'), line('Twin', '10000003'), line('Bad Mobile', '10000004', '10', { mobile: '12345' })];
    const corrected = [HEADER, line('New Hire', '10000009'), line('Twin', '10000003'), line('Bad Mobile', '10000004', '10'), line('Sita', '10000002', '250.50'), line('Twin', '10000003'), line('Ravi Kumar', '10000001')];
    const a = await collect(await file(original.join('\n') + '\n'), { batch: 'payroll-2025-03' });
    const b = await collect(await file(corrected.join('\r\n') + '\r\n'), { batch: 'payroll-2025-03' });
    const byKey = (rows: IngestRow[]) => rows.map((r) => `${r.accountNumber}:${r.orderId}`).sort();
    const ida = byKey(a);
    const idb = byKey(b);
    for (const x of ida) expect(idb).toContain(x);
    expect(idb).toHaveLength(ida.length + 1);
    expect(a[4]!.errors.map((e) => e.field)).toEqual(['beneficiary_mobile_no']);
    expect(a[4]!.orderIdSource).toBe('derived');
    const c = await collect(await file(original.join('\n') + '\n'), { batch: 'payroll-2025-04' });
    for (let i = 0; i < a.length; i++) expect(c[i]!.orderId).not.toBe(a[i]!.orderId);
  });
});

describe('readBatchRows: payee reference and source cells', () => {
  it('maps a reference column, keeps each record\'s cells as read, and warns on a reference used twice', async () => {
    let mapping: HeaderMapping | undefined;
    const csv = [
      `${HEADER},Employee Code,Department`,
      `${line('A', '10000001')}, E-00042 ,Sales`,
      `${line('B', '10000002')},,Ops`,
      `${line('C', '10000003')},e-00042,Ops`,
      `${line('D', '10000004')},1.2E+05,Ops`,
    ].join('\n') + '\n';
    const rows = await collect(await file(csv), { onHeader: (m) => (mapping = m) });
    expect(mapping!.reference).toEqual({ index: 10, header: 'Employee Code' });
    expect(mapping!.ignored).toEqual(['Department (column 12)']);
    expect(rows.map((r) => r.reference)).toEqual(['E-00042', null, 'e-00042', null]);
    expect(rows[0]!.source).toEqual([...line('A', '10000001').split(','), ' E-00042 ', 'Sales']);
    expect(rows[0]!.errors).toEqual([]);
    expect(rows[2]!.warnings.map((w) => [w.code, w.message])).toEqual([
      ['reference_duplicate', expect.stringMatching(/^reference "e-00042" is also on row 2: check it is not the same payee paid twice/)],
    ]);
    // A reference a spreadsheet turned into a number with lost digits cannot match anything: an error.
    expect(rows[3]!.errors.map((e) => [e.field, e.code])).toEqual([['reference', 'scientific_notation']]);
  });
});

describe('readBatchRows: consumer stops early', () => {
  it('can break out without hanging', async () => {
    const rows = Array.from({ length: 5000 }, (_, i) => line(`n${i}`, String(10000000 + i)));
    const p = await file([HEADER, ...rows].join('\n') + '\n');
    let seen = 0;
    for await (const r of readBatchRows(p, { batch: 'x', defaultUserId: 'u' })) {
      seen++;
      if (r.rowNo === 10) break;
    }
    expect(seen).toBe(9);
  });
});

describe('readBatchRows: line breaks and characters across reads', () => {
  const rowsOf = async (chunks: Buffer[]) => (await collect(Readable.from(chunks))).map((r) => [r.rowNo, r.name]);

  it('old Mac line breaks (lone CR), and a CRLF split between two reads, count lines exactly', async () => {
    const csv = `${HEADER}\r${line('A')}\r\r${line('B')}\r\n${line('C')}\r\n`;
    expect(await rowsOf([Buffer.from(csv)])).toEqual([[2, 'A'], [4, 'B'], [5, 'C']]);
    const at = csv.indexOf('\r\n') + 1; // between the CR and the LF
    expect(await rowsOf([Buffer.from(csv.slice(0, at)), Buffer.from(csv.slice(at))])).toEqual([[2, 'A'], [4, 'B'], [5, 'C']]);
  });

  it('a file ending in a CR is terminated (the CR is its last line break)', async () => {
    expect(await rowsOf([Buffer.from(`${HEADER}\r\n${line('A')}\r`)])).toEqual([[2, 'A']]);
  });

  it('a character cut by the end of the file is not UTF-8 (a half-written file), naming its line', async () => {
    const bytes = Buffer.from(`${HEADER}\n${line('A')}\nराम`);
    const e = await inputError(Readable.from([bytes.subarray(0, bytes.length - 1)]));
    expect(e.message).toMatch(/not UTF-8 text \(invalid bytes on line 3/);
  });

  it('a Hindi row and an ASCII row decode right (each line is decoded on its own)', async () => {
    const rows = await collect(await file(`${HEADER}\n${line('राम')}\n${line('Ram')}\n`));
    expect(rows.map((r) => r.name)).toEqual(['राम', 'Ram']);
  });
});
