/** Test helpers: demo backends on port 0, and a few misbehaving raw servers for fault injection. */
import net from 'node:net';
import { startDemoBackend, type DemoBackend } from '../../src/demo/backend.js';

export type { DemoBackend };

export async function startBackends(n: number, prefix = 'Backend'): Promise<DemoBackend[]> {
  const out: DemoBackend[] = [];
  for (let i = 1; i <= n; i++) out.push(await startDemoBackend({ port: 0, host: '127.0.0.1', name: `${prefix} ${i}` }));
  return out;
}

export const urlOf = (b: { port: number }): string => `http://127.0.0.1:${b.port}`;

export interface RawServer {
  readonly port: number;
  readonly sockets: Set<net.Socket>;
  /** received holds every byte received, per connection, for "nothing reached the backend" checks. */
  readonly received: Buffer[];
  close(): Promise<void>;
}

/**
 * answerEachHead is a raw connection handler that writes `response` for
 * every request head it reads (skipping a Content-Length body), never
 * closing first: a backend that shows exactly which requests it was sent.
 */
export function answerEachHead(response: string): (socket: net.Socket) => void {
  return (socket) => {
    let text = '';
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      let end: number;
      while ((end = text.indexOf('\r\n\r\n')) >= 0) {
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
        text = text.slice(end + 4 + length);
        socket.write(response);
      }
    });
  };
}

/** startRawServer runs a TCP server whose behaviour per connection is given by `onConnection`. */
export async function startRawServer(onConnection: (socket: net.Socket, server: RawServer) => void): Promise<RawServer> {
  const sockets = new Set<net.Socket>();
  const received: Buffer[] = [];
  const server = net.createServer();
  const raw: RawServer = {
    port: 0,
    sockets,
    received,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.on('data', (d: Buffer) => received.push(d));
    onConnection(socket, raw);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (raw as { port: number }).port = (server.address() as net.AddressInfo).port;
  return raw;
}

/** freePort finds a port that is free right now (for tests that need to restart a server on the same port). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** freePorts finds `n` consecutive ports that are free right now (the demo uses port+1..port+N). */
export async function freeConsecutivePorts(n: number): Promise<number> {
  const isFree = (port: number): Promise<boolean> => new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = 20_000 + Math.floor(Math.random() * 12_000); // below the ephemeral range (32768+)
    let ok = true;
    for (let i = 0; i < n && ok; i++) ok = await isFree(first + i);
    if (ok) return first;
  }
  throw new Error(`no ${n} consecutive free ports found`);
}
