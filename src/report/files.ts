import { open, rename, unlink, mkdir, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

/**
 * A file written atomically with mode 0600: into a temporary file beside it, fsync, then rename on
 * commit, so a reader (or a crash) never sees half a report, and nobody but the owner can read account
 * details. Writes are buffered (64 KiB).
 */
export class AtomicFile {
  private buf = '';
  private constructor(
    readonly file: string,
    private readonly tmp: string,
    private readonly fh: FileHandle,
  ) {}

  static async open(file: string): Promise<AtomicFile> {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2, 8)}.tmp`;
    return new AtomicFile(file, tmp, await open(tmp, 'w', 0o600));
  }

  async write(chunk: string): Promise<void> {
    this.buf += chunk;
    if (this.buf.length >= 1 << 16) {
      const b = this.buf;
      this.buf = '';
      await this.fh.write(b);
    }
  }

  /** Flushes, fsyncs and renames the file into place. */
  async commit(): Promise<void> {
    if (this.buf) await this.fh.write(this.buf);
    this.buf = '';
    await this.fh.sync();
    await this.fh.close();
    await rename(this.tmp, this.file);
  }

  /** Throws the half-written file away; the previous file, if any, stays as it was. */
  async abort(): Promise<void> {
    await this.fh.close().catch(() => {});
    await unlink(this.tmp).catch(() => {});
  }
}

/** Writes a file atomically with mode 0600 from chunks (see AtomicFile). */
export async function writeFileAtomic(file: string, chunks: AsyncIterable<string> | Iterable<string>): Promise<void> {
  const f = await AtomicFile.open(file);
  try {
    for await (const c of chunks) await f.write(c);
    await f.commit();
  } catch (err) {
    await f.abort();
    throw err;
  }
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
