/**
 * Generates a large, realistic payout CSV for benchmarks: canonical headers, IFSCs that exist in the
 * branch data, Indian names and cities, amounts within each method's limits. With `invalidEvery: n`,
 * every n-th row is broken in one of several ways (rotating). Deterministic for a given seed.
 *
 *   node dist/bench/gen-csv.js out.csv 1000000 [invalidEvery] [seed]
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { branchCodesOf } from '../src/batch/ifscData.js';
import { CANONICAL_FIELDS } from '../src/batch/columns.js';
import { Rng } from '../src/sandbox/rng.js';

export interface GenerateOptions {
  /** Break every n-th data row (1-based); 0 or undefined for none. */
  invalidEvery?: number;
  seed?: number;
}

/** The API's field names, as a payroll export would have them; ids are derived (no order_id, user_id, reference). */
export const GEN_HEADER = CANONICAL_FIELDS.filter((f) => f !== 'order_id' && f !== 'user_id' && f !== 'reference');

/** The ways a generated invalid row is broken, in rotation. */
export const INVALID_KINDS = [
  'bad_ifsc',
  'bad_mobile',
  'scientific_account',
  'negative_amount',
  'upi_over_limit',
  'bad_email',
] as const;

const FIRST = [
  'Aarav', 'Priya', 'Rohan', 'Sneha', 'José', 'Ananya', 'Vikram', 'Kavya', 'Arjun', 'Divya', 'Siddharth', 'Meera',
  'Aditya', 'Pooja', 'Karan', 'Neha', 'Rahul', 'Ishita', 'Manish', 'Lakshmi', 'Farhan', 'Simran', 'Nikhil', 'Ayesha',
  'राजेश', 'सुनीता', 'Harish', 'Tanvi', 'Deepak', 'Ritu',
];
const LAST = [
  'Sharma', 'Patel', 'Iyer', 'Reddy', 'Fernandes', 'Gupta', 'Singh', 'Nair', 'Mehta', 'Menon', 'Joshi', 'Krishnan',
  'Verma', 'Desai', 'Malhotra', 'Chatterjee', 'Bose', 'Banerjee', 'Agarwal', 'Khan', 'कुमार', 'Rao', 'Shah', 'Yadav',
];
const PLACES = [
  '12/3 MG Road, Bengaluru', 'Andheri East, Mumbai', 'Sector 62, Noida', 'Anna Nagar, Chennai', 'Jubilee Hills, Hyderabad',
  'Kothrud, Pune', 'Salt Lake, Kolkata', 'Civil Lines, Jaipur', 'Gomti Nagar, Lucknow', 'Navrangpura, Ahmedabad',
  'Flat 4, "Sunrise", Kochi', 'NOIDA',
];
const BANKS: ReadonlyArray<[code: string, name: string, accountDigits: number, weight: number]> = [
  ['SBIN', 'SBI', 11, 30],
  ['HDFC', 'HDFC Bank', 14, 18],
  ['ICIC', 'ICICI Bank', 12, 15],
  ['UTIB', 'Axis Bank', 15, 10],
  ['KKBK', 'Kotak Mahindra Bank', 10, 6],
  ['PUNB', 'Punjab National Bank', 16, 8],
  ['BARB', 'Bank of Baroda', 14, 6],
  ['CNRB', 'Canara Bank', 13, 5],
  ['YESB', 'Yes Bank', 15, 2],
];
const DOMAINS = ['gmail.com', 'yahoo.co.in', 'outlook.com', 'rediffmail.com', 'example.in'];

/** The sandbox's seeded PRNG (mulberry32), as a plain function. */
function prng(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

function csvCell(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

const ASCII = (s: string): string => s.normalize('NFD').replace(/[^a-z]/gi, '').toLowerCase();

/** A row generator: call it with the 1-based data row number. */
function rowMaker(opts: GenerateOptions): (i: number) => string {
  const rand = prng(opts.seed ?? 1);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const digits = (n: number, first = '123456789'): string => {
    let s = first[Math.floor(rand() * first.length)]!;
    while (s.length < n) s += Math.floor(rand() * 10);
    return s;
  };
  // Up to 500 real branches per bank (taken evenly), so lookups hit the data.
  const branches = new Map<string, string[]>();
  for (const [code] of BANKS) {
    const all = branchCodesOf(code);
    const step = Math.max(1, Math.floor(all.length / 500));
    branches.set(code, all.filter((_, i) => i % step === 0));
  }
  const totalWeight = BANKS.reduce((s, b) => s + b[3], 0);
  const pickBank = () => {
    let r = rand() * totalWeight;
    for (const b of BANKS) if ((r -= b[3]) < 0) return b;
    return BANKS[0]!;
  };
  const every = opts.invalidEvery && opts.invalidEvery > 0 ? Math.floor(opts.invalidEvery) : 0;

  return (i: number): string => {
    const [code, bankName, accDigits] = pickBank();
    const first = pick(FIRST);
    const last = pick(LAST);
    const name = `${first} ${last}`;
    const email = `${ASCII(first) || 'user'}.${ASCII(last) || 'kumar'}${i}@${pick(DOMAINS)}`;
    let mobile = digits(10, '6789');
    let account = digits(accDigits);
    let ifsc = `${code}0${pick(branches.get(code)!)}`;
    const r = rand();
    let method = r < 0.55 ? 'IMPS' : r < 0.9 ? 'NEFT' : r < 0.99 ? 'UPI' : 'RTGS';
    let paise =
      method === 'RTGS'
        ? 2_00_000_00 + Math.floor(rand() * 8_00_000_00)
        : method === 'UPI'
          ? 100_00 + Math.floor(rand() * 99_900_00)
          : 1_000_00 + Math.floor(rand() * 1_49_000_00);
    if (rand() < 0.7) paise -= paise % 100; // mostly whole rupees
    let amount = (paise / 100).toFixed(paise % 100 === 0 ? 0 : 2);
    let mail = email;

    if (every && i % every === 0) {
      const kind = INVALID_KINDS[(i / every - 1) % INVALID_KINDS.length]!;
      switch (kind) {
        case 'bad_ifsc':
          ifsc = ifsc.slice(0, 10);
          break;
        case 'bad_mobile':
          mobile = digits(9, '6789');
          break;
        case 'scientific_account':
          account = `${account[0]}.${account.slice(1, 6)}E+${account.length - 1}`;
          break;
        case 'negative_amount':
          amount = `-${amount}`;
          break;
        case 'upi_over_limit':
          method = 'UPI';
          amount = '1,25,000';
          break;
        case 'bad_email':
          mail = email.replace('@', ' at ');
          break;
      }
    }
    return [name, mail, mobile, pick(PLACES), method, account, bankName, ifsc, amount, `Salary ${i}`]
      .map(csvCell)
      .join(',');
  };
}

/** Writes `rows` data rows (plus a header) to `path`, streaming with backpressure. */
export async function generateCsv(path: string, rows: number, opts: GenerateOptions = {}): Promise<void> {
  if (!Number.isInteger(rows) || rows < 0) throw new RangeError(`rows must be a non-negative integer, got ${rows}`);
  const make = rowMaker(opts);
  const out = createWriteStream(path, { encoding: 'utf8' });
  const failed = new Promise<never>((_, reject) => out.once('error', reject));
  failed.catch(() => {});
  const write = async (s: string): Promise<void> => {
    if (!out.write(s)) await Promise.race([once(out, 'drain'), failed]);
  };
  try {
    await write(GEN_HEADER.join(',') + '\n');
    const BATCH = 500;
    for (let i = 1; i <= rows; ) {
      let chunk = '';
      for (let k = 0; k < BATCH && i <= rows; k++, i++) chunk += make(i) + '\n';
      await write(chunk);
    }
    out.end();
    await Promise.race([once(out, 'finish'), failed]);
  } catch (e) {
    out.destroy();
    throw e;
  }
}

/** How many rows generateCsv breaks for these arguments. */
export function expectedInvalidRows(rows: number, invalidEvery?: number): number {
  return invalidEvery && invalidEvery > 0 ? Math.floor(rows / Math.floor(invalidEvery)) : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [path, rowsArg, everyArg, seedArg] = process.argv.slice(2);
  const rows = Number(rowsArg ?? '1000');
  if (!path || !Number.isInteger(rows) || rows < 0) {
    console.error('usage: node dist/bench/gen-csv.js <out.csv> <rows> [invalidEvery] [seed]');
    process.exitCode = 2;
  } else {
    const started = Date.now();
    await generateCsv(path, rows, {
      invalidEvery: everyArg ? Number(everyArg) : undefined,
      seed: seedArg ? Number(seedArg) : undefined,
    });
    console.error(`wrote ${rows} rows to ${path} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}
