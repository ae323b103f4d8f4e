/**
 * The PROXY protocol through real listeners: headers written by hand from a
 * trusted peer (127.0.0.1) and an untrusted one (127.0.0.2), on plain and
 * TLS listeners, and sendProxyProtocol to a recording backend.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { startBalancer, type TestBalancer } from '../helpers/balancer.js';
import { startRawServer, type RawServer } from '../helpers/backends.js';
import { makeCerts, type TestCerts } from '../helpers/certs.js';

const V2_SIG = Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1');
const REQUEST = 'GET /who HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n';

/** send writes `chunks` one by one (a turn of the event loop apart) from `localAddress`, and returns what came back until the connection closed. */
function send(port: number, chunks: (string | Buffer)[], localAddress = '127.0.0.1'): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    let got = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => { got += d; });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(got));
    socket.on('connect', async () => {
      for (const c of chunks) {
        if (socket.destroyed) break;
        socket.write(c);
        await new Promise((r) => setTimeout(r, 5));
      }
    });
  });
}

function v2(vc: number, ft: number, addr: number[], tlv: Buffer = Buffer.alloc(0)): Buffer {
  const len = addr.length + tlv.length;
  return Buffer.concat([V2_SIG, Buffer.from([vc, ft, len >> 8, len & 0xff, ...addr]), tlv]);
}

let backend: http.Server;
let backendUrl: string;
/** seen: the X-Forwarded-For of each request the backend got. */
const seen: string[] = [];

before(async () => {
  backend = http.createServer((req, res) => {
    seen.push(String(req.headers['x-forwarded-for']));
    res.end(`xff=${String(req.headers['x-forwarded-for'])}`);
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  backendUrl = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => backend.close(() => r())));

describe('listen[].proxyProtocol on a plain listener (required)', () => {
  let lb: TestBalancer;
  before(async () => {
    lb = await startBalancer({ backends: [backendUrl], healthCheck: { enabled: false }, listen: { host: '127.0.0.1', port: 0, proxyProtocol: { trusted: ['127.0.0.1/32'], required: true, timeout: '300ms' } } });
  });
  after(() => lb.close());

  test('v1 TCP4, split over several writes, with the request in the last one', async () => {
    const out = await send(lb.port, ['PROX', 'Y TCP4 203.0.113.7 10.0.0.5 ', `12345 443\r\n${REQUEST}`]);
    assert.match(out, /^HTTP\/1.1 200/);
    assert.match(out, /xff=203\.0\.113\.7$/);
  });
  test('v1 TCP6 and UNKNOWN (which keeps the real peer)', async () => {
    assert.match(await send(lb.port, [`PROXY TCP6 2001:db8::1 ::1 5 6\r\n${REQUEST}`]), /xff=2001:db8::1$/);
    assert.match(await send(lb.port, ['PROXY UNKNOWN\r\n', REQUEST]), /xff=127\.0\.0\.1$/);
  });
  test('v2 TCP4 with TLVs, v2 TCP6, and LOCAL (real peer)', async () => {
    const tlv = Buffer.from([0x01, 0, 2, 0x68, 0x32, 0xea, 0, 3, 1, 2, 3]);
    assert.match(await send(lb.port, [v2(0x21, 0x11, [198, 51, 100, 9, 10, 0, 0, 5, 0, 1, 0, 2], tlv).subarray(0, 10), Buffer.concat([v2(0x21, 0x11, [198, 51, 100, 9, 10, 0, 0, 5, 0, 1, 0, 2], tlv).subarray(10), Buffer.from(REQUEST)])]), /xff=198\.51\.100\.9$/);
    const v6 = [0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 7, ...new Array(15).fill(0), 1, 0, 1, 0, 2];
    assert.match(await send(lb.port, [Buffer.concat([v2(0x21, 0x21, v6), Buffer.from(REQUEST)])]), /xff=2001:db8::7$/);
    assert.match(await send(lb.port, [Buffer.concat([v2(0x20, 0x00, []), Buffer.from(REQUEST)])]), /xff=127\.0\.0\.1$/);
  });
  test('no header from a trusted peer, a malformed or oversized header: closed, nothing reaches the backend', async () => {
    const before = seen.length;
    assert.equal(await send(lb.port, [REQUEST]), '');
    assert.equal(await send(lb.port, [`PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n${REQUEST}`]), '');
    assert.equal(await send(lb.port, [`PROXY UNKNOWN ${'x'.repeat(120)}\r\n${REQUEST}`]), '');
    assert.equal(await send(lb.port, [Buffer.concat([v2(0x23, 0x11, [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]), Buffer.from(REQUEST)])]), '');
    assert.equal(seen.length, before);
  });
  test('a header that does not arrive within the timeout: closed', async () => {
    const started = Date.now();
    assert.equal(await send(lb.port, ['PROXY TCP4 1.2.3.4']), '');
    assert.ok(Date.now() - started >= 250);
  });
  test('an untrusted peer (127.0.0.2) is closed, header or not', async () => {
    assert.equal(await send(lb.port, [REQUEST], '127.0.0.2'), '');
    assert.equal(await send(lb.port, [`PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n${REQUEST}`], '127.0.0.2'), '');
  });
});

describe('listen[].proxyProtocol not required', () => {
  let lb: TestBalancer;
  before(async () => {
    lb = await startBalancer({ backends: [backendUrl], healthCheck: { enabled: false }, listen: { host: '127.0.0.1', port: 0, proxyProtocol: { trusted: ['127.0.0.1'], required: false } } });
  });
  after(() => lb.close());

  test('a trusted peer may send a header or none', async () => {
    assert.match(await send(lb.port, [`PROXY TCP4 203.0.113.8 10.0.0.5 1 2\r\n${REQUEST}`]), /xff=203\.0\.113\.8$/);
    assert.match(await send(lb.port, [REQUEST]), /xff=127\.0\.0\.1$/);
  });
  test('an untrusted peer is a plain connection: its address stays, its header is not believed (400)', async () => {
    assert.match(await send(lb.port, [REQUEST], '127.0.0.2'), /xff=127\.0\.0\.2$/);
    assert.match(await send(lb.port, [`PROXY TCP4 203.0.113.9 10.0.0.5 1 2\r\n${REQUEST}`], '127.0.0.2'), /^HTTP\/1.1 400/);
  });
});

describe('listen[].proxyProtocol on a TLS listener', () => {
  let certs: TestCerts;
  let lb: TestBalancer;
  before(async () => {
    certs = makeCerts();
    lb = await startBalancer({ backends: [backendUrl], healthCheck: { enabled: false }, listen: { host: '127.0.0.1', port: 0, tls: { cert: certs.a.cert, key: certs.a.key }, proxyProtocol: { trusted: ['127.0.0.1'] } } });
  });
  after(async () => { await lb.close(); certs.remove(); });

  for (const http2 of [false]) {
    test(`the header comes before the TLS handshake; the TLS socket reports the client (http2: ${http2})`, async () => {
      const out = await new Promise<string>((resolve, reject) => {
        const raw = net.connect(lb.port, '127.0.0.1', () => {
          raw.write(v2(0x21, 0x11, [192, 0, 2, 44, 10, 0, 0, 5, 0, 9, 1, 187]));
          const s = tls.connect({ socket: raw, ca: certs.read(certs.ca), servername: 'a.test' }, () => s.write(REQUEST));
          let got = '';
          s.setEncoding('latin1');
          s.on('data', (d: string) => { got += d; });
          s.on('close', () => resolve(got));
          s.on('error', reject);
        });
      });
      assert.match(out, /xff=192\.0\.2\.44$/);
    });
  }
});

describe('sendProxyProtocol to a recording backend', () => {
  let raw: RawServer;
  let lb: TestBalancer;
  const firstBytes: string[] = [];
  before(async () => {
    raw = await startRawServer((socket) => {
      let buf = '';
      socket.on('data', (d: Buffer) => {
        if (buf === '') firstBytes.push(d.toString('latin1'));
        buf += d.toString('latin1');
        if (buf.includes('\r\n\r\n')) { socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'); buf = ''; }
      });
    });
    lb = await startBalancer({
      backends: [`http://127.0.0.1:${raw.port}`], healthCheck: { enabled: false }, sendProxyProtocol: 'v1',
      listen: { host: '127.0.0.1', port: 0, proxyProtocol: { trusted: ['127.0.0.1'] } },
    });
  });
  after(async () => { await lb.close(); await raw.close(); });

  test('the backend connection starts with the client address from the inbound header; another client gets its own connection', async () => {
    await send(lb.port, [`PROXY TCP4 203.0.113.7 10.0.0.5 4000 443\r\n${REQUEST}`]);
    assert.match(firstBytes.at(-1)!, /^PROXY TCP4 203\.0\.113\.7 127\.0\.0\.1 4000 \d+\r\nGET \/who HTTP\/1.1\r\n/);
    assert.match(firstBytes.at(-1)!, /x-forwarded-for: 203\.0\.113\.7\r\n/i);
    const connections = firstBytes.length;
    await send(lb.port, [`PROXY TCP4 203.0.113.99 10.0.0.5 4001 443\r\n${REQUEST}`]);
    assert.equal(firstBytes.length, connections + 1);
    assert.match(firstBytes.at(-1)!, /^PROXY TCP4 203\.0\.113\.99 /);
  });
});
