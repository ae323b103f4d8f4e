/**
 * Header handling for both directions: hop-by-hop headers (and any header
 * named in `Connection`) are removed, forwarded headers are added, and the
 * incoming forwarded headers are trusted only from configured proxies.
 */
import type { RawHeaders } from '../upstream/dispatch.js';
import { stripMappedPrefix, type TrustedProxies } from '../core/trusted-proxies.js';

/** Hop-by-hop headers (RFC 9110 7.6.1), plus the non-standard ones proxies also drop. */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'trailer', 'upgrade',
  'proxy-authenticate', 'proxy-authorization', 'http2-settings',
]);

/**
 * A name's shape is its length and first letter (case-folded). ShapeTable
 * holds the shapes of a few lower-case names, so that most names can be
 * passed over without being lower-cased and looked up.
 */
class ShapeTable {
  readonly #shapes = new Uint8Array(64 * 128);

  constructor(names: Iterable<string>) {
    for (const name of names) this.#shapes[name.length * 128 + name.charCodeAt(0)] = 1;
  }

  /** mayHold: name may be one of the table's names (false means it is none of them). */
  mayHold(name: string): boolean {
    const c = name.charCodeAt(0) | 0x20;
    return name.length < 64 && c < 128 && this.#shapes[name.length * 128 + c] === 1;
  }
}

/** Names downstreamHeaders drops or sends once. */
const DOWNSTREAM_SPECIAL = new ShapeTable([...HOP_BY_HOP, 'content-length']);
/** Names upstreamHeaders drops, replaces or reads (the framing fields spelt with "_" share their shapes). */
const UPSTREAM_SPECIAL = new ShapeTable([
  ...HOP_BY_HOP, 'host', 'content-length', 'cookie', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'expect',
]);

/** isPlainChunked: a Transfer-Encoding value that is "chunked" alone (any case, optional whitespace around). */
function isPlainChunked(value: string): boolean {
  const v = value.trim();
  return v.length === 7 && v.toLowerCase() === 'chunked';
}

/** lowerName: a header name in lower case, without a copy for the usual spellings of the names looked up most. */
function lowerName(name: string): string {
  switch (name) {
    case 'Host': return 'host';
    case 'Connection': return 'connection';
    case 'Keep-Alive': return 'keep-alive';
    case 'Content-Length': return 'content-length';
    case 'Transfer-Encoding': return 'transfer-encoding';
    case 'Cookie': return 'cookie';
    default: return name.toLowerCase();
  }
}

/**
 * clientAddressOf returns the address a request is from: the peer, unless
 * the peer is a trusted proxy, then the right-most X-Forwarded-For entry
 * that is not itself a trusted proxy.
 */
export function clientAddressOf(peer: string, xff: string | undefined, trusted: TrustedProxies): string {
  const plainPeer = stripMappedPrefix(peer);
  if (xff === undefined || !trusted.has(plainPeer)) return plainPeer;
  const hops = xff.split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!.trim();
    if (hop !== '' && !trusted.has(hop)) return hop;
  }
  return hops[0]!.trim() || plainPeer;
}

export interface ForwardOptions {
  readonly trusted: TrustedProxies;
  readonly preserveHost: boolean;
}

export interface RequestInfo {
  readonly peer: string;
  readonly proto: 'http' | 'https';
  /**
   * authority is the HTTP/2 `:authority`, or the authority of an HTTP/1
   * absolute-form target (which wins over Host, RFC 9112 3.2.2); other HTTP/1
   * requests carry it in `Host`.
   */
  readonly authority: string | undefined;
}

/** RequestMeta is what the header pass learns about the request, for the pipeline. */
export interface RequestMeta {
  /** contentLength is -1 when absent. */
  contentLength: number;
  chunked: boolean;
  /** xff is the incoming X-Forwarded-For, kept only from a trusted proxy. */
  xff: string | undefined;
  host: string | undefined;
  /** cookie is kept for sticky sessions and cookie hash keys. */
  cookie: string | undefined;
  /** h2: the request came over HTTP/2 (the listener says so: never inferred from a version string). */
  h2: boolean;
  /** invalid: why the header pass found the request malformed (the pipeline answers 400), or null. */
  invalid: string | null;
}

export function newRequestMeta(): RequestMeta {
  return { contentLength: -1, chunked: false, xff: undefined, host: undefined, cookie: undefined, h2: false, invalid: null };
}

/**
 * HOST_SYNTAX is a Host value (RFC 9110 7.2, RFC 3986 3.2.2): an IP literal
 * or a registered name, then an optional numeric port. No userinfo ("a@b"
 * would make the part before "@" look like a host to some backends), no
 * space, no second colon outside brackets.
 */
const HOST_SYNTAX = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?$/;

/** The last Host value found well formed: consecutive requests usually repeat it. */
let lastGoodHost = '';

/** hostValid: `host` is a well-formed Host (or :authority) value. */
function hostValid(host: string): boolean {
  if (host === lastGoodHost) return true;
  if (!HOST_SYNTAX.test(host)) return false;
  lastGoodHost = host;
  return true;
}

/** The inputs and result of the last forwardedElement call: consecutive requests usually share them (one client, one Host). */
let lastPeer = '';
let lastProto = '';
let lastHost: string | undefined;
let lastElement = '';

/** forwardedElement is this proxy's element of the Forwarded header (RFC 7239). */
function forwardedElement(peer: string, proto: string, host: string | undefined): string {
  if (peer === lastPeer && proto === lastProto && host === lastHost && lastElement !== '') return lastElement;
  // After stripMappedPrefix only IPv6 addresses contain ":" (cheaper than net.isIPv6's regex).
  let element = `for=${peer.includes(':') ? `"[${peer}]"` : peer};proto=${proto}`;
  if (host !== undefined) element += `;host="${host.replace(/["\\]/g, '')}"`;
  lastPeer = peer;
  lastProto = proto;
  lastHost = host;
  lastElement = element;
  return element;
}

/**
 * upstreamHeaders builds the header list sent to a backend from the client's
 * raw headers, in one pass, and fills `meta`. It returns a flat
 * [name, value, name, value...] array, the cheapest form for the upstream client.
 */
export function upstreamHeaders(raw: readonly string[], info: RequestInfo, options: ForwardOptions, meta: RequestMeta): string[] {
  // Host always comes first (index 1 holds its value): the exchange fills in the backend's own
  // host:port there, in O(1), when the client's is not preserved or the request had none.
  const out: string[] = ['host', ''];
  const peer = stripMappedPrefix(info.peer);
  const trusted = options.trusted.has(peer);
  let xff: string | undefined;
  let xfp: string | undefined;
  let xfh: string | undefined;
  let fwd: string | undefined;
  let connection: string | undefined;
  let host = info.authority;
  let hosts = 0;
  let cookieAt = -1;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (!UPSTREAM_SPECIAL.mayHold(name)) {
      // HTTP/2 pseudo-headers (":path", ":scheme"...) are not headers to forward.
      if (name.charCodeAt(0) !== 58 /* ":" */) out.push(name, value);
      continue;
    }
    const lower = lowerName(name);
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') connection = connection === undefined ? value : `${connection}, ${value}`;
      else if (lower === 'transfer-encoding') {
        // Only a single, plain "chunked" frames a request the same way everywhere. An empty value frames
        // nothing (node:http would frame by Content-Length, a backend by the coding: TE.CL); other codings,
        // lists and repeats are read differently by different parsers (TE.TE). Refused, as HAProxy does.
        if (meta.chunked) meta.invalid = 'more than one Transfer-Encoding';
        else if (!isPlainChunked(value)) meta.invalid = value.trim() === '' ? 'empty Transfer-Encoding' : 'unsupported Transfer-Encoding: only "chunked" is accepted';
        meta.chunked = true;
      }
      continue;
    }
    switch (lower) {
      case 'host':
        // One Host (RFC 9112 3.2); over HTTP/2, one that names what :authority names (RFC 9113 8.3.1).
        if (++hosts > 1) meta.invalid = 'more than one Host header';
        else if (host === undefined) host = value;
        else if (meta.h2 && value !== host && value.toLowerCase() !== host.toLowerCase()) meta.invalid = 'Host differs from :authority';
        continue;
      case 'content-length':
        meta.contentLength = Number(value);
        out.push(name, value);
        continue;
      case 'cookie':
        // HTTP/2 clients may split cookies over several headers; HTTP/1.1 allows one (RFC 9113 8.2.3).
        if (meta.cookie === undefined) {
          cookieAt = out.length + 1;
          meta.cookie = value;
          out.push(name, value);
        } else {
          meta.cookie = `${meta.cookie}; ${value}`;
          out[cookieAt] = meta.cookie;
        }
        continue;
      case 'x-forwarded-for':
        if (trusted) xff = xff === undefined ? value : `${xff}, ${value}`;
        continue;
      case 'x-forwarded-proto':
        if (trusted && xfp === undefined) xfp = value;
        continue;
      case 'x-forwarded-host':
        if (trusted && xfh === undefined) xfh = value;
        continue;
      case 'forwarded':
        if (trusted) fwd = fwd === undefined ? value : `${fwd}, ${value}`;
        continue;
      case 'expect':
        // The listener has already answered "100 Continue"; the backend must not wait for it.
        continue;
      case 'transfer_encoding':
      case 'content_length':
        // Some servers (CGI, and those that map "_" to "-") read these as the framing fields: a second framing.
        meta.invalid = `a "${name}" field`;
        continue;
      default:
        // HTTP/2 pseudo-headers (":method", ":path", ":authority", ":scheme") are not headers to forward.
        if (name.charCodeAt(0) !== 58 /* ":" */) out.push(name, value);
    }
  }
  meta.xff = xff;
  meta.host = host;
  if (host !== undefined && !hostValid(host)) meta.invalid = 'invalid Host: expected a host name or address and an optional numeric port';
  if (options.preserveHost && host !== undefined) out[1] = host;
  out.push('x-forwarded-for', xff === undefined ? peer : `${xff}, ${peer}`);
  out.push('x-forwarded-proto', xfp ?? info.proto);
  if (xfh !== undefined || host !== undefined) out.push('x-forwarded-host', xfh ?? host!);
  const element = forwardedElement(peer, info.proto, host);
  out.push('forwarded', fwd === undefined ? element : `${fwd}, ${element}`);
  if (connection !== undefined) return dropConnectionTokens(out, connection);
  return out;
}

/** dropConnectionTokens removes the headers a `Connection` header names (RFC 9110 7.6.1). */
function dropConnectionTokens(headers: string[], connection: string): string[] {
  // The common values name no other header: skip the parsing.
  if (connection.length <= 10 && /^(keep-alive|close)$/i.test(connection)) return headers;
  const tokens = new Set<string>();
  for (const t of connection.split(',')) {
    const token = t.trim().toLowerCase();
    if (token !== '' && token !== 'close' && token !== 'keep-alive' && token !== 'upgrade') tokens.add(token);
  }
  if (tokens.size === 0) return headers;
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    if (!tokens.has(name) || name === 'host' || name.startsWith('x-forwarded-') || name === 'forwarded') out.push(headers[i]!, headers[i + 1]!);
  }
  return out;
}

/** latin1: a raw header name or value as a string (undici gives Buffers). */
export const latin1 = (raw: Buffer | string): string => (typeof raw === 'string' ? raw : raw.toString('latin1'));

/**
 * downstreamHeaders turns a backend's raw response headers into the flat
 * string array `writeHead` takes, dropping hop-by-hop headers. `Date` from
 * the backend is kept; the listener does not add one.
 */
export function downstreamHeaders(raw: RawHeaders): string[] {
  const out: string[] = [];
  let connection: string | undefined;
  let length = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = latin1(raw[i]!);
    // Only names shaped like a hop-by-hop one need the case-insensitive look-up (most are not).
    if (DOWNSTREAM_SPECIAL.mayHold(name)) {
      const lower = lowerName(name);
      if (lower === 'content-length') {
        // A repeated Content-Length (the response parser has checked that the values agree) is sent once.
        if (length) continue;
        length = true;
      } else if (HOP_BY_HOP.has(lower)) {
        if (lower === 'connection') {
          const value = latin1(raw[i + 1]!);
          connection = connection === undefined ? value : `${connection}, ${value}`;
        }
        continue;
      }
    }
    out.push(name, latin1(raw[i + 1]!));
  }
  if (connection !== undefined) return dropConnectionTokens(out, connection);
  return out;
}

/**
 * switchingHeaders are the headers of a backend's 101 as the client gets
 * them: the same hop-by-hop pass as any response (downstreamHeaders), then
 * the two fields that make the switch, Connection: Upgrade and the
 * backend's Upgrade.
 */
export function switchingHeaders(raw: readonly string[]): string[] {
  const out = downstreamHeaders(raw);
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'upgrade') {
      out.push('Connection', 'Upgrade', raw[i]!, raw[i + 1]!);
      break;
    }
  }
  return out;
}
