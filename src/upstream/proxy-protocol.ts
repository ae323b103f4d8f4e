/**
 * Sending the PROXY protocol to backends (`sendProxyProtocol: v1 | v2`, at
 * the top level or per backend): the header that tells a backend which
 * client a connection is for, written as the connection's first bytes,
 * before TLS and HTTP (HAProxy's `send-proxy` and `send-proxy-v2`).
 *
 * The header describes the client's connection to Fulcrum: its source is
 * the client's address and port (the PROXY header's, when the listener
 * accepts the protocol itself), its destination the address and port the
 * client connected to. When either is unknown, v1 says UNKNOWN and v2 sends
 * no addresses. Health checks, which are Fulcrum's own connections, send
 * v1 UNKNOWN or a v2 LOCAL header.
 *
 * Because a backend connection carries the header of the client that
 * opened it, it must not carry another client's requests: see h1-client.ts
 * (idle connections are kept per header) and clients.ts (undici gets a
 * connection per request).
 */
import net, { type Socket } from 'node:net';
import type { buildConnector } from 'undici';
import { H1Error } from '../http1/errors.js';

export type ProxyProtocolVersion = 'v1' | 'v2';

/**
 * ClientConnection: the ends of a client's connection, as a socket reports
 * them (the listeners' sockets, node:http2's socket proxy, and the fast
 * path's socket all do).
 */
export interface ClientConnection {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
}

const V2_SIGNATURE = Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1');
const V1_UNKNOWN = Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
/** v2, version 2 PROXY command, AF_UNSPEC: the addresses are not known (the backend keeps the real peer). */
const V2_UNSPEC = Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x00, 0x00, 0x00])]);
/** v2 LOCAL: the connection is Fulcrum's own (a health check). */
const V2_LOCAL = Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);

/** localProxyHeader is the header of Fulcrum's own connections (health checks). */
export function localProxyHeader(version: ProxyProtocolVersion): Buffer {
  return version === 'v1' ? V1_UNKNOWN : V2_LOCAL;
}

/** plainV4 turns an IPv4-mapped IPv6 address ("::ffff:10.0.0.1") into IPv4; other addresses stay. */
function plainV4(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
}

/** ipv6Bytes writes an IPv6 address (with "::" and a dotted IPv4 tail allowed) as 16 bytes at `at`. */
function ipv6Bytes(address: string, out: Buffer, at: number): void {
  const zone = address.indexOf('%');
  const text = zone >= 0 ? address.slice(0, zone) : address;
  const groups: number[] = [];
  const toGroups = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (g.includes('.')) {
        const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
        out.push((a << 8) | b, (c << 8) | d);
      } else {
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const gap = text.indexOf('::');
  if (gap < 0) {
    groups.push(...toGroups(text));
  } else {
    const head = toGroups(text.slice(0, gap));
    const tail = toGroups(text.slice(gap + 2));
    groups.push(...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail);
  }
  for (let i = 0; i < 8; i++) out.writeUInt16BE(groups[i] ?? 0, at + i * 2);
}

/**
 * encodeProxyHeader builds the header for a client's connection. Both ends
 * are written in one family: IPv4 when both are (mapped addresses count as
 * IPv4), otherwise IPv6 (an IPv4 end then written IPv4-mapped).
 */
export function encodeProxyHeader(version: ProxyProtocolVersion, conn: ClientConnection | undefined): Buffer {
  const src = conn?.remoteAddress;
  const dst = conn?.localAddress;
  const sport = conn?.remotePort;
  const dport = conn?.localPort;
  if (src === undefined || dst === undefined || sport === undefined || dport === undefined || net.isIP(plainV4(src)) === 0 || net.isIP(plainV4(dst)) === 0) {
    return version === 'v1' ? V1_UNKNOWN : V2_UNSPEC;
  }
  let s = plainV4(src);
  let d = plainV4(dst);
  const v4 = net.isIPv4(s) && net.isIPv4(d);
  if (!v4) {
    if (net.isIPv4(s)) s = `::ffff:${s}`;
    if (net.isIPv4(d)) d = `::ffff:${d}`;
  }
  if (version === 'v1') return Buffer.from(`PROXY ${v4 ? 'TCP4' : 'TCP6'} ${s} ${d} ${sport} ${dport}\r\n`, 'latin1');
  const addressBytes = v4 ? 12 : 36;
  const out = Buffer.alloc(16 + addressBytes);
  V2_SIGNATURE.copy(out, 0);
  out[12] = 0x21; // version 2, PROXY
  out[13] = v4 ? 0x11 : 0x21; // AF_INET or AF_INET6, STREAM
  out.writeUInt16BE(addressBytes, 14);
  if (v4) {
    s.split('.').forEach((n, i) => { out[16 + i] = Number(n); });
    d.split('.').forEach((n, i) => { out[20 + i] = Number(n); });
    out.writeUInt16BE(sport, 24);
    out.writeUInt16BE(dport, 26);
  } else {
    ipv6Bytes(s, out, 16);
    ipv6Bytes(d, out, 32);
    out.writeUInt16BE(sport, 48);
    out.writeUInt16BE(dport, 50);
  }
  return out;
}

/**
 * dialWithHeader connects to a backend and writes `header` first; `done`
 * gets the connected socket (for TLS to wrap, or for HTTP), or the error.
 * `timeout` (ms, 0 for none) bounds the TCP connect.
 */
export function dialWithHeader(host: string, port: number, header: Buffer, timeout: number, done: (err: Error | null, socket: Socket | null) => void): void {
  let settled = false;
  const raw = net.connect({ host, port, noDelay: true });
  const timer = timeout > 0 ? setTimeout(() => fail(new H1Error('UND_ERR_CONNECT_TIMEOUT', `connect timeout (${timeout}ms)`)), timeout) : null;
  function fail(err: Error): void {
    if (settled) return;
    settled = true;
    if (timer !== null) clearTimeout(timer);
    raw.destroy();
    done(err, null);
  }
  raw.once('error', fail);
  raw.once('connect', () => {
    if (settled) return;
    settled = true;
    if (timer !== null) clearTimeout(timer);
    raw.removeListener('error', fail);
    raw.write(header);
    done(null, raw);
  });
}

/**
 * proxiedConnector is an undici connect function that writes `header` on
 * each new connection, then hands the socket to `tls` (undici's TLS
 * connector, given the socket as `httpSocket`) or, for http://, to undici.
 */
export function proxiedConnector(header: Buffer, tls: buildConnector.connector | null, timeout: number): buildConnector.connector {
  return (opts, callback) => {
    const port = Number(opts.port) || (opts.protocol === 'https:' ? 443 : 80);
    const host = opts.hostname.startsWith('[') ? opts.hostname.slice(1, -1) : opts.hostname;
    dialWithHeader(host, port, header, timeout, (err, raw) => {
      if (err !== null) callback(err, null);
      else if (tls === null) callback(null, raw!);
      else tls({ ...opts, httpSocket: raw! }, callback);
    });
  };
}
