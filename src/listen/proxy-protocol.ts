/**
 * Accepting the PROXY protocol on a listener (`listen[].proxyProtocol`):
 * behind an L4 balancer, the TCP peer is the balancer, and the client's
 * address comes in a header before the connection's own bytes. Node will
 * not parse it (nodejs/node#17126), so this adapter takes the server's
 * 'connection' event first, reads the header (proxy-header.ts), and then
 * hands the socket to the listeners that were there (node:http, the fast
 * path, the h2c sniffer, or TLS), with the bytes after the header put back
 * for them to read.
 *
 * The client's address replaces the socket's own: remoteAddress,
 * remotePort and remoteFamily become own properties of the socket (and of
 * the TLSSocket that wraps it on a TLS listener), so that everything that
 * reads the peer (trusted proxies, the hash key, rate limits, access logs,
 * X-Forwarded-For) sees the client without knowing of this module. A LOCAL
 * header or one without usable addresses (UNKNOWN) keeps the real peer.
 *
 * Only peers in `trusted` may send a header. With `required`, a connection
 * from any other peer, or one from a trusted peer without a header, is
 * closed; without it, both are served as plain connections (an untrusted
 * peer's header is then just bytes, which the HTTP parser refuses). A
 * malformed or oversized header, or none complete within `timeout`, closes
 * the connection: nothing of it reaches a backend.
 *
 * A listener without `proxyProtocol` never gets this adapter: its
 * connections take no extra step.
 */
import type { Server, Socket } from 'node:net';
import tls from 'node:tls';
import type { ListenerConfig } from '../config/schema.js';
import { TrustedProxies } from '../core/trusted-proxies.js';
import type { Logger } from '../observe/log.js';
import { parseProxyHeader, type ProxyHeader } from './proxy-header.js';

export type ProxyProtocolConfig = NonNullable<ListenerConfig['proxyProtocol']>;

/** PROXY_HEADER: the header a connection arrived with, kept on the socket for whoever wants its TLVs. */
export const PROXY_HEADER: unique symbol = Symbol('fulcrum.proxyHeader');
export interface ProxyHeaderCarrier { [PROXY_HEADER]?: ProxyHeader }

type ConnectionListener = (socket: Socket) => void;

/** ClientAddress is what a header says of the client. */
interface ClientAddress {
  readonly address: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
}

/** presentAs makes a socket report the client's address as its peer. */
function presentAs(socket: Socket, client: ClientAddress): void {
  Object.defineProperty(socket, 'remoteAddress', { value: client.address, configurable: true, enumerable: true });
  Object.defineProperty(socket, 'remotePort', { value: client.port, configurable: true, enumerable: true });
  Object.defineProperty(socket, 'remoteFamily', { value: client.family, configurable: true, enumerable: true });
}

/** CLIENT: the address a net socket was given, read again when TLS wraps it. */
const CLIENT: unique symbol = Symbol('fulcrum.proxyClient');
interface ClientCarrier { [CLIENT]?: ClientAddress }

/**
 * acceptProxyProtocol installs the adapter on a built server (after the
 * fast path and any sniffer took their places, whose listeners it wraps).
 */
export function acceptProxyProtocol(server: Server, config: ProxyProtocolConfig, log: Logger): void {
  const trusted = new TrustedProxies(config.trusted);
  const inner = server.listeners('connection') as ConnectionListener[];
  server.removeAllListeners('connection');
  const isTls = server instanceof tls.Server;
  const deliver = (socket: Socket, rest: Buffer | null): void => {
    if (socket.destroyed) return;
    // Put the bytes back: TLS reads what the socket has buffered when it wraps it; node:http, the
    // fast path and the h2c sniffer get them as a 'data' event once the socket flows again.
    socket.pause();
    if (rest !== null && rest.length > 0) socket.unshift(rest);
    for (const listener of inner) listener.call(server, socket);
    if (!isTls) socket.resume();
  };
  if (isTls) {
    // The TLSSocket reads its peer from the handle, not from the net socket it wraps: copy the
    // client's address onto it before anything (the fast path, node:http, HTTP/2) reads it.
    server.prependListener('secureConnection', (secure: tls.TLSSocket) => {
      const client = (secure as unknown as { _parent?: ClientCarrier })._parent?.[CLIENT];
      if (client !== undefined) presentAs(secure, client);
    });
  }
  server.on('connection', (socket: Socket) => {
    if (!trusted.has(socket.remoteAddress)) {
      if (config.required) socket.destroy();
      else deliver(socket, null);
      return;
    }
    readHeader(socket, config, log, deliver);
  });
}

function readHeader(socket: Socket, config: ProxyProtocolConfig, log: Logger, deliver: (socket: Socket, rest: Buffer | null) => void): void {
  let seen: Buffer | null = null;
  const timer = setTimeout(() => {
    log.debug({ peer: socket.remoteAddress }, 'PROXY protocol: no header in time; connection closed');
    socket.destroy();
  }, config.timeout);
  const stop = (): void => {
    clearTimeout(timer);
    socket.removeListener('data', onData);
    socket.removeListener('error', onError);
    socket.removeListener('close', stop);
  };
  const onError = (): void => {
    stop();
    socket.destroy();
  };
  const onData = (chunk: Buffer): void => {
    seen = seen === null ? chunk : Buffer.concat([seen, chunk]);
    const result = parseProxyHeader(seen);
    switch (result.kind) {
      case 'incomplete':
        return;
      case 'invalid':
        stop();
        log.debug({ peer: socket.remoteAddress, reason: result.reason }, 'PROXY protocol: malformed header; connection closed');
        socket.destroy();
        return;
      case 'none':
        stop();
        if (config.required) {
          log.debug({ peer: socket.remoteAddress }, 'PROXY protocol: required header missing; connection closed');
          socket.destroy();
        } else {
          deliver(socket, seen);
        }
        return;
      case 'header': {
        stop();
        const h = result.header;
        (socket as ProxyHeaderCarrier)[PROXY_HEADER] = h;
        if (h.command === 'proxy' && h.source !== null) {
          const client: ClientAddress = { address: h.source.address, port: h.source.port, family: h.family === 'tcp6' ? 'IPv6' : 'IPv4' };
          (socket as ClientCarrier)[CLIENT] = client;
          presentAs(socket, client);
        }
        deliver(socket, seen.subarray(result.length));
        return;
      }
    }
  };
  socket.on('data', onData);
  socket.on('error', onError);
  socket.on('close', stop);
}
