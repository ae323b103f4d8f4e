/**
 * The demo backend: a small HTTP server for demos and tests.
 *
 *   GET  /                 "Hello from <name>" (text/plain)
 *   GET  /health           200 {"status":"ok"}; 503 while failing
 *   POST /health/fail      make /health fail;  POST /health/recover to undo
 *   GET  /delay?ms=N       answer after N ms
 *   GET  /status/<code>    answer with that status
 *   ANY  /echo             the request as JSON (method, url, headers, body)
 *   POST /upload           consume the body; answer its size and sha256
 *   GET  /bytes?n=N        stream N bytes
 *   WS   /ws               WebSocket echo (subprotocols negotiated as offered)
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

export interface DemoBackendOptions {
  port?: number;
  host?: string;
  name?: string;
}

export interface DemoBackend {
  readonly server: http.Server;
  readonly port: number;
  readonly name: string;
  /** failHealth makes /health answer 503 (true) or 200 (false). */
  failHealth(fail: boolean): void;
  /** requests counts requests by path (without query), for tests. */
  readonly requests: Map<string, number>;
  close(): Promise<void>;
}

const CHUNK = Buffer.alloc(64 * 1024, 'x');

export async function startDemoBackend(options: DemoBackendOptions = {}): Promise<DemoBackend> {
  const name = options.name ?? `Backend on ${options.port ?? 0}`;
  let healthFailing = false;
  const requests = new Map<string, number>();

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://backend');
    const path = url.pathname;
    requests.set(path, (requests.get(path) ?? 0) + 1);
    res.setHeader('x-backend', name);
    if (path === '/' && (req.method === 'GET' || req.method === 'HEAD')) {
      return text(res, 200, `Hello from ${name}`);
    }
    if (path === '/health') {
      return json(res, healthFailing ? 503 : 200, { status: healthFailing ? 'failing' : 'ok', name });
    }
    if (path === '/health/fail' || path === '/health/recover') {
      healthFailing = path === '/health/fail';
      return json(res, 200, { status: healthFailing ? 'failing' : 'ok', name });
    }
    if (path === '/delay') {
      const ms = Math.min(Number(url.searchParams.get('ms') ?? '1000') || 0, 600_000);
      const timer = setTimeout(() => text(res, 200, `Hello from ${name} after ${ms}ms`), ms);
      res.on('close', () => clearTimeout(timer));
      return;
    }
    const status = /^\/status\/(\d{3})$/.exec(path);
    if (status !== null) {
      const code = Number(status[1]);
      return code === 204 || code === 304 ? void res.writeHead(code).end() : text(res, code, `${code} from ${name}`);
    }
    if (path === '/echo') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => json(res, 200, {
        name, method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks).toString('utf8'), remoteAddress: req.socket.remoteAddress,
      }));
      return;
    }
    if (path === '/upload') {
      const hash = createHash('sha256');
      let size = 0;
      req.on('data', (c: Buffer) => { size += c.length; hash.update(c); });
      req.on('end', () => json(res, 200, { name, size, sha256: hash.digest('hex') }));
      return;
    }
    if (path === '/bytes') {
      return streamBytes(res, Number(url.searchParams.get('n') ?? '0'));
    }
    text(res, 404, `404 Not Found from ${name}`);
  };

  const server = http.createServer({ keepAliveTimeout: 65_000 }, handler);
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (protocols) => (protocols.size > 0 ? [...protocols][0]! : false),
  });
  wss.on('connection', (ws, req) => {
    ws.on('error', () => ws.terminate());
    ws.send(JSON.stringify({ hello: name, protocol: ws.protocol, forwardedFor: req.headers['x-forwarded-for'] ?? null }));
    ws.on('message', (data, isBinary) => {
      if (!isBinary && data.toString() === 'close-from-server') ws.close(4000, 'server closing');
      else ws.send(data, { binary: isBinary });
    });
  });
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/ws') {
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
      return;
    }
    const body = `no upgrade here, from ${name}\n`;
    socket.end(`HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    server,
    port,
    name,
    requests,
    failHealth(fail) { healthFailing = fail; },
    async close() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
  res.end(s);
}

function streamBytes(res: ServerResponse, n: number): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
  let left = n;
  const pump = (): void => {
    while (left > 0) {
      const chunk = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
      left -= chunk.length;
      if (!res.write(chunk)) { res.once('drain', pump); return; }
    }
    res.end();
  };
  pump();
}
