/**
 * Helpers shared by the Redis integration tests: a backend that records
 * which balancer instance ran each health check (by a header each instance
 * sends), status reading, and a logger that keeps its lines in memory.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { FulcrumConfigInput } from '../../src/index.js';
import type { Logger } from '../../src/observe/log.js';
import { get } from '../helpers/balancer.js';

export interface CheckedBackend {
  readonly url: string;
  /** checks counts health checks by the x-checker header of the instance that sent them. */
  readonly checks: Map<string, number>;
  /** fail makes /health answer 503 (true) or 200 (false). */
  fail(on: boolean): void;
  close(): Promise<void>;
}

/** startCheckedBackend: GET /health (200 or 503, counted per checker), /status/NNN, anything else 200. */
export async function startCheckedBackend(): Promise<CheckedBackend> {
  const checks = new Map<string, number>();
  let failing = false;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/health') {
      const checker = String(req.headers['x-checker'] ?? 'none');
      checks.set(checker, (checks.get(checker) ?? 0) + 1);
      res.writeHead(failing ? 503 : 200).end(failing ? 'failing' : 'ok');
      return;
    }
    const m = /^\/status\/(\d{3})$/.exec(path);
    res.writeHead(m === null ? 200 : Number(m[1]), { 'content-type': 'text/plain' }).end('hello');
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    checks,
    fail: (on) => { failing = on; },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** uniquePrefix keeps each test's keys apart in a shared Redis. */
export function uniquePrefix(name: string): string {
  return `test-${name}-${randomBytes(4).toString('hex')}:`;
}

/** clusterConfig: fast health checks that name their instance, and the Redis store flushing every 200ms. */
export function clusterConfig(options: {
  redisUrl: string; keyPrefix: string; checker: string; backends: string[];
  healthCheck?: { interval?: string; healthyThreshold?: number; unhealthyThreshold?: number };
}): FulcrumConfigInput {
  return {
    backends: options.backends,
    healthCheck: {
      interval: '200ms', timeout: '1s', healthyThreshold: 1, unhealthyThreshold: 1, ...options.healthCheck,
      headers: { 'x-checker': options.checker },
    },
    state: { store: 'redis', redis: { url: options.redisUrl, keyPrefix: options.keyPrefix }, flushInterval: '200ms' },
  };
}

type BackendStatus = Record<string, unknown> & {
  id: string; url: string; healthy: boolean; reasons: string[]; weight: number; state: string; requests: number;
  lastCheck: string | null; clusterRequests: number; clusterFailures: number; clusterResponses: Record<string, number>;
};

export type Status = Record<string, unknown> & {
  totalRequests: number;
  instance: { id: string; totalRequests: number };
  cluster: { totalRequests: number; instances: { id: string; lastSeen: string }[] };
  store: { type: string; connected: boolean; degradedSince: string | null; unflushedRequests: number };
  backends: BackendStatus[];
};

export async function status(baseUrl: string): Promise<Status> {
  const res = await get(`${baseUrl}/status`);
  if (res.status !== 200) throw new Error(`/status answered ${res.status}`);
  return JSON.parse(res.body) as Status;
}

export async function metricsJson(baseUrl: string): Promise<Record<string, unknown>> {
  return JSON.parse((await get(`${baseUrl}/metrics?format=json`)).body) as Record<string, unknown>;
}

export interface MemoryLog {
  readonly logger: Logger;
  readonly lines: Record<string, unknown>[];
}

/** memoryLogger: a pino logger (level info) whose lines are kept, parsed, for assertions. */
export function memoryLogger(): MemoryLog {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

/** WARN is pino's level number for warn; lines at or above it are warnings or errors. */
export const WARN = 40;

export interface Load {
  /** sent counts finished requests; failed lists the ones that did not get a 200. */
  readonly sent: number;
  readonly failed: string[];
  stop(): Promise<void>;
}

/** startLoad keeps `concurrency` keep-alive requests in flight against `url` until stopped. */
export function startLoad(url: string, concurrency = 2): Load {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const failed: string[] = [];
  let sent = 0;
  let stopping = false;
  const one = (): Promise<void> => new Promise((resolve) => {
    const req = http.get(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode !== 200) failed.push(`status ${res.statusCode}`);
        sent++;
        resolve();
      });
      res.on('error', (err) => { failed.push(err.message); resolve(); });
    });
    req.on('error', (err) => { failed.push(err.message); sent++; resolve(); });
  });
  const worker = async (): Promise<void> => {
    while (!stopping) {
      await one();
      // Steady, not flat out: the machine is shared.
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  return {
    get sent() { return sent; },
    failed,
    stop: async () => {
      stopping = true;
      await Promise.all(workers);
      agent.destroy();
    },
  };
}
