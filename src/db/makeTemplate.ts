/**
 * The last step of `npm run build` (so of `npm ci` / `npm install`, through `prepare`): makes the database
 * template new data directories start from (src/db/template.ts), unless an intact one for the installed
 * PGlite is there. Never fails the build: without a template the program makes new databases with initdb,
 * as before (slower, ~690 MB at its peak), so a failure here is a warning, not a broken install.
 */
import { setFlagsFromString } from 'node:v8';
import { buildTemplate, defaultTemplateDir } from './template.js';

// The same baseline-only WASM compile as the program (src/db/connect.ts): less memory for this step too.
setFlagsFromString('--liftoff-only');

const dir = defaultTemplateDir();
try {
  if (!dir) throw new Error('cannot find this package directory');
  const t0 = Date.now();
  const r = await buildTemplate(dir);
  if (r.built) console.log(`database template made in ${dir} (${(r.manifest.bytes / 1e6).toFixed(1)} MB, PGlite ${r.manifest.pglite}, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  else console.log(`database template up to date in ${dir} (PGlite ${r.manifest.pglite})`);
} catch (err) {
  console.warn(`warning: the database template was not made (${(err as Error).message}); new data directories will be made by initdb instead (slower, ~690 MB of memory at first start)`);
}
