import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Tests that run the real command (child processes, kill -9) use the compiled dist/: build it once
 * before the suite so they never run stale code.
 */
export default function setup(): void {
  // For a second test run while a long one uses dist/ (e.g. the chaos suite's child processes).
  if (process.env['PAYOUTS_SKIP_BUILD'] === '1') return;
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.json')], {
    cwd: root,
    stdio: 'inherit',
  });
  // The rest of `npm run build`: the database template new data directories start from (a checksum when it is
  // up to date). Tests then open new databases the way an installed copy does; test/db-template.test.ts
  // checks that they do.
  execFileSync(process.execPath, [path.join(root, 'dist/src/db/makeTemplate.js')], { cwd: root, stdio: 'inherit' });
}
