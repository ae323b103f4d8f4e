/**
 * openTunnel sends an upgrade request (WebSocket and the like) to a backend
 * on a connection of its own: an upgraded connection leaves HTTP, so it is
 * never taken from or returned to a keep-alive pool. https:// backends get
 * the same TLS profile as the service's pools and health checks (CA,
 * client certificate, servername, verification), from backend-tls.ts.
 *
 * The handler is the dispatch handler of dispatch.ts plus onUpgrade: a 101
 * hands over the backend's socket; any other answer is an ordinary
 * response, reported through onHeaders/onData/onComplete, after which the
 * connection is closed.
 *
 * With a `proxyHeader` (sendProxyProtocol), the connection starts with it,
 * before TLS and the upgrade request.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import net, { type Socket } from 'node:net';
import tlsModule from 'node:tls';
import type { Backend } from '../backends/backend.js';
import { FulcrumError } from '../core/errors.js';
import { sniName, type BackendTlsOptions } from './backend-tls.js';
import type { UpstreamHandler } from './dispatch.js';
import { dialWithHeader } from './proxy-protocol.js';

export interface TunnelHandler extends UpstreamHandler {
  /** onUpgrade: the backend switched protocols; the handler owns `socket` from here. */
  onUpgrade(rawHeaders: readonly string[], statusText: string, socket: Socket, head: Buffer): void;
}

export interface TunnelRequest {
  readonly method: string;
  readonly path: string;
  /** headers: the flat [name, value, ...] list, Connection and Upgrade included. */
  readonly headers: readonly string[];
  /** connectTimeout bounds connecting (and the TLS handshake); responseTimeout the wait for the answer's head. */
  readonly connectTimeout: number;
  readonly responseTimeout: number;
  /** proxyHeader: the PROXY header to start the connection with, or null. */
  readonly proxyHeader?: Buffer | null;
}

type CreateConnection = (options: object, oncreate: (err: Error | null, socket?: Socket) => void) => Socket | undefined;

/**
 * withHeader makes the tunnel's connection start with the PROXY header.
 * Plain: written while connecting, it is queued ahead of the request. TLS:
 * written once connected, then the TLS handshake starts on that socket.
 */
function withHeader(host: string, port: number, header: Buffer, tls: (BackendTlsOptions & { servername: string }) | null, timeout: number): CreateConnection {
  if (tls === null) {
    return () => {
      const socket = net.connect({ host, port });
      socket.write(header);
      return socket;
    };
  }
  return (_options, oncreate) => {
    dialWithHeader(host, port, header, timeout, (err, raw) => {
      if (err !== null) oncreate(err);
      // host: the name the certificate is checked against when no servername is sent.
      else oncreate(null, tlsModule.connect({ ...tls, socket: raw!, host }));
    });
    return undefined;
  };
}

export function openTunnel(backend: Backend, tls: BackendTlsOptions | null, request: TunnelRequest, handler: TunnelHandler): void {
  const url = backend.url;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const common = {
    host,
    port: url.port || (tls !== null ? 443 : 80),
    method: request.method,
    path: request.path,
    headers: request.headers as string[],
    timeout: request.connectTimeout,
  };
  const servername = tls === null ? '' : sniName(tls, url.hostname) ?? '';
  const header = request.proxyHeader ?? null;
  // Without an agent, node:http uses createConnection when given one (a connection of its own either way).
  const upstream = header !== null
    ? http.request({ ...common, createConnection: withHeader(host, Number(common.port), header, tls === null ? null : { ...tls, servername }, request.connectTimeout) } as http.RequestOptions)
    : tls === null
      ? http.request({ ...common, agent: false })
      : https.request({ ...common, agent: false, ...tls, servername });
  let settled = false;
  const responseTimer = setTimeout(() => upstream.destroy(new FulcrumError('FULCRUM_ERR_RESPONSE_TIMEOUT')), request.responseTimeout);
  const settle = (): boolean => {
    if (settled) return false;
    settled = true;
    clearTimeout(responseTimer);
    return true;
  };

  handler.onConnect((reason) => upstream.destroy(reason));

  upstream.on('timeout', () => upstream.destroy(new FulcrumError('FULCRUM_ERR_CONNECT_TIMEOUT')));
  upstream.on('socket', (s: Socket) => {
    s.once(tls === null ? 'connect' : 'secureConnect', () => upstream.setTimeout(0));
  });

  upstream.on('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => {
    if (!settle()) { socket.destroy(); return; }
    socket.setTimeout(0);
    socket.setNoDelay(true);
    handler.onUpgrade(res.rawHeaders, res.statusMessage ?? '', socket, head);
  });

  upstream.on('response', (res: IncomingMessage) => {
    // Not upgraded: an ordinary answer, relayed through the handler; the connection closes after it.
    if (!settle()) { res.destroy(); return; }
    let paused = false;
    const resume = (): void => {
      if (paused) { paused = false; res.resume(); }
    };
    if (!handler.onHeaders(res.statusCode ?? 502, res.rawHeaders, resume, res.statusMessage ?? '')) {
      res.destroy();
      return;
    }
    res.on('data', (chunk: Buffer) => {
      if (!handler.onData(chunk)) { paused = true; res.pause(); }
    });
    res.on('end', () => handler.onComplete(res.rawTrailers.length > 0 ? res.rawTrailers : null));
    res.on('error', (err) => handler.onError(err));
    res.on('aborted', () => handler.onError(new FulcrumError('FULCRUM_ERR_UPSTREAM_RESET')));
  });

  upstream.on('error', (err) => {
    const first = settle();
    // Errors after the answer began are reported by the response's own events.
    if (first) handler.onError(err);
  });
  upstream.end();
}
