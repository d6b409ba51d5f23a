// The rate limit's witness in a process of its own (plain JavaScript, no code shared with the program):
// an HTTP proxy in front of the API that timestamps every request when it arrives, refuses (429,
// Retry-After: 1) one that would put more than LIMIT arrivals in the sliding window (t - 1000 ms, t], and
// forwards the rest. In its own process its clock is not held up by the runner's event loop: a runner
// that stalls cannot make requests written before the stall look as if they arrived after it.
//
//   TARGET=http://127.0.0.1:4010 LIMIT=30 node test/helpers/meter-child.mjs
// prints {"url": ...} once listening; GET <url>/__meter answers {arrivals, refused} and is not counted.
import { createServer, request } from 'node:http';

const target = new URL(process.env.TARGET);
const limit = Number(process.env.LIMIT);
const arrivals = [];
let refused = 0;
let lo = 0;

const server = createServer((req, res) => {
  if (req.url === '/__meter') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ arrivals, refused }));
    return;
  }
  const now = performance.timeOrigin + performance.now();
  arrivals.push(now);
  while (arrivals[lo] <= now - 1000) lo++;
  if (arrivals.length - lo > limit) {
    refused++;
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
    res.end(JSON.stringify({ success: false, message: 'Too Many Attempts.', error: 'Too Many Requests', data: null }));
    req.resume();
    return;
  }
  const headers = { ...req.headers, host: target.host };
  delete headers.connection;
  const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (r) => {
    const out = { ...r.headers };
    delete out.connection;
    delete out['transfer-encoding'];
    res.writeHead(r.statusCode ?? 502, out);
    r.pipe(res);
  });
  // The API dropped the connection: so does the meter.
  up.on('error', () => res.destroy());
  req.pipe(up);
});
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${server.address().port}` }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
