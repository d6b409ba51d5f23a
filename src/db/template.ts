import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, gzipSync } from 'node:zlib';

/**
 * The prebuilt database template (issue 20 point 10). A new PGlite database made by PGlite's initdb peaks at
 * ~690 MB resident: initdb runs a second PGlite instance, builds the cluster in memory and copies it over. The
 * same empty cluster loaded from a tarball (PGlite's `loadDataDir`) peaks at ~240 MB. So `npm run build`
 * (and with it `npm ci` / `npm install`, through `prepare`) makes that tarball once, with PGlite's own
 * `dumpDataDir`, and src/db/connect.ts starts every new data directory from it, then migrates as usual.
 *
 * It is a build artifact under dist/, never committed: it belongs to the installed PGlite version (its
 * catalog must match the engine that opens it), and it is not reproducible (initdb draws a random system
 * identifier; the tar holds file times).
 *
 * The template is an optimisation only: absent, damaged, or made by another PGlite version, it is skipped
 * and the database is made by initdb as before.
 */

/** Bumped when the way the template is made changes, so an older one is rebuilt, not loaded. */
export const TEMPLATE_FORMAT = 1;
const TARBALL = 'pgdata.tar.gz';
const MANIFEST = 'manifest.json';

export interface TemplateManifest {
  format: number;
  /** The @electric-sql/pglite version that made it; only that version loads it. */
  pglite: string;
  /** sha256 (hex) and size of pgdata.tar.gz. */
  sha256: string;
  bytes: number;
  /** Size of the tar inside, so it is unpacked into one buffer of that size (no growing copies). */
  tarBytes: number;
  /**
   * The cluster's system identifier (pg_control_system()): initdb draws a new one for every cluster, so a
   * database that has this one was made from this template. Tests use it as a marker that needs no timing.
   */
  systemIdentifier: string;
  created: string;
}

export type TemplateRead =
  | { ok: true; manifest: TemplateManifest; /** The uncompressed, checked tar. */ tar: Uint8Array }
  | { ok: false; /** No template at all (not built): nothing to warn about. */ absent: boolean; reason: string };

/** This program's root (the directory of its package.json), from src/db (tests) or dist/src/db (built). */
function packageRoot(): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'alliance-payouts') return dir;
      } catch {
        /* not ours: keep looking */
      }
    }
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/**
 * Where the build puts the template: `<package>/dist/pglite-template`, the same directory whether the code
 * runs from dist/ (the installed command) or from the TypeScript sources (the tests).
 */
export function defaultTemplateDir(): string | undefined {
  const root = packageRoot();
  return root && path.join(root, 'dist', 'pglite-template');
}

/** The installed PGlite's version (its package.json is not in its exports map, so found beside its entry). */
export function pgliteVersion(): string {
  let dir = path.dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite'));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg)) {
      const p = JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string; version?: string };
      if (p.name === '@electric-sql/pglite' && p.version) return p.version;
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the version of @electric-sql/pglite');
    dir = up;
  }
}

/**
 * Checks a tar the way PGlite's loader (tinytar's untar) reads it, so that loader cannot fail on it: every
 * header has the ustar magic and a right checksum, every file's data is inside the archive, the archive ends
 * with its zero records, and it holds PG_VERSION. Why ahead of PGlite: PGlite 0.5.16 turns a tar it cannot
 * read into a retry through gunzip, whose errors it leaves as unhandled promise rejections (it never awaits
 * the DecompressionStream writer), and Node then ends the process. Returns what is wrong, or undefined.
 */
export function checkTar(tar: Uint8Array): string | undefined {
  const RECORD = 512;
  const text = (from: number, len: number) => {
    const b = tar.subarray(from, from + len);
    const nul = b.indexOf(0);
    return Buffer.from(nul >= 0 ? b.subarray(0, nul) : b).toString('latin1');
  };
  let offset = 0;
  let files = 0;
  let hasVersion = false;
  for (;;) {
    if (tar.length - offset < RECORD) return `the archive ends inside a header (byte ${offset})`;
    if (tar.subarray(offset, offset + RECORD).every((b) => b === 0)) break;
    // "ustar\0" then a version of '0's, spaces or NULs, as tinytar accepts it (PGlite writes "ustar\0" "00").
    const version = [tar[offset + 263]!, tar[offset + 264]!];
    if (text(offset + 257, 6) !== 'ustar' || tar[offset + 262] !== 0 || !version.every((b) => b === 0x30 || b === 0x20 || b === 0)) {
      return `not a tar header at byte ${offset}`;
    }
    // tinytar sums the first 500 bytes, the checksum field counted as spaces.
    let sum = 0;
    for (let i = 0; i < 500; i++) sum += i >= 148 && i < 156 ? 32 : tar[offset + i]!;
    const stored = parseInt(text(offset + 148, 8).trim() || '0', 8);
    if (sum % 262144 !== stored) return `bad header checksum at byte ${offset}`;
    // tinytar's reading of the type: the digit modulo 8, anything else 0 (a regular file).
    const type = (parseInt(String.fromCharCode(tar[offset + 156]!), 10) || 0) % 8;
    const size = parseInt(text(offset + 124, 12).trim() || '0', 8);
    const name = text(offset, 100).replace(/^\.?\//, '');
    if (!Number.isFinite(size) || size < 0) return `bad size for ${name}`;
    offset += RECORD;
    // Only regular files carry data, as tinytar reads it.
    if (type === 0) {
      if (offset + size > tar.length) return `${name} is cut short`;
      if (name === 'PG_VERSION') hasVersion = true;
      offset += Math.ceil(size / RECORD) * RECORD;
    }
    files++;
  }
  if (files === 0) return 'the archive is empty';
  if (!hasVersion) return 'the archive holds no PG_VERSION: not a PostgreSQL data directory';
  return undefined;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/**
 * Reads and checks the template in `dir`: made by this PGlite version in this format, its bytes those the
 * build wrote (sha256), an intact gzip of a tar PGlite can load. Never throws.
 */
export async function readTemplate(dir: string | undefined): Promise<TemplateRead> {
  if (!dir) return { ok: false, absent: true, reason: 'no template: this copy of the program has no package directory' };
  const manifestFile = path.join(dir, MANIFEST);
  const tarball = path.join(dir, TARBALL);
  if (!existsSync(manifestFile) && !existsSync(tarball)) return { ok: false, absent: true, reason: `no template in ${dir} (npm run build makes it)` };
  try {
    let manifest: TemplateManifest;
    try {
      manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as TemplateManifest;
    } catch (err) {
      return { ok: false, absent: false, reason: `its manifest ${manifestFile} is unreadable (${(err as Error).message})` };
    }
    if (manifest.format !== TEMPLATE_FORMAT) return { ok: false, absent: false, reason: `it is in format ${manifest.format}, this program reads ${TEMPLATE_FORMAT}` };
    const version = pgliteVersion();
    if (manifest.pglite !== version) return { ok: false, absent: false, reason: `it was made by PGlite ${manifest.pglite}, this is PGlite ${version}` };
    if (!Number.isSafeInteger(manifest.tarBytes) || manifest.tarBytes <= 0) return { ok: false, absent: false, reason: `its manifest ${manifestFile} gives no tar size` };
    const gz = readFileSync(tarball);
    if (gz.length !== manifest.bytes || sha256(gz) !== manifest.sha256) return { ok: false, absent: false, reason: `${tarball} is damaged (not the bytes the build wrote)` };
    let tar: Uint8Array;
    try {
      tar = await gunzipInto(gz, manifest.tarBytes);
    } catch (err) {
      return { ok: false, absent: false, reason: `${tarball} is not a whole gzip file of the size its manifest gives (${(err as Error).message})` };
    }
    const problem = checkTar(tar);
    if (problem) return { ok: false, absent: false, reason: `${tarball}: ${problem}` };
    return { ok: true, manifest, tar };
  } catch (err) {
    return { ok: false, absent: false, reason: (err as Error).message };
  }
}

/**
 * Unpacks `gz` into one buffer of exactly `size` bytes. Why not gunzipSync: it gathers the output in chunks
 * and joins them, two copies of the 40 MB tar at once, which showed in the first open's peak.
 */
async function gunzipInto(gz: Buffer, size: number): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let n = 0;
  await pipeline(Readable.from([gz]), createGunzip(), async (chunks: AsyncIterable<Buffer>) => {
    for await (const c of chunks) {
      if (n + c.length > size) throw new Error('longer than its manifest says');
      out.set(c, n);
      n += c.length;
    }
  });
  if (n !== size) throw new Error(`${n} bytes, its manifest says ${size}`);
  return out;
}

/**
 * The tar as PGlite's loadDataDir takes it. PGlite reads a Blob with arrayBuffer() and looks at its type only;
 * a real Blob would copy the 40 MB tar, and its arrayBuffer() copy it again, both alive at the first open's
 * peak. This hands over the tar's own memory. Typed "application/x-tar" so PGlite does not gunzip it.
 */
export function tarBlob(tar: Uint8Array): Blob {
  const ab = tar.byteOffset === 0 && tar.byteLength === tar.buffer.byteLength ? tar.buffer : tar.slice().buffer;
  return { type: 'application/x-tar', size: tar.byteLength, arrayBuffer: async () => ab } as unknown as Blob;
}

/**
 * Makes the template in `dir` unless an intact one for this PGlite version is there already (so a rebuild
 * costs a checksum, not a ~700 MB initdb). Written beside and renamed into place, the tarball first: a build
 * running at the same time as another never leaves a half-written file under the real name, and a manifest
 * that does not match its tarball is caught by the checksum.
 */
export async function buildTemplate(dir: string, opts: { force?: boolean } = {}): Promise<{ built: boolean; manifest: TemplateManifest; reason?: string }> {
  const current = await readTemplate(dir);
  if (current.ok && !opts.force) return { built: false, manifest: current.manifest };
  const { PGlite } = await import('@electric-sql/pglite');
  // In memory: the dump is all that is kept.
  const pg = new PGlite();
  let tar: Uint8Array;
  let systemIdentifier: string;
  try {
    await pg.waitReady;
    // A checkpoint first, so the copy is a cleanly written cluster that needs no WAL replay when it is loaded.
    await pg.exec('CHECKPOINT');
    const { rows } = await pg.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
    systemIdentifier = rows[0]!.id;
    tar = new Uint8Array(await (await pg.dumpDataDir('none')).arrayBuffer());
  } finally {
    await pg.close();
  }
  const problem = checkTar(tar);
  if (problem) throw new Error(`PGlite's dump is not a tar this program can load: ${problem}`);
  const gz = gzipSync(tar, { level: 9 });
  const manifest: TemplateManifest = {
    format: TEMPLATE_FORMAT,
    pglite: pgliteVersion(),
    sha256: sha256(gz),
    bytes: gz.length,
    tarBytes: tar.length,
    systemIdentifier,
    created: new Date().toISOString(),
  };
  mkdirSync(dir, { recursive: true });
  const tmp = `.tmp-${process.pid}`;
  try {
    writeFileSync(path.join(dir, TARBALL + tmp), gz);
    writeFileSync(path.join(dir, MANIFEST + tmp), JSON.stringify(manifest, null, 2) + '\n');
    renameSync(path.join(dir, TARBALL + tmp), path.join(dir, TARBALL));
    renameSync(path.join(dir, MANIFEST + tmp), path.join(dir, MANIFEST));
  } finally {
    rmSync(path.join(dir, TARBALL + tmp), { force: true });
    rmSync(path.join(dir, MANIFEST + tmp), { force: true });
  }
  return { built: true, manifest, ...(current.ok ? {} : { reason: current.reason }) };
}
