/**
 * Upstream connection pools: one keep-alive pool per backend, created when
 * the backend joins and closed (gracefully) when it leaves, so that a
 * backend that stays across a reload keeps its warm connections.
 *
 * http:// backends get Fulcrum's own HTTP/1.1 client (h1-client.ts) unless
 * `upstream.client` is `undici`; https:// backends always get undici's Pool,
 * whose TLS connector backend-tls.ts configures. Both speak dispatch.ts.
 *
 * h2c:// backends, and https:// ones when `upstream.http2` is on, get
 * Fulcrum's HTTP/2 client (h2-client.ts); an https:// backend that answers
 * ALPN with HTTP/1.1 only falls back to undici's Pool, made as below.
 *
 * With `sendProxyProtocol` (proxy-protocol.ts), a connection starts with
 * the PROXY header of the client whose request opened it, so it must not
 * carry another client's requests. Fulcrum's client keeps its idle
 * connections per header (reuse within one client connection, the common
 * keep-alive case). undici's connect function is not told which request a
 * connection is for, so there each request gets a connection of its own
 * (a one-request Client, closed after the response): correct, at the cost
 * of a handshake per request.
 */
import { Client, Pool } from 'undici';
import type { Backend } from '../backends/backend.js';
import type { ServiceConfig } from '../config/schema.js';
import type { Logger } from '../observe/log.js';
import { BackendTls, tlsConnector } from './backend-tls.js';
import type { UpstreamDispatcher } from './dispatch.js';
import { H1Error, H1Pool } from './h1-client.js';
import { H2Pool } from './h2-client.js';
import { encodeProxyHeader, proxiedConnector, type ProxyProtocolVersion } from './proxy-protocol.js';
import type { UpstreamHandler, UpstreamRequest } from './dispatch.js';

export type UpstreamOptions = Pick<ServiceConfig, 'timeouts' | 'backendTls' | 'backends' | 'upstream' | 'sendProxyProtocol'>;

export class UpstreamClients {
  readonly #clients = new Map<string, UpstreamDispatcher>();
  /** #https holds the ids of the backends whose pools speak TLS, which a TLS change replaces. */
  readonly #https = new Set<string>();
  #tls: BackendTls;

  /** The constructor reads the backend TLS files; a bad one is a ConfigError. */
  constructor(private options: UpstreamOptions, private readonly log: Logger) {
    this.#tls = BackendTls.load(options, log);
  }

  /** tls is the backend TLS configuration in force (health checks and tunnels use it too). */
  get tls(): BackendTls {
    return this.#tls;
  }

  /** proxyProtocolFor: the PROXY protocol version sent to a backend (its own setting, else the service's), or null. */
  proxyProtocolFor(backend: Backend): ProxyProtocolVersion | null {
    return backend.config.sendProxyProtocol ?? this.options.sendProxyProtocol ?? null;
  }

  /** get returns the pool of a backend, creating it on first use. */
  get(backend: Backend): UpstreamDispatcher {
    let client = this.#clients.get(backend.id);
    if (client === undefined) {
      client = this.#create(backend);
      this.#clients.set(backend.id, client);
    }
    return client;
  }

  /**
   * reconfigure applies new global options to pools created from now on.
   * `tls` is loaded by the caller before it commits to the reload (a bad file
   * rejects the reload); when TLS settings or files changed, the pools of
   * https backends are closed gracefully so that new connections use them.
   */
  reconfigure(options: UpstreamOptions, tls: BackendTls = BackendTls.load(options, this.log)): void {
    const clientChanged = options.upstream.client !== this.options.upstream.client || options.sendProxyProtocol !== this.options.sendProxyProtocol;
    this.options = options;
    const tlsChanged = tls.fingerprint !== this.#tls.fingerprint;
    this.#tls = tls;
    // A new upstream.client (or sendProxyProtocol) applies to the http:// backends' pools, made anew on their next request.
    if (clientChanged) for (const id of [...this.#clients.keys()]) if (!this.#https.has(id)) this.release(id);
    if (!tlsChanged) return;
    for (const id of this.#https) this.release(id);
  }

  /** release closes a backend's pool once its in-flight requests finish. */
  release(backendId: string): void {
    const client = this.#clients.get(backendId);
    if (client === undefined) return;
    this.#clients.delete(backendId);
    this.#https.delete(backendId);
    client.close().catch(() => undefined);
  }

  /** reset drops a backend's pool (e.g. its TLS settings changed); the next request creates a new one. */
  reset(backendId: string): void {
    this.release(backendId);
  }

  async close(): Promise<void> {
    const clients = [...this.#clients.values()];
    this.#clients.clear();
    this.#https.clear();
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  }

  async destroy(): Promise<void> {
    const clients = [...this.#clients.values()];
    this.#clients.clear();
    this.#https.clear();
    await Promise.all(clients.map((c) => c.destroy().catch(() => undefined)));
  }

  #create(backend: Backend): UpstreamDispatcher {
    const timeouts = { ...this.options.timeouts, ...backend.config.timeouts };
    const protocol = backend.url.protocol;
    const https = protocol === 'https:';
    if (protocol === 'h2c:' || (https && this.options.upstream.http2)) return this.#createH2(backend, timeouts, https);
    return this.#createH1(backend, timeouts, https);
  }

  #createH2(backend: Backend, timeouts: { connect: number; response: number; idle: number }, https: boolean): UpstreamDispatcher {
    if (https) this.#https.add(backend.id);
    return new H2Pool(backend.url, {
      connectTimeout: timeouts.connect,
      headersTimeout: timeouts.response,
      bodyTimeout: timeouts.idle,
      tls: https ? this.#tls.connectOptionsFor(backend) : null,
      fallback: https ? () => this.#createH1(backend, timeouts, true) : null,
    });
  }

  #createH1(backend: Backend, timeouts: { connect: number; response: number; idle: number }, https: boolean): UpstreamDispatcher {
    const proxyProtocol = this.proxyProtocolFor(backend);
    if (!https && this.options.upstream.client === 'fulcrum') {
      return new H1Pool(backend.url, {
        connectTimeout: timeouts.connect,
        headersTimeout: timeouts.response,
        bodyTimeout: timeouts.idle,
        keepAliveTimeout: 4_000,
        keepAliveMaxTimeout: 60_000,
        maxHeaderSize: 64 * 1024,
        proxyProtocol,
      });
    }
    if (proxyProtocol !== null) {
      const tls = https ? tlsConnector(this.#tls.optionsFor(backend), timeouts.connect) : null;
      if (https) this.#https.add(backend.id);
      return new OneShotClients(backend.origin, proxyProtocol, tls, timeouts);
    }
    const connect = https ? tlsConnector(this.#tls.optionsFor(backend), timeouts.connect) : { timeout: timeouts.connect };
    const pool = new Pool(backend.origin, {
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
    if (https) this.#https.add(backend.id);
    // undici's Pool implements the legacy handler interface of dispatch.ts; its typings mark those
    // callbacks optional and deprecated (and type trailers as strings, though it passes Buffers).
    return pool as unknown as UpstreamDispatcher;
  }
}

/**
 * OneShotClients sends each request on a connection of its own that starts
 * with the request's PROXY header: an undici Client per request, closed as
 * soon as its one request is done (see the module comment for why).
 */
class OneShotClients implements UpstreamDispatcher {
  /** idleConnections: none, ever: each request gets a connection of its own. */
  readonly idleConnections = 0;
  readonly #open = new Set<Client>();
  #closing: 'closed' | 'destroyed' | null = null;

  constructor(
    private readonly origin: string,
    private readonly version: ProxyProtocolVersion,
    private readonly tls: ReturnType<typeof tlsConnector> | null,
    private readonly timeouts: { connect: number; response: number; idle: number },
  ) {}

  dispatch(request: UpstreamRequest, handler: UpstreamHandler): boolean {
    if (this.#closing !== null) {
      const err = this.#closing === 'destroyed' ? new H1Error('UND_ERR_DESTROYED', 'the pool was destroyed') : new H1Error('UND_ERR_CLOSED', 'the pool is closed');
      queueMicrotask(() => handler.onError(err));
      return false;
    }
    const client = new Client(this.origin, {
      connect: proxiedConnector(encodeProxyHeader(this.version, request.client), this.tls, this.timeouts.connect),
      headersTimeout: this.timeouts.response,
      bodyTimeout: this.timeouts.idle,
      pipelining: 1,
      maxHeaderSize: 64 * 1024,
      strictContentLength: true,
    });
    this.#open.add(client);
    // See clients.ts#create on the handler interface's typings.
    const ok = (client as unknown as UpstreamDispatcher).dispatch(request, handler);
    // close() lets the queued request finish, then closes the connection.
    client.close().catch(() => undefined).finally(() => this.#open.delete(client));
    return ok;
  }

  async close(): Promise<void> {
    this.#closing ??= 'closed';
    await Promise.all([...this.#open].map((c) => c.close().catch(() => undefined)));
  }

  async destroy(): Promise<void> {
    this.#closing = 'destroyed';
    await Promise.all([...this.#open].map((c) => c.destroy().catch(() => undefined)));
  }
}
