/**
 * Listeners: the HTTP servers that accept client connections, their
 * protection against slow and malformed clients, and graceful shutdown
 * (stop accepting, let in-flight requests finish within the drain timeout,
 * close idle keep-alive connections, then upgraded tunnels).
 */
import http, { type RequestListener, type Server } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ListenerConfig } from '../config/schema.js';
import { nodeKeepAliveTimeout, type LimitsSource } from './limits.js';
import type { Logger } from '../observe/log.js';
import { onClientError } from './client-error.js';
import { ClientWatch } from './client-watch.js';
import { FastPath, type FastPathHandler } from './fast-path.js';
import type { GuardLog } from './guard.js';
import { SWEEP_MS } from './sweep.js';
import type { TlsTermination } from './tls.js';

/** UpgradeListener takes node:http's 'upgrade' event. */
export type UpgradeListener = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;

/** Tunnels are the open upgraded connections, which the drain closes last. */
export interface Tunnels {
  closeAll(): void;
}

/**
 * ListenerServer is what binding and draining need from a listener's
 * server, whichever it is: http, https, or http2 (whose sessions are
 * closed with GOAWAY when idle connections are asked to close).
 */
export interface ListenerServer extends NetServer {
  closeIdleConnections(): void;
  closeAllConnections(): void;
}

export interface BoundListener {
  readonly config: ListenerConfig;
  readonly server: ListenerServer;
  /** port is the bound port (differs from config.port when that is 0). */
  port: number;
  address: string;
}

export interface ListenerFactoryParts {
  handler: RequestListener;
  upgrade: UpgradeListener | null;
  /** fast: serve plain proxied HTTP/1.1 requests on the fast path (fast-path.ts); null: node:http serves all. */
  fast?: FastPathHandler | null;
  /** log: where the fast path reports a request whose handling threw (guard.ts); stderr without one. */
  log?: GuardLog;
}

/**
 * handedFieldCount: how many header fields node:http (maxHeadersCount) and
 * HTTP/2 (maxHeaderListPairs, pseudo-header fields besides) hand over. They
 * drop the fields past it silently, so they are set to one more than
 * `limits.maxHeaderCount`: the pipeline sees the excess and answers 431,
 * rather than forwarding a request whose framing fields may have been dropped.
 * Set when the listener is made: raising the limit by a reload takes effect at restart.
 */
export function handedFieldCount(limits: LimitsSource['limits']): number {
  return limits.maxHeaderCount + 1;
}

/** http1Options are the HTTP/1 server settings every listener shares (plain, TLS, or HTTP/1 fallback of HTTP/2). */
export function http1Options(limits: LimitsSource['limits']): http.ServerOptions {
  return {
    maxHeaderSize: limits.maxHeaderSize,
    headersTimeout: limits.headersTimeout,
    requestTimeout: limits.requestTimeout,
    // node:http closes an idle socket a second after this: at limits.keepAliveTimeout (limits.ts).
    keepAliveTimeout: nodeKeepAliveTimeout(limits.keepAliveTimeout),
    // node:http checks the headers and request timeouts of all its connections at this interval (30 s by
    // default, so a timeout could be up to 30 s late): as often as the listeners' own sweep.
    connectionsCheckingInterval: SWEEP_MS,
    joinDuplicateHeaders: false,
    noDelay: true,
  };
}

/**
 * tlsHandshakeTimeout bounds a TLS handshake by the headers timeout (Node's
 * default is 120 s): a client that connects and sends nothing must not hold
 * a socket longer than one that sends half a head.
 */
export function tlsHandshakeTimeout(limits: LimitsSource['limits']): { handshakeTimeout?: number } {
  return limits.headersTimeout > 0 ? { handshakeTimeout: Math.min(120_000, limits.headersTimeout) } : {};
}

function attach(server: Server, rt: LimitsSource, parts: ListenerFactoryParts, event: 'connection' | 'secureConnection'): ClientWatch {
  if (rt.limits.maxRequestsPerSocket > 0) server.maxRequestsPerSocket = rt.limits.maxRequestsPerSocket;
  server.maxHeadersCount = handedFieldCount(rt.limits);
  server.on('clientError', onClientError);
  if (parts.upgrade !== null) server.on('upgrade', parts.upgrade);
  const watch = ClientWatch.attach(server, rt);
  if (parts.fast != null) {
    const fast = FastPath.install(server, event, rt, parts.fast, parts.log ?? null, watch);
    // Draining closes the fast path's connections too: idle ones as they go idle, then the rest.
    const closeIdle = server.closeIdleConnections.bind(server);
    const closeAll = server.closeAllConnections.bind(server);
    server.closeIdleConnections = () => { closeIdle(); fast.closeIdle(); };
    server.closeAllConnections = () => { closeAll(); fast.closeAll(); };
  }
  return watch;
}

export function createHttpServer(rt: LimitsSource, parts: ListenerFactoryParts): Server {
  return createWatchedHttpServer(rt, parts).server;
}

/** createWatchedHttpServer is createHttpServer with its slow-client watch, for a caller that hands connections over (h2c). */
export function createWatchedHttpServer(rt: LimitsSource, parts: ListenerFactoryParts): { server: Server; watch: ClientWatch } {
  const server = http.createServer(http1Options(rt.limits), parts.handler);
  const watch = attach(server, rt, parts, 'connection');
  return { server, watch };
}

/** createHttpsServer is an HTTP/1.1 listener behind TLS; `tls` picks the certificate per SNI name and swaps it on reload. */
export function createHttpsServer(rt: LimitsSource, parts: ListenerFactoryParts, tls: TlsTermination): https.Server {
  const server = https.createServer({ ...http1Options(rt.limits), ...tls.serverOptions(), ...tlsHandshakeTimeout(rt.limits) }, parts.handler);
  attach(server, rt, parts, 'secureConnection');
  tls.attach(server);
  return server;
}

export async function bind(server: ListenerServer, config: ListenerConfig): Promise<BoundListener> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ port: config.port, host: config.host }, () => {
      server.removeListener('error', onError);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  return { config, server, port: addr.port, address: addr.address };
}

/**
 * drain stops accepting, waits for in-flight requests (not tunnels) up to
 * `timeoutMs`, closing keep-alive connections as they go idle, then closes
 * upgraded tunnels and whatever remains. Returns true when the requests
 * finished in time.
 */
export async function drain(listeners: readonly BoundListener[], tunnels: Tunnels, active: () => number, timeoutMs: number, log: Logger): Promise<boolean> {
  for (const l of listeners) {
    l.server.close();
    l.server.closeIdleConnections();
  }
  const deadline = Date.now() + timeoutMs;
  while (active() > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    for (const l of listeners) l.server.closeIdleConnections();
  }
  const inTime = active() === 0;
  if (!inTime) log.warn({ timeoutMs, inflight: active() }, 'drain timeout reached; closing remaining connections');
  tunnels.closeAll();
  for (const l of listeners) l.server.closeAllConnections();
  return inTime;
}

export type { Socket };
