/**
 * Upgrade (WebSocket) proxying. Node's server emits 'upgrade' only for a
 * request with both `Connection: upgrade` and `Upgrade`; the request is
 * forwarded with those headers (and X-Forwarded-*). Only a 101 from the
 * backend turns the connection into a tunnel; any other answer is relayed
 * as an ordinary response and the connection closed. Either side closing
 * or failing closes both; the backend's in-flight count covers the tunnel's
 * whole life.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { Backend } from '../backends/backend.js';
import { FulcrumError, fromUpstreamError } from '../core/errors.js';
import { clientAddressOf, newRequestMeta, upstreamHeaders } from './headers.js';
import { stripMappedPrefix } from '../core/trusted-proxies.js';
import type { ProxyRuntime } from './runtime.js';

const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'trailer', 'upgrade', 'content-length']);

export type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** UpgradeTracker holds open tunnels, so that shutdown can close them last. */
export class UpgradeTracker {
  readonly sockets = new Set<Duplex>();
  closeAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}

function writeError(socket: Duplex, error: FulcrumError): void {
  if (!socket.writable) { socket.destroy(); return; }
  const body = `${error.status} ${error.message}\n`;
  socket.end(`HTTP/1.1 ${error.status} ${http.STATUS_CODES[error.status] ?? 'Error'}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Fulcrum-Error: ${error.code}\r\nConnection: close\r\n\r\n${body}`);
}

function headBlock(statusLine: string, raw: readonly string[], skipHop: boolean, extra: string): string {
  let out = `${statusLine}\r\n`;
  for (let i = 0; i < raw.length; i += 2) {
    if (skipHop && HOP.has(raw[i]!.toLowerCase())) continue;
    out += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  return `${out}${extra}\r\n`;
}

/** InternalUpgrade lets the balancer's own endpoints (the dashboard's WebSocket) take an upgrade; true when taken. */
export type InternalUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean;

export function createUpgradeListener(rt: ProxyRuntime, proto: 'http' | 'https', tracker: UpgradeTracker, internal: (() => InternalUpgrade | null) | null = null): UpgradeListener {
  return function onUpgrade(req, socket, head) {
    socket.on('error', () => socket.destroy());
    const own = internal?.() ?? null;
    if (own !== null && own(req, socket, head)) return;
    const upgrade = req.headers.upgrade;
    if (rt.draining || typeof upgrade !== 'string' || upgrade.trim() === '') {
      writeError(socket, new FulcrumError(rt.draining ? 'FULCRUM_ERR_SHUTTING_DOWN' : 'FULCRUM_ERR_BAD_REQUEST', rt.draining ? undefined : 'invalid Upgrade header'));
      return;
    }
    const peer = req.socket.remoteAddress ?? '';
    const meta = newRequestMeta();
    const headers = upstreamHeaders(req.rawHeaders, { peer, proto, authority: undefined }, rt.forward, meta);
    const client = meta.xff === undefined ? stripMappedPrefix(peer) : clientAddressOf(peer, meta.xff, rt.forward.trusted);
    const backend = rt.pick({ clientAddress: client, hashKey: undefined, tried: undefined });
    if (backend === undefined) {
      writeError(socket, new FulcrumError('FULCRUM_ERR_NO_BACKEND'));
      return;
    }
    tunnel(rt, backend, req, socket as Socket, head, headers, upgrade, tracker);
  };
}

function tunnel(rt: ProxyRuntime, backend: Backend, req: IncomingMessage, socket: Socket, head: Buffer, headers: string[], upgrade: string, tracker: UpgradeTracker): void {
  const out: Record<string, string> = {};
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    out[name] = out[name] === undefined ? headers[i + 1]! : `${out[name]}, ${headers[i + 1]}`;
  }
  if (!rt.config.preserveHost || !out.host) out.host = backend.hostHeader;
  out.connection = 'Upgrade';
  out.upgrade = upgrade;
  const timeouts = { ...rt.config.timeouts, ...backend.config.timeouts };
  const mod = backend.url.protocol === 'https:' ? https : http;
  backend.state.inflight++;
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    backend.state.inflight--;
    rt.attemptEnded(backend);
  };
  const started = performance.now();
  const record = (status: number): void => rt.metrics.record(backend.id, status, (performance.now() - started) / 1000);

  const upstream = mod.request({
    host: backend.url.hostname.replace(/^\[|\]$/g, ''),
    port: backend.url.port || (backend.url.protocol === 'https:' ? 443 : 80),
    method: req.method,
    path: req.url,
    headers: out,
    agent: false,
    timeout: timeouts.connect,
    rejectUnauthorized: !(rt.config.backendTls.insecureSkipVerify || backend.config.tls?.insecureSkipVerify),
  });
  const responseTimer = setTimeout(() => upstream.destroy(new FulcrumError('FULCRUM_ERR_RESPONSE_TIMEOUT')), timeouts.response);
  const onClientGone = (): void => { upstream.destroy(); release(); };
  socket.once('close', onClientGone);

  upstream.on('upgrade', (ures: IncomingMessage, usocket: Socket, uhead: Buffer) => {
    clearTimeout(responseTimer);
    socket.removeListener('close', onClientGone);
    if (socket.destroyed) { usocket.destroy(); release(); return; }
    usocket.on('error', () => usocket.destroy());
    socket.setNoDelay(true);
    usocket.setNoDelay(true);
    usocket.setTimeout(0);
    socket.write(headBlock(`HTTP/1.1 101 ${ures.statusMessage || 'Switching Protocols'}`, ures.rawHeaders, false, ''));
    if (uhead.length > 0) socket.write(uhead);
    if (head.length > 0) usocket.write(head);
    tracker.sockets.add(socket);
    record(101);
    rt.outlier.success(backend);
    const close = (): void => {
      tracker.sockets.delete(socket);
      socket.destroy();
      usocket.destroy();
      release();
    };
    socket.once('close', close);
    usocket.once('close', close);
    socket.pipe(usocket);
    usocket.pipe(socket);
  });

  upstream.on('response', (ures: IncomingMessage) => {
    // Not upgraded: relay as an ordinary response, then close (the client asked to leave HTTP).
    clearTimeout(responseTimer);
    record(ures.statusCode ?? 0);
    if (socket.destroyed) { ures.destroy(); release(); return; }
    socket.write(headBlock(`HTTP/1.1 ${ures.statusCode} ${ures.statusMessage ?? ''}`, ures.rawHeaders, true, 'Connection: close\r\n'));
    ures.pipe(socket);
    ures.on('error', () => socket.destroy());
    ures.on('end', release);
    ures.on('close', release);
  });

  upstream.on('timeout', () => upstream.destroy(new FulcrumError('FULCRUM_ERR_CONNECT_TIMEOUT')));
  upstream.on('socket', (s: Socket) => { s.once('connect', () => upstream.setTimeout(0)); });
  upstream.on('error', (err) => {
    clearTimeout(responseTimer);
    const error = fromUpstreamError(err, false);
    if (!released && !socket.destroyed) {
      backend.state.failures++;
      rt.outlier.failure(backend, error.code);
      record(error.status);
      writeError(socket, error);
    }
    release();
  });
  upstream.end();
}
