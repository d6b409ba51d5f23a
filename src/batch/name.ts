import path from 'node:path';

/** A batch's default name, from its file: "payroll-2026-11.csv" -> "payroll-2026-11". */
export function defaultBatchName(csvPath: string): string {
  return path.basename(csvPath).replace(/\.[^.]*$/, '') || 'batch';
}
