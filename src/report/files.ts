import { open, rename, unlink, mkdir } from 'node:fs/promises';
import path from 'node:path';

/**
 * Writes a file atomically with mode 0600: into a temporary file beside it, fsync, then rename, so a
 * reader (or a crash) never sees half a report, and nobody but the owner can read account details.
 */
export async function writeFileAtomic(file: string, chunks: AsyncIterable<string> | Iterable<string>): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    let buf = '';
    for await (const c of chunks) {
      buf += c;
      if (buf.length >= 1 << 16) {
        await fh.write(buf);
        buf = '';
      }
    }
    if (buf) await fh.write(buf);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fh.close();
  await rename(tmp, file);
}

/**
 * A CSV cell that a spreadsheet will not run as a formula: values starting with = + - @ tab or CR get a
 * leading apostrophe (OWASP's advice), then the usual quoting.
 */
export function csvCell(value: string | number | bigint | null | undefined): string {
  if (value === null || value === undefined) return '';
  let s = String(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvLine(cells: (string | number | bigint | null | undefined)[]): string {
  return cells.map(csvCell).join(',') + '\r\n';
}
