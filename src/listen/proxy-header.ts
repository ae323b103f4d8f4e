/**
 * The PROXY protocol header (HAProxy's specification, versions 1 and 2):
 * what an L4 balancer in front of Fulcrum (an AWS NLB, HAProxy in TCP mode)
 * writes as the first bytes of a connection to say whose connection it is.
 *
 * parseProxyHeader is a pure function over the bytes received so far, so
 * that every branch can be tested without sockets: it says whether the
 * bytes are a whole header (and how long), the start of one (wait for
 * more), not a header at all (a plain connection), or a malformed one.
 * Version 1 is one text line of at most 107 bytes; version 2 is binary,
 * bounded here by MAX_V2_HEADER. TLVs of version 2 are checked and skipped;
 * ALPN and authority are kept, for whoever wants them later.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** The signature every version 2 header starts with. */
export const V2_SIGNATURE = Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1');
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** A version 1 line, "PROXY" to CRLF included, is at most this long (the specification's worst case). */
export const MAX_V1_HEADER = 107;
/**
 * The largest version 2 header accepted. The format allows 16 + 65535
 * bytes; what balancers send (addresses and a few TLVs such as AWS's VPC
 * endpoint id) is far below this, and a trusted peer sending more is
 * treated as broken rather than buffered.
 */
export const MAX_V2_HEADER = 4096;

/** ProxyEndpoint is one end of the client's connection, as the header gives it. */
export interface ProxyEndpoint {
  readonly address: string;
  readonly port: number;
}

/** ProxyTlv is one type-length-value field of a version 2 header. */
export interface ProxyTlv {
  readonly type: number;
  readonly value: Buffer;
}

/** The TLV types kept by name (PP2_TYPE_ALPN and PP2_TYPE_AUTHORITY). */
export const PP2_TYPE_ALPN = 0x01;
export const PP2_TYPE_AUTHORITY = 0x02;

export interface ProxyHeader {
  readonly version: 1 | 2;
  /**
   * proxy: the connection is relayed for the client named by `source`.
   * local: the balancer speaks for itself (a health check): keep the real peer.
   */
  readonly command: 'proxy' | 'local';
  /** family: tcp4 or tcp6 carry addresses; unknown (v1 UNKNOWN, v2 AF_UNSPEC, AF_UNIX, or a datagram transport) does not. */
  readonly family: 'tcp4' | 'tcp6' | 'unknown';
  /** source and destination: set for a proxy command with a tcp4 or tcp6 family. */
  readonly source: ProxyEndpoint | null;
  readonly destination: ProxyEndpoint | null;
  /** tlvs: the version 2 TLVs in order (none for version 1). */
  readonly tlvs: readonly ProxyTlv[];
  /** alpn: the protocol the client negotiated with the balancer (PP2_TYPE_ALPN), if sent. */
  readonly alpn: Buffer | null;
  /** authority: the host name the client asked the balancer for (PP2_TYPE_AUTHORITY, e.g. SNI), if sent. */
  readonly authority: string | null;
}

/** ParseResult: what the bytes so far are. */
export type ParseResult =
  | { readonly kind: 'header'; readonly header: ProxyHeader; readonly length: number }
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'none' }
  | { readonly kind: 'invalid'; readonly reason: string };

const INCOMPLETE: ParseResult = { kind: 'incomplete' };
const NONE: ParseResult = { kind: 'none' };

function invalid(reason: string): ParseResult {
  return { kind: 'invalid', reason };
}

/** startsLike: buf is as long as prefix and begins with it (true), or shorter and a prefix of it (true), else false. */
function startsLike(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.compare(prefix, 0, n, 0, n) === 0;
}

/**
 * parseProxyHeader reads a PROXY header at the start of `buf`. Bytes past
 * `length` are the connection's own (a TLS ClientHello, an HTTP request)
 * and must be handed on.
 */
export function parseProxyHeader(buf: Buffer): ParseResult {
  if (buf.length === 0) return INCOMPLETE;
  if (startsLike(buf, V2_SIGNATURE)) return buf.length < V2_SIGNATURE.length ? INCOMPLETE : parseV2(buf);
  if (startsLike(buf, V1_PREFIX)) return buf.length < V1_PREFIX.length ? INCOMPLETE : parseV1(buf);
  return NONE;
}

const PORT = /^(?:0|[1-9]\d{0,4})$/;

function endpoint(address: string, port: string, v6: boolean): ProxyEndpoint | null {
  // The specification writes addresses in their canonical forms; isIPv4 also refuses leading zeros.
  if (v6 ? !isIPv6(address) : !isIPv4(address)) return null;
  if (!PORT.test(port) || Number(port) > 65535) return null;
  return { address, port: Number(port) };
}

function parseV1(buf: Buffer): ParseResult {
  const limit = Math.min(buf.length, MAX_V1_HEADER);
  let end = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const c = buf[i]!;
    if (c === 0x0a) return invalid('version 1 header: LF without CR');
    if (c === 0x0d) {
      if (i + 1 >= buf.length) return i + 1 >= MAX_V1_HEADER ? invalid('version 1 header longer than 107 bytes') : INCOMPLETE;
      if (buf[i + 1] !== 0x0a) return invalid('version 1 header: CR without LF');
      end = i;
      break;
    }
    if (c < 0x20 || c > 0x7e) return invalid('version 1 header: a byte that is not printable ASCII');
  }
  if (end < 0) return buf.length >= MAX_V1_HEADER ? invalid('version 1 header longer than 107 bytes') : INCOMPLETE;
  const fields = buf.toString('latin1', V1_PREFIX.length, end).split(' ');
  const length = end + 2;
  const proto = fields[0];
  if (proto === 'UNKNOWN') {
    // The rest of an UNKNOWN line is to be ignored (the balancer could not tell the addresses).
    return { kind: 'header', length, header: header(1, 'proxy', 'unknown', null, null, []) };
  }
  if (proto !== 'TCP4' && proto !== 'TCP6') return invalid(`version 1 header: unknown protocol ${JSON.stringify(proto)}`);
  if (fields.length !== 5) return invalid('version 1 header: expected "PROXY TCP4|TCP6 <source> <destination> <source port> <destination port>"');
  const v6 = proto === 'TCP6';
  const source = endpoint(fields[1]!, fields[3]!, v6);
  const destination = endpoint(fields[2]!, fields[4]!, v6);
  if (source === null || destination === null) return invalid(`version 1 header: bad ${proto} address or port`);
  return { kind: 'header', length, header: header(1, 'proxy', v6 ? 'tcp6' : 'tcp4', source, destination, []) };
}

function header(version: 1 | 2, command: 'proxy' | 'local', family: ProxyHeader['family'], source: ProxyEndpoint | null, destination: ProxyEndpoint | null, tlvs: ProxyTlv[]): ProxyHeader {
  let alpn: Buffer | null = null;
  let authority: string | null = null;
  for (const t of tlvs) {
    if (t.type === PP2_TYPE_ALPN) alpn = t.value;
    else if (t.type === PP2_TYPE_AUTHORITY) authority = t.value.toString('utf8');
  }
  return { version, command, family, source, destination, tlvs, alpn, authority };
}

/** The address block's size per family (high nibble of byte 13): AF_INET, AF_INET6, AF_UNIX. */
const ADDRESS_BYTES = [0, 12, 36, 216];

function ipv6At(buf: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(at + i).toString(16));
  // Compress the longest run of zero groups (RFC 5952), as Node reports addresses.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

function parseV2(buf: Buffer): ParseResult {
  if (buf.length < 16) return INCOMPLETE;
  const versionCommand = buf[12]!;
  if (versionCommand >> 4 !== 2) return invalid(`version 2 header: version ${versionCommand >> 4}, expected 2`);
  const cmd = versionCommand & 0x0f;
  if (cmd > 1) return invalid(`version 2 header: unknown command ${cmd}`);
  const familyTransport = buf[13]!;
  const family = familyTransport >> 4;
  const transport = familyTransport & 0x0f;
  if (family > 3) return invalid(`version 2 header: unknown address family ${family}`);
  if (transport > 2) return invalid(`version 2 header: unknown transport ${transport}`);
  const length = 16 + buf.readUInt16BE(14);
  if (length > MAX_V2_HEADER) return invalid(`version 2 header of ${length} bytes, more than ${MAX_V2_HEADER}`);
  const addressBytes = ADDRESS_BYTES[family]!;
  if (length - 16 < addressBytes) return invalid('version 2 header: too short for its address family');
  if (buf.length < length) return INCOMPLETE;
  const tlvs: ProxyTlv[] = [];
  for (let at = 16 + addressBytes; at < length;) {
    if (at + 3 > length) return invalid('version 2 header: a truncated TLV');
    const size = buf.readUInt16BE(at + 1);
    if (at + 3 + size > length) return invalid('version 2 header: a TLV longer than the header');
    tlvs.push({ type: buf[at]!, value: Buffer.from(buf.subarray(at + 3, at + 3 + size)) });
    at += 3 + size;
  }
  // LOCAL: the balancer's own connection (health checks); its addresses, if any, are to be ignored.
  if (cmd === 0) return { kind: 'header', length, header: header(2, 'local', 'unknown', null, null, tlvs) };
  // Addresses Fulcrum cannot use as a TCP client's (none, a UNIX socket, a datagram): the real peer is kept.
  if (transport !== 1 || (family !== 1 && family !== 2)) return { kind: 'header', length, header: header(2, 'proxy', 'unknown', null, null, tlvs) };
  let source: ProxyEndpoint;
  let destination: ProxyEndpoint;
  if (family === 1) {
    source = { address: `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}`, port: buf.readUInt16BE(24) };
    destination = { address: `${buf[20]}.${buf[21]}.${buf[22]}.${buf[23]}`, port: buf.readUInt16BE(26) };
  } else {
    source = { address: ipv6At(buf, 16), port: buf.readUInt16BE(48) };
    destination = { address: ipv6At(buf, 32), port: buf.readUInt16BE(50) };
  }
  return { kind: 'header', length, header: header(2, 'proxy', family === 1 ? 'tcp4' : 'tcp6', source, destination, tlvs) };
}
