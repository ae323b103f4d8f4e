/**
 * A backend whose answer a test sets and changes while it runs (a status,
 * a delay), counting the requests and connections it gets and keeping the
 * request bodies: for retry, backup and circuit-breaker tests.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Answer {
  status: number;
  /** delayMs: wait this long before answering (the timer is cleared if the request goes away). */
  delayMs?: number;
  /** body: the response body; "<status> from <name>" by default. */
  body?: string;
}

export interface ScriptedBackend {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  /** answer: what every request gets from now on. */
  answer: Answer;
  /** hits: requests received; connections: TCP connections accepted; aborted: requests whose client left before the answer. */
  readonly hits: number;
  readonly connections: number;
  readonly aborted: number;
  /** bodies: each request's method and body, in order. */
  readonly received: { method: string; body: string; headers: http.IncomingHttpHeaders }[];
  close(): Promise<void>;
}

export async function startScripted(name: string, answer: Answer = { status: 200 }): Promise<ScriptedBackend> {
  const sockets = new Set<Socket>();
  const counts = { hits: 0, connections: 0, aborted: 0 };
  const received: ScriptedBackend['received'] = [];
  const server = http.createServer((req, res) => {
    counts.hits++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ method: req.method ?? '', body: Buffer.concat(chunks).toString('utf8'), headers: req.headers });
      const a = backend.answer;
      const send = (): void => {
        const body = a.body ?? `${a.status} from ${name}`;
        res.writeHead(a.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'x-backend': name });
        res.end(body);
      };
      if (a.delayMs === undefined) return send();
      const timer = setTimeout(send, a.delayMs);
      res.on('close', () => {
        if (!res.writableFinished) counts.aborted++;
        clearTimeout(timer);
      });
    });
  });
  server.on('connection', (socket) => {
    counts.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const backend: ScriptedBackend = {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    answer,
    get hits() { return counts.hits; },
    get connections() { return counts.connections; },
    get aborted() { return counts.aborted; },
    received,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
  return backend;
}
