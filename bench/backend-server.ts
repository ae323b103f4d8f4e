/**
 * Benchmark backends: minimal keep-alive HTTP servers answering a small
 * body, one per port given on the command line, in one process (pinned
 * away from the balancer by bench/run.ts).
 */
import http from 'node:http';

const body = Buffer.from('hello from the benchmark backend\n');
const ports = process.argv.slice(2).map(Number);
for (const port of ports) {
  http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    if (req.url === '/health') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
      res.end('ok');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  }).listen(port, '127.0.0.1', () => process.send?.('ready'));
}
