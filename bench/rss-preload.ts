/**
 * Loaded with `node --import` into a command measured by bench/footprint.ts: writes the process's peak
 * resident memory (the kernel's high-water mark, getrusage maxrss) to $FOOTPRINT_RSS_FILE as it exits.
 */
import { writeFileSync } from 'node:fs';

const out = process.env['FOOTPRINT_RSS_FILE'];
if (out) {
  process.on('exit', () => {
    writeFileSync(out, String(process.resourceUsage().maxRSS));
  });
}
