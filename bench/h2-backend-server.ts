/**
 * Benchmark HTTP/2 backends (cleartext, prior knowledge), one per port
 * given on the command line, in one process (pinned away from the proxy by
 * bench/run.ts): a gRPC call (content-type application/grpc) gets one
 * small message and `grpc-status: 0` in trailers, as a unary gRPC server
 * answers; anything else gets a small body. What they cost is not counted:
 * only the proxy's CPU time is.
 */
import http2 from 'node:http2';

const body = Buffer.from('hello from the benchmark backend\n');
// One gRPC message: not compressed (0), a 4-byte big-endian length, then the (opaque) payload.
const payload = Buffer.from('bench reply');
const message = Buffer.concat([Buffer.from([0, 0, 0, 0, payload.length]), payload]);

const ports = process.argv.slice(2).map(Number);
for (const port of ports) {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    const grpc = String(headers['content-type'] ?? '').startsWith('application/grpc');
    // Read the request to its end before answering, as a server that decodes the request would.
    stream.resume();
    stream.on('end', () => {
      if (stream.destroyed) return;
      if (grpc) {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': '' }));
        stream.end(message);
      } else {
        stream.respond({ ':status': 200, 'content-type': 'text/plain', 'content-length': body.length });
        stream.end(body);
      }
    });
  });
  server.listen(port, '127.0.0.1');
}
