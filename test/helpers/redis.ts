/**
 * A real redis-server for tests: started on a free port with no persistence
 * and stopped (by PID) when done. REDIS_URL points the tests at an existing
 * server instead. A missing binary fails with a message that says how to
 * install it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { freePort } from './backends.js';

export interface TestRedis {
  readonly mode: 'standalone';
  readonly url: string;
  /** config: the `state.redis` settings (without keyPrefix) that reach this server. */
  readonly config: { url: string };
  readonly port: number;
  /** external: REDIS_URL was used; stop/start are unavailable. */
  readonly external: boolean;
  /** stop kills the server (to simulate an outage); start brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export function redisBinary(name = 'redis-server'): string {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const path = found.stdout.trim();
  if (found.status !== 0 || path === '') {
    throw new Error(`${name} is not installed: run "apt-get install -y ${name}" (Debian/Ubuntu) or set REDIS_URL to an existing server`);
  }
  return path;
}

/** waitForPort waits until something accepts connections on 127.0.0.1:port (a server the tests started). */
export async function waitForPort(port: number, timeoutMs: number, what = 'redis-server'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not start on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Server is one redis-server or redis-sentinel process, restartable on its port. */
export interface Server {
  readonly port: number;
  readonly running: boolean;
  kill(): Promise<void>;
  start(): Promise<void>;
}

/** redisProcess runs `bin` with `args()` (read at each start) until killed by PID; start waits for the port. */
export function redisProcess(bin: string, port: number, args: () => string[], what: string): Server {
  let child: ChildProcess | null = null;
  return {
    port,
    get running() { return child !== null; },
    async start() {
      if (child !== null) return;
      const c = spawn(bin, args(), { stdio: 'ignore' });
      child = c;
      c.on('exit', () => { if (child === c) child = null; });
      await waitForPort(port, 5000, what);
    },
    async kill() {
      const c = child;
      if (c === null) return;
      await new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.kill('SIGKILL');
      });
      child = null;
    },
  };
}

export async function startRedis(): Promise<TestRedis> {
  const external = process.env.REDIS_URL;
  if (external !== undefined && external !== '') {
    const port = Number(new URL(external).port || 6379);
    return { mode: 'standalone', url: external, config: { url: external }, port, external: true, stop: async () => { throw new Error('cannot stop an external REDIS_URL server'); }, start: async () => undefined, close: async () => undefined };
  }
  const bin = redisBinary();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-redis-'));
  const server = redisProcess(bin, port, () => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'], 'redis-server');
  const start = (): Promise<void> => server.start();
  const stop = (): Promise<void> => server.kill();
  await start();
  return {
    mode: 'standalone',
    url: `redis://127.0.0.1:${port}`,
    config: { url: `redis://127.0.0.1:${port}` },
    port,
    external: false,
    stop,
    start,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
