/**
 * The header passes of src/proxy/headers.ts against a plain reference
 * written here (lower-case every name, look it up): upstreamHeaders and
 * downstreamHeaders skip that work for names that cannot matter (by length
 * and first letter) and know a few usual spellings, so every name they
 * treat apart is tried in four spellings, beside ordinary names that share
 * a length or a first letter with them. Also: the Forwarded element, which
 * is reused while its inputs repeat, must follow its inputs.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { downstreamHeaders, newRequestMeta, upstreamHeaders, type RequestInfo } from '../../src/proxy/headers.js';
import { TrustedProxies } from '../../src/core/trusted-proxies.js';

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization', 'http2-settings'];
/** Names upstreamHeaders drops from an untrusted client, besides the hop-by-hop ones (it adds its own). */
const REPLACED = ['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'expect'];
/** Names it reads and forwards as they are. */
const KEPT_SPECIAL = ['content-length', 'cookie'];
/** Ordinary names, several of them shaped like a special one (same length, same first letter). */
const ORDINARY = ['user-agent', 'accept', 'x-custom', 'tk', 'trace-id', 'hosts', 'content-type', 'cache-control', 'x-forwarded-port', 'from', 'upgrade-insecure-requests', 'expires', 'set-cookie', 'keep-alives'];

const spellings = (lower: string): string[] => [
  lower,
  lower.replace(/(^|-)([a-z0-9])/g, (_, dash: string, c: string) => dash + c.toUpperCase()),
  lower.toUpperCase(),
  [...lower].map((c, i) => (i % 2 === 0 ? c.toUpperCase() : c)).join(''),
];

const info: RequestInfo = { peer: '127.0.0.1', proto: 'http', authority: undefined };
const untrusted = { trusted: new TrustedProxies([]), preserveHost: false };

describe('upstreamHeaders against a reference that lower-cases every name', () => {
  test('every special name in four spellings, among ordinary names: dropped, replaced or kept as the reference says', () => {
    for (const lower of [...HOP_BY_HOP, ...REPLACED, ...KEPT_SPECIAL, ...ORDINARY]) {
      for (const name of spellings(lower)) {
        const value = lower === 'content-length' ? '0' : `v-${name}`;
        const raw = ['X-Before', 'b', name, value, 'Host', 'shop.example', 'X-After', 'a'];
        if (lower === 'host') raw.splice(4, 2); // one Host only
        const out = upstreamHeaders(raw, info, untrusted, newRequestMeta());
        // The reference: what reaches the backend from the client's list, names as sent, in order.
        const expected: string[] = [];
        for (let i = 0; i < raw.length; i += 2) {
          const l = raw[i]!.toLowerCase();
          if (!HOP_BY_HOP.includes(l) && !REPLACED.includes(l)) expected.push(raw[i]!, raw[i + 1]!);
        }
        const forwarded = out.slice(2, 2 + expected.length);
        assert.deepEqual(forwarded, expected, `${name}: ${JSON.stringify(out)}`);
        assert.deepEqual(out.slice(0, 2), ['host', ''], name); // the backend's own Host, filled in later
        const host = lower === 'host' ? value : 'shop.example';
        assert.deepEqual(out.slice(2 + expected.length), [
          'x-forwarded-for', '127.0.0.1', 'x-forwarded-proto', 'http', 'x-forwarded-host', host, 'forwarded', `for=127.0.0.1;proto=http;host="${host}"`,
        ], name);
      }
    }
  });

  test('what the pass learns: Content-Length, chunked, Cookie, in any spelling', () => {
    for (const [cl, te, cookie] of [['content-length', 'transfer-encoding', 'cookie'], ['Content-Length', 'Transfer-Encoding', 'Cookie'], ['CONTENT-LENGTH', 'TRANSFER-ENCODING', 'COOKIE']] as const) {
      const meta = newRequestMeta();
      upstreamHeaders([cl, '12', te, 'chunked', cookie, 'a=1'], info, untrusted, meta);
      assert.deepEqual([meta.contentLength, meta.chunked, meta.cookie], [12, true, 'a=1'], cl);
    }
  });

  test('a Connection header in any spelling drops the headers it names, whatever their spelling', () => {
    for (const connection of spellings('connection')) {
      const out = upstreamHeaders([connection, 'X-Secret, keep-alive', 'x-SECRET', 's', 'X-Keep', 'k'], info, untrusted, newRequestMeta());
      assert.equal(out.some((n, i) => i % 2 === 0 && n.toLowerCase() === 'x-secret'), false, connection);
      assert.ok(out.includes('X-Keep'), connection);
    }
  });

  test('HTTP/2 pseudo-headers are not forwarded, and :authority gives Host', () => {
    const out = upstreamHeaders([':method', 'GET', ':path', '/', ':scheme', 'https', ':authority', 'h2.example', 'accept', '*/*'], { peer: '::ffff:10.0.0.1', proto: 'https', authority: 'h2.example' }, untrusted, newRequestMeta());
    assert.deepEqual(out, ['host', '', 'accept', '*/*', 'x-forwarded-for', '10.0.0.1', 'x-forwarded-proto', 'https', 'x-forwarded-host', 'h2.example', 'forwarded', 'for=10.0.0.1;proto=https;host="h2.example"']);
  });

  test('the Forwarded element follows its inputs from one request to the next', () => {
    const forwardedOf = (peer: string, proto: 'http' | 'https', host: string | undefined): string => {
      const raw = host === undefined ? [] : ['Host', host];
      const out = upstreamHeaders(raw, { peer, proto, authority: undefined }, untrusted, newRequestMeta());
      return out[out.indexOf('forwarded') + 1]!;
    };
    assert.equal(forwardedOf('127.0.0.1', 'http', 'a.example'), 'for=127.0.0.1;proto=http;host="a.example"');
    assert.equal(forwardedOf('127.0.0.1', 'http', 'a.example'), 'for=127.0.0.1;proto=http;host="a.example"');
    assert.equal(forwardedOf('127.0.0.2', 'http', 'a.example'), 'for=127.0.0.2;proto=http;host="a.example"');
    assert.equal(forwardedOf('127.0.0.2', 'https', 'a.example'), 'for=127.0.0.2;proto=https;host="a.example"');
    assert.equal(forwardedOf('127.0.0.2', 'https', 'b"\\.example'), 'for=127.0.0.2;proto=https;host="b.example"');
    assert.equal(forwardedOf('127.0.0.2', 'https', undefined), 'for=127.0.0.2;proto=https');
    assert.equal(forwardedOf('::1', 'https', undefined), 'for="[::1]";proto=https');
  });
});

describe('downstreamHeaders against a reference that lower-cases every name', () => {
  test('hop-by-hop names in four spellings are dropped; ordinary names, shaped like them or not, are kept', () => {
    for (const lower of [...HOP_BY_HOP, ...ORDINARY, ...REPLACED, ...KEPT_SPECIAL]) {
      for (const name of spellings(lower)) {
        const raw = ['Content-Type', 'text/plain', name, 'v', 'Date', 'today'];
        const expected = HOP_BY_HOP.includes(lower) ? ['Content-Type', 'text/plain', 'Date', 'today'] : raw;
        // A Connection header's own tokens would drop more: give it one that names nothing here.
        if (lower === 'connection') raw[3] = 'keep-alive';
        assert.deepEqual(downstreamHeaders(raw), expected, name);
      }
    }
  });

  test('the headers a Connection header names are dropped, whatever their spelling; Buffers as undici gives them', () => {
    const raw = [Buffer.from('Connection'), Buffer.from('X-Internal'), Buffer.from('x-INTERNAL'), Buffer.from('1'), Buffer.from('X-Public'), Buffer.from('2')];
    assert.deepEqual(downstreamHeaders(raw), ['X-Public', '2']);
  });
});
