import path from 'node:path';
import { formatRupees, formatRupeesIndian, type Paise } from '../money.js';
import { validateFile } from '../batch/validateFile.js';
import { defaultBatchName } from '../engine/ingest.js';
import { InputError } from '../errors.js';
import { printJson, type CommandIO } from './context.js';

/** `payouts validate <csv>`: every row checked, file-level problems once, nothing stored, nothing sent. */
export async function validateCommand(
  io: CommandIO,
  o: { csv: string; batch?: string; userId?: string; expectRows?: number; expectTotalPaise?: Paise; acceptUnterminated?: boolean; sheet?: string },
): Promise<number> {
  const file = path.resolve(io.cwd, o.csv);
  const s = await validateFile(file, {
    batch: o.batch ?? defaultBatchName(file),
    defaultUserId: o.userId,
    expectRows: o.expectRows,
    expectTotalPaise: o.expectTotalPaise,
    acceptUnterminated: o.acceptUnterminated,
    sheet: o.sheet,
  });
  const fileErrors = s.file_issues.filter((i) => i.severity === 'error');
  if (io.json) {
    const byRow = new Map<number, { row: number; errors: string[]; warnings: string[] }>();
    for (const p of s.problems) {
      let r = byRow.get(p.row);
      if (!r) byRow.set(p.row, (r = { row: p.row, errors: [], warnings: [] }));
      (p.severity === 'error' ? r.errors : r.warnings).push(p.message);
    }
    printJson(io, {
      file,
      refused: s.refused,
      rows: s.rows,
      valid: s.valid,
      invalid: s.invalid,
      with_warnings: s.warnings,
      valid_total: formatRupees(s.total_paise),
      valid_total_paise: s.total_paise.toString(),
      file_issues: s.file_issues,
      ignored_columns: s.ignored_columns,
      reference_column: s.reference_column,
      problems: [...byRow.values()],
      problems_omitted: s.problems_omitted,
    });
  } else {
    for (const i of s.file_issues) if (i.severity === 'warning') io.out(`file: warning: ${i.message}`);
    for (const p of s.problems) io.out(`row ${p.row}: ${p.severity}: ${p.message}`);
    if (s.problems_omitted > 0) io.out(`… and ${s.problems_omitted} more row problems not listed (fix these and validate again)`);
    io.out(
      `${s.rows} rows: ${s.valid} valid totalling ${formatRupeesIndian(s.total_paise)}, ${s.invalid} invalid, ${s.warnings} with warnings` +
        (s.refused ? '; the file is refused as a whole (the problem is described below)' : ''),
    );
  }
  // A refused file: exit 2 with its problems on stderr, each once.
  if (fileErrors.length === 1) throw new InputError(fileErrors[0]!.message);
  if (fileErrors.length > 1) {
    const shown = fileErrors.slice(0, 20).map((i) => `  - ${i.message}`);
    if (fileErrors.length > 20) shown.push(`  - and ${fileErrors.length - 20} more (--json lists them all)`);
    throw new InputError(`${file} is refused (${fileErrors.length} problems):\n${shown.join('\n')}`);
  }
  return s.invalid > 0 ? 1 : 0;
}
