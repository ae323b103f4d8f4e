/** Test helpers: a balancer on port 0 with a silent logger, and small HTTP clients. */
import http from 'node:http';
import { createBalancer, loadConfig, type FulcrumConfigInput } from '../../src/index.js';
import type { Fulcrum } from '../../src/app/fulcrum.js';
import { silentLogger, type Logger } from '../../src/observe/log.js';

export interface TestBalancer {
  readonly balancer: Fulcrum;
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** startBalancer listens on 127.0.0.1:0; health checks default to fast for tests. */
export async function startBalancer(config: FulcrumConfigInput, options: { logger?: Logger } = {}): Promise<TestBalancer> {
  const balancer = createBalancer({
    listen: { host: '127.0.0.1', port: 0 },
    logLevel: 'silent',
    accessLog: false,
    ...config,
  }, { logger: options.logger ?? silentLogger() });
  await balancer.listen();
  const port = balancer.port;
  return {
    balancer,
    port,
    url: `http://127.0.0.1:${port}`,
    close: () => balancer.close({ drainTimeout: 2000 }),
  };
}

export interface SimpleResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** get makes one request on a fresh connection (no keep-alive), so tests do not share sockets. */
export function request(url: string, options: http.RequestOptions & { body?: string | Buffer } = {}): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false, ...options }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

export const get = (url: string, options: http.RequestOptions = {}): Promise<SimpleResponse> => request(url, options);

/** waitFor polls a condition until it holds or the time is up. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 5000, intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs}ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export { silentLogger };

/**
 * startFileBalancer runs a balancer from a config file the way the CLI does:
 * `reload()` (and `watch: true`) re-read the file.
 */
export async function startFileBalancer(file: string): Promise<Fulcrum> {
  const balancer = createBalancer(loadConfig({ file, env: {} }).config, {
    configFile: file,
    loadConfig: () => loadConfig({ file, env: {} }).config,
    logger: silentLogger(),
  });
  await balancer.listen();
  return balancer;
}
