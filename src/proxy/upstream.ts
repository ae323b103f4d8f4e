/**
 * Upstream connection pools: one keep-alive undici Pool per backend, created
 * when the backend joins and closed (gracefully) when it leaves, so that a
 * backend that stays across a reload keeps its warm connections.
 */
import { readFileSync } from 'node:fs';
import { Pool, type Dispatcher } from 'undici';
import type { Backend } from '../backends/backend.js';
import type { FulcrumConfig } from '../config/schema.js';
import type { Logger } from '../observe/log.js';

export type UpstreamOptions = Pick<FulcrumConfig, 'timeouts' | 'backendTls' | 'limits'>;

export class UpstreamClients {
  readonly #clients = new Map<string, Dispatcher>();

  constructor(private options: UpstreamOptions, private readonly log: Logger) {}

  /** get returns the pool of a backend, creating it on first use. */
  get(backend: Backend): Dispatcher {
    let client = this.#clients.get(backend.id);
    if (client === undefined) {
      client = this.#create(backend);
      this.#clients.set(backend.id, client);
    }
    return client;
  }

  /** reconfigure applies new global options to pools created from now on. */
  reconfigure(options: UpstreamOptions): void {
    this.options = options;
  }

  /** release closes a backend's pool once its in-flight requests finish. */
  release(backendId: string): void {
    const client = this.#clients.get(backendId);
    if (client === undefined) return;
    this.#clients.delete(backendId);
    client.close().catch(() => undefined);
  }

  /** reset drops a backend's pool (e.g. its TLS settings changed); the next request creates a new one. */
  reset(backendId: string): void {
    this.release(backendId);
  }

  async close(): Promise<void> {
    const clients = [...this.#clients.values()];
    this.#clients.clear();
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  }

  async destroy(): Promise<void> {
    const clients = [...this.#clients.values()];
    this.#clients.clear();
    await Promise.all(clients.map((c) => c.destroy().catch(() => undefined)));
  }

  #create(backend: Backend): Dispatcher {
    const timeouts = { ...this.options.timeouts, ...backend.config.timeouts };
    const connect: Record<string, unknown> = { timeout: timeouts.connect };
    if (backend.url.protocol === 'https:') Object.assign(connect, this.#tlsOptions(backend));
    return new Pool(backend.origin, {
      connect,
      connectTimeout: timeouts.connect,
      headersTimeout: timeouts.response,
      bodyTimeout: timeouts.idle,
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 60_000,
      pipelining: 1,
      maxHeaderSize: 64 * 1024,
      strictContentLength: true,
    });
  }

  #tlsOptions(backend: Backend): Record<string, unknown> {
    const tls = { ...this.options.backendTls, ...backend.config.tls };
    const out: Record<string, unknown> = { rejectUnauthorized: !tls.insecureSkipVerify };
    if (tls.insecureSkipVerify) this.log.warn({ backend: backend.id, url: backend.url.href }, 'TLS verification to backend is disabled (insecureSkipVerify)');
    if (tls.ca !== undefined) out.ca = readFileSync(tls.ca);
    if (tls.cert !== undefined) out.cert = readFileSync(tls.cert);
    if (tls.key !== undefined) out.key = readFileSync(tls.key);
    if (tls.servername !== undefined) out.servername = tls.servername;
    return out;
  }
}
