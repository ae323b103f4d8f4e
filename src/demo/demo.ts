/**
 * The one-command demo: N demo backends on port+1..port+N and a balancer on
 * `port` in front of them, in one process, in-memory state.
 */
import { createBalancer } from '../index.js';
import type { Fulcrum } from '../app/fulcrum.js';
import type { Logger } from '../observe/log.js';
import { startDemoBackend, type DemoBackend } from './backend.js';

export interface DemoOptions {
  port: number;
  backends: number;
  host?: string;
  logLevel?: string;
  logger?: Logger;
}

export interface Demo {
  readonly balancer: Fulcrum;
  readonly backends: readonly DemoBackend[];
  close(): Promise<void>;
}

export async function startDemo(options: DemoOptions): Promise<Demo> {
  const backends: DemoBackend[] = [];
  try {
    for (let i = 1; i <= options.backends; i++) {
      backends.push(await startDemoBackend({ port: options.port === 0 ? 0 : options.port + i, host: '127.0.0.1', name: `Backend ${i}` }));
    }
  } catch (err) {
    await Promise.all(backends.map((b) => b.close()));
    throw err;
  }
  const balancer = createBalancer({
    listen: { host: options.host ?? '0.0.0.0', port: options.port },
    algorithm: 'round-robin',
    backends: backends.map((b, i) => ({ id: `b${i + 1}`, url: `http://127.0.0.1:${b.port}` })),
    healthCheck: { path: '/health', interval: '2s', timeout: '1s', healthyThreshold: 1, unhealthyThreshold: 2 },
    logLevel: (options.logLevel ?? 'info') as 'info',
    // The demo's admin API (drain/enable in the dashboard) is enabled with FULCRUM_ADMIN_TOKEN.
    ...(process.env.FULCRUM_ADMIN_TOKEN ? { admin: { token: process.env.FULCRUM_ADMIN_TOKEN } } : {}),
  }, options.logger === undefined ? {} : { logger: options.logger });
  await balancer.listen();
  return {
    balancer,
    backends,
    async close() {
      await balancer.close({ drainTimeout: 5000 });
      await Promise.all(backends.map((b) => b.close()));
    },
  };
}
