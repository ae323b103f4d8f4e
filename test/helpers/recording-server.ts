/**
 * A backend that records what it receives (method, path, headers, body)
 * and answers with its name, or with a chosen status, or not at all
 * (`hang`): for the traffic-management tests, which count who got what.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface RecordingServer {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  readonly received: Received[];
  /** status: what the next requests are answered with (200 by default). */
  status: number;
  /** hang: hold every request open without answering (until close). */
  hang: boolean;
  close(): Promise<void>;
}

export async function startRecordingServer(name: string, options: { status?: number; hang?: boolean } = {}): Promise<RecordingServer> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      // Health checks are not traffic: they are answered, not recorded.
      if (req.url === '/health') {
        res.end('ok');
        return;
      }
      received.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) });
      if (rs.hang) return;
      res.writeHead(rs.status, { 'content-type': 'text/plain', 'x-served-by': name });
      res.end(name);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const rs: RecordingServer = {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    received,
    status: options.status ?? 200,
    hang: options.hang ?? false,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  return rs;
}

/** countBy counts strings (which server answered each request). */
export function countBy(values: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}
