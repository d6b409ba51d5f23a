import path from 'node:path';
import { formatRupeesIndian } from '../money.js';
import { readBatchRows } from '../batch/ingest.js';
import { defaultBatchName } from '../engine/ingest.js';
import { maskAccount } from '../log.js';
import { printJson, type CommandIO } from './context.js';

/** `payouts validate <csv>`: every row checked, nothing stored, nothing sent. */
export async function validateCommand(io: CommandIO, o: { csv: string; batch?: string; userId?: string }): Promise<number> {
  const file = path.resolve(io.cwd, o.csv);
  const batch = o.batch ?? defaultBatchName(file);
  let rows = 0;
  let invalid = 0;
  let warned = 0;
  let total = 0n;
  const problems: { row: number; errors: string[]; warnings: string[] }[] = [];
  for await (const r of readBatchRows(file, { batch, ...(o.userId ? { defaultUserId: o.userId } : {}) })) {
    rows++;
    if (r.errors.length) invalid++;
    else if (r.amountPaise) total += r.amountPaise;
    if (r.warnings.length) warned++;
    if ((r.errors.length || r.warnings.length) && problems.length < 1000) {
      const mask = (m: string) => (r.accountNumber ? m.split(r.accountNumber).join(maskAccount(r.accountNumber)) : m);
      problems.push({ row: r.rowNo, errors: r.errors.map((e) => mask(e.message)), warnings: r.warnings.map((w) => mask(w.message)) });
    }
  }
  if (io.json) {
    printJson(io, { file, rows, valid: rows - invalid, invalid, with_warnings: warned, valid_total: formatRupeesIndian(total), problems });
  } else {
    for (const p of problems) {
      for (const e of p.errors) io.out(`row ${p.row}: error: ${e}`);
      for (const w of p.warnings) io.out(`row ${p.row}: warning: ${w}`);
    }
    io.out(`${rows} rows: ${rows - invalid} valid totalling ${formatRupeesIndian(total)}, ${invalid} invalid, ${warned} with warnings`);
  }
  return invalid > 0 ? 1 : 0;
}
