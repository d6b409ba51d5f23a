import { constants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { reportBaseName } from '../report/report.js';

/** Longest name a report file gets: base + the longest suffix + the temporary-file suffix of an atomic write. */
const REPORT_SUFFIX_ROOM = '.corrections.csv'.length + '.4194304.1790431844701.tmp'.length;
/** Bytes in a file name on the file systems this runs on (ext4, xfs, APFS, NTFS in UTF-16 units). */
const NAME_MAX = 255;
export const MAX_BATCH_NAME = 120;

/**
 * What can fail on this machine is checked before the first payout: a batch name the report can be named
 * after, a report directory that is a directory and writable, an input file that is not the report.
 * Afterwards (disk full, say) a run still writes what it can and exits "unfinished".
 */
export async function checkLocalTargets(o: { reportDir: string; batch: string; csvPath?: string | undefined; write: boolean }): Promise<void> {
  const b = o.batch;
  if (b.trim() === '' || /[\u0000-\u001f\u007f]/.test(b)) {
    throw new UsageError(`the batch name ${JSON.stringify(b)} is empty or has control characters: use letters, digits, "-" and "_"`);
  }
  if ([...b].length > MAX_BATCH_NAME) {
    throw new UsageError(`the batch name is ${[...b].length} characters long: use at most ${MAX_BATCH_NAME} (pass a shorter --batch)`);
  }
  const base = reportBaseName(b);
  if (Buffer.byteLength(base) + REPORT_SUFFIX_ROOM > NAME_MAX) {
    throw new UsageError(`the report for batch "${b.slice(0, 30)}…" would get a file name longer than the file system allows: pass a shorter --batch`);
  }
  if (o.csvPath && path.resolve(o.csvPath).startsWith(path.resolve(o.reportDir, base) + '.')) {
    throw new UsageError(`the report ${path.join(o.reportDir, base)}.* would overwrite the input file: pass another --report-dir or --batch`);
  }
  if (!o.write) return;
  const dir = path.resolve(o.reportDir);
  const st = await stat(dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
  if (st && !st.isDirectory()) {
    throw new UsageError(`--report-dir ${o.reportDir} is a file, not a directory: pass a directory (it is created when missing)`);
  }
  try {
    if (!st) await mkdir(dir, { recursive: true, mode: 0o700 });
    await access(dir, constants.W_OK);
  } catch (err) {
    throw new UsageError(`cannot write reports into ${o.reportDir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): pass a writable --report-dir`, { cause: err });
  }
}
