/** The PROXY protocol header: the parser (listen/proxy-header.ts) branch by branch, and the writer (upstream/proxy-protocol.ts) read back by it. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_V2_HEADER, parseProxyHeader, V2_SIGNATURE, type ParseResult } from '../../src/listen/proxy-header.js';
import { encodeProxyHeader, localProxyHeader } from '../../src/upstream/proxy-protocol.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** v2 builds a version 2 header: version/command byte, family/transport byte, address bytes, TLVs. */
function v2(vc: number, ft: number, addr: number[], tlvs: [number, Buffer][] = [], lengthOverride?: number): Buffer {
  const t = Buffer.concat(tlvs.map(([type, v]) => Buffer.concat([Buffer.from([type, v.length >> 8, v.length & 0xff]), v])));
  const len = lengthOverride ?? addr.length + t.length;
  return Buffer.concat([V2_SIGNATURE, Buffer.from([vc, ft, len >> 8, len & 0xff, ...addr]), t]);
}
const V4 = [203, 0, 113, 7, 10, 0, 0, 5, 0x30, 0x39, 0x01, 0xbb]; // 203.0.113.7:12345 -> 10.0.0.5:443
const V6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x30, 0x39, 0, 80];

function header(r: ParseResult): Extract<ParseResult, { kind: 'header' }> {
  assert.equal(r.kind, 'header', JSON.stringify(r));
  return r as Extract<ParseResult, { kind: 'header' }>;
}
function invalid(r: ParseResult, re: RegExp): void {
  assert.equal(r.kind, 'invalid');
  assert.match((r as { reason: string }).reason, re);
}

describe('parseProxyHeader, version 1', () => {
  test('TCP4 and TCP6, with the bytes after the header left', () => {
    const r = header(parseProxyHeader(b('PROXY TCP4 203.0.113.7 10.0.0.5 12345 443\r\nGET / HTTP/1.1\r\n')));
    assert.equal(r.length, 'PROXY TCP4 203.0.113.7 10.0.0.5 12345 443\r\n'.length);
    assert.deepEqual([r.header.version, r.header.command, r.header.family, r.header.source, r.header.destination], [1, 'proxy', 'tcp4', { address: '203.0.113.7', port: 12345 }, { address: '10.0.0.5', port: 443 }]);
    const r6 = header(parseProxyHeader(b('PROXY TCP6 2001:db8::1 ::1 65535 0\r\n')));
    assert.deepEqual([r6.header.family, r6.header.source, r6.header.destination], ['tcp6', { address: '2001:db8::1', port: 65535 }, { address: '::1', port: 0 }]);
  });
  test('UNKNOWN, with or without the rest of the line', () => {
    for (const line of ['PROXY UNKNOWN\r\n', 'PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n']) {
      const r = header(parseProxyHeader(b(line)));
      assert.deepEqual([r.length, r.header.family, r.header.source], [line.length, 'unknown', null]);
    }
  });
  test('a prefix of a header is incomplete, whatever its length up to 107 bytes', () => {
    const line = 'PROXY TCP4 203.0.113.7 10.0.0.5 12345 443\r\n';
    for (let n = 1; n < line.length; n++) assert.equal(parseProxyHeader(b(line.slice(0, n))).kind, 'incomplete', `${n} bytes`);
    assert.equal(parseProxyHeader(Buffer.alloc(0)).kind, 'incomplete');
  });
  test('not a header: HTTP, TLS, and a near miss of the prefix', () => {
    assert.equal(parseProxyHeader(b('GET / HTTP/1.1\r\n')).kind, 'none');
    assert.equal(parseProxyHeader(Buffer.from([0x16, 0x03, 0x01])).kind, 'none');
    assert.equal(parseProxyHeader(b('PROXX')).kind, 'none');
    assert.equal(parseProxyHeader(b('\r\n\r\nx')).kind, 'none');
  });
  test('oversized: no CRLF within 107 bytes, or the CR as the 107th', () => {
    invalid(parseProxyHeader(b(`PROXY UNKNOWN ${'x'.repeat(100)}`)), /longer than 107/);
    invalid(parseProxyHeader(b(`PROXY UNKNOWN ${'x'.repeat(92)}\r`)), /longer than 107/);
    assert.equal(header(parseProxyHeader(b(`PROXY UNKNOWN ${'x'.repeat(91)}\r\n`))).length, 107);
  });
  test('malformed lines', () => {
    invalid(parseProxyHeader(b('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n')), /LF without CR/);
    invalid(parseProxyHeader(b('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX')), /CR without LF/);
    invalid(parseProxyHeader(b('PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n')), /printable/);
    invalid(parseProxyHeader(b('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n')), /unknown protocol/);
    invalid(parseProxyHeader(b('PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n')), /expected/);
    invalid(parseProxyHeader(b('PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n')), /expected/);
    invalid(parseProxyHeader(b('PROXY TCP4 ::1 5.6.7.8 1 2\r\n')), /bad TCP4/);
    invalid(parseProxyHeader(b('PROXY TCP6 1.2.3.4 ::1 1 2\r\n')), /bad TCP6/);
    invalid(parseProxyHeader(b('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n')), /bad TCP4/);
    invalid(parseProxyHeader(b('PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n')), /bad TCP4/);
    invalid(parseProxyHeader(b('PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n')), /bad TCP4/);
  });
});

describe('parseProxyHeader, version 2', () => {
  test('PROXY over TCP/IPv4 and TCP/IPv6, with the bytes after the header left', () => {
    const h = v2(0x21, 0x11, V4);
    const r = header(parseProxyHeader(Buffer.concat([h, b('GET /')])));
    assert.equal(r.length, h.length);
    assert.deepEqual([r.header.version, r.header.command, r.header.family, r.header.source, r.header.destination], [2, 'proxy', 'tcp4', { address: '203.0.113.7', port: 12345 }, { address: '10.0.0.5', port: 443 }]);
    const r6 = header(parseProxyHeader(v2(0x21, 0x21, V6)));
    assert.deepEqual([r6.header.family, r6.header.source, r6.header.destination], ['tcp6', { address: '2001:db8::1', port: 12345 }, { address: '::2', port: 80 }]);
  });
  test('IPv6 addresses are written as Node writes them', () => {
    const full = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6];
    const r = header(parseProxyHeader(v2(0x21, 0x21, [...full, ...new Array(16).fill(0), 0, 1, 0, 2])));
    assert.equal(r.header.source!.address, '2001:db8:1:2:3:4:5:6');
    assert.equal(r.header.destination!.address, '::');
  });
  test('TLVs are skipped; ALPN and authority are kept', () => {
    const r = header(parseProxyHeader(v2(0x21, 0x11, V4, [[0x01, b('h2')], [0x02, b('api.example.com')], [0xea, Buffer.alloc(30)], [0x04, Buffer.alloc(0)]])));
    assert.equal(r.header.tlvs.length, 4);
    assert.equal(r.header.alpn!.toString(), 'h2');
    assert.equal(r.header.authority, 'api.example.com');
    assert.deepEqual(r.header.source, { address: '203.0.113.7', port: 12345 });
  });
  test('LOCAL keeps no addresses, even when sent', () => {
    for (const h of [v2(0x20, 0x00, []), v2(0x20, 0x11, V4)]) {
      const r = header(parseProxyHeader(h));
      assert.deepEqual([r.header.command, r.header.family, r.header.source, r.length], ['local', 'unknown', null, h.length]);
    }
  });
  test('UNSPEC, UNIX and datagram families are accepted without addresses', () => {
    for (const h of [v2(0x21, 0x00, []), v2(0x21, 0x31, new Array(216).fill(0)), v2(0x21, 0x12, V4)]) {
      const r = header(parseProxyHeader(h));
      assert.deepEqual([r.header.command, r.header.family, r.header.source], ['proxy', 'unknown', null]);
    }
  });
  test('a prefix of a header is incomplete, byte by byte', () => {
    const h = v2(0x21, 0x11, V4, [[0x01, b('h2')]]);
    for (let n = 1; n < h.length; n++) assert.equal(parseProxyHeader(h.subarray(0, n)).kind, 'incomplete', `${n} bytes`);
  });
  test('malformed and oversized headers', () => {
    invalid(parseProxyHeader(v2(0x11, 0x11, V4)), /version 1, expected 2/);
    invalid(parseProxyHeader(v2(0x22, 0x11, V4)), /unknown command/);
    invalid(parseProxyHeader(v2(0x21, 0x41, V4)), /address family/);
    invalid(parseProxyHeader(v2(0x21, 0x13, V4)), /transport/);
    invalid(parseProxyHeader(v2(0x21, 0x21, V4)), /too short/);
    invalid(parseProxyHeader(v2(0x21, 0x11, [...V4, 0x01, 0x00])), /truncated TLV/);
    invalid(parseProxyHeader(v2(0x21, 0x11, [...V4, 0x01, 0x00, 0x05, 0x61])), /longer than the header/);
    invalid(parseProxyHeader(v2(0x21, 0x11, V4, [], MAX_V2_HEADER)), /more than 4096/);
  });
});

describe('encodeProxyHeader (read back by the parser)', () => {
  const conn = (remoteAddress: string, localAddress: string) => ({ remoteAddress, remotePort: 40000, localAddress, localPort: 8080 });
  test('v1 and v2, IPv4 (mapped addresses included) and IPv6 (mixed ends written mapped)', () => {
    assert.equal(encodeProxyHeader('v1', conn('::ffff:203.0.113.7', '::ffff:10.0.0.5')).toString(), 'PROXY TCP4 203.0.113.7 10.0.0.5 40000 8080\r\n');
    assert.equal(encodeProxyHeader('v1', conn('2001:db8::1', '10.0.0.5')).toString(), 'PROXY TCP6 2001:db8::1 ::ffff:10.0.0.5 40000 8080\r\n');
    const r4 = header(parseProxyHeader(encodeProxyHeader('v2', conn('203.0.113.7', '::ffff:10.0.0.5'))));
    assert.deepEqual([r4.header.family, r4.header.source, r4.header.destination], ['tcp4', { address: '203.0.113.7', port: 40000 }, { address: '10.0.0.5', port: 8080 }]);
    const r6 = header(parseProxyHeader(encodeProxyHeader('v2', conn('2001:db8::1%eth0', '1.2.3.4'))));
    assert.deepEqual([r6.header.family, r6.header.source, r6.header.destination], ['tcp6', { address: '2001:db8::1', port: 40000 }, { address: '::ffff:102:304', port: 8080 }]);
  });
  test('unknown ends: v1 UNKNOWN, v2 without addresses; health checks: UNKNOWN and LOCAL', () => {
    assert.equal(encodeProxyHeader('v1', undefined).toString(), 'PROXY UNKNOWN\r\n');
    assert.equal(encodeProxyHeader('v1', { remoteAddress: 'x', remotePort: 1, localAddress: '1.2.3.4', localPort: 2 }).toString(), 'PROXY UNKNOWN\r\n');
    assert.deepEqual(header(parseProxyHeader(encodeProxyHeader('v2', {}))).header.family, 'unknown');
    assert.equal(header(parseProxyHeader(localProxyHeader('v2'))).header.command, 'local');
    assert.equal(localProxyHeader('v1').toString(), 'PROXY UNKNOWN\r\n');
  });
});
