/**
 * TLS termination on listeners: SNI selection with a default, X-Forwarded-Proto,
 * the minimum version, start-up errors for bad certificates, certificate
 * reload (admin/SIGHUP reload and file watch) that keeps old connections,
 * and the plain listener's redirect to https.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { ConfigError, createBalancer, type FulcrumConfigInput } from '../../src/index.js';
import { startBackends, urlOf, type DemoBackend } from '../helpers/backends.js';
import { get, startBalancer, waitFor, silentLogger, type TestBalancer } from '../helpers/balancer.js';
import { handshake, makeCerts, type TestCerts } from '../helpers/certs.js';
import { captureLogger } from '../helpers/logs.js';
import { httpsLocation } from '../../src/listen/redirect.js';

interface HttpsResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  socket: net.Socket;
  fingerprint: string;
}

function httpsGet(port: number, path: string, options: https.RequestOptions): Promise<HttpsResponse> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path, ...options }, (res) => {
      // Read the socket now: a keep-alive agent takes it back once the response ends.
      const socket = res.socket as TLSSocket;
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), socket, fingerprint }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('TLS termination', () => {
  let certs: TestCerts;
  let backends: DemoBackend[];
  let lb: TestBalancer;
  let plainPort: number;
  let tlsPort: number;
  let config: FulcrumConfigInput;

  before(async () => {
    certs = makeCerts();
    backends = await startBackends(1, 'TLS');
    config = {
      listen: [
        { host: '127.0.0.1', port: 0, redirectHttps: true },
        { host: '127.0.0.1', port: 0, tls: { cert: certs.a.cert, key: certs.a.key, certificates: [{ cert: certs.b.cert, key: certs.b.key }] } },
      ],
      backends: [urlOf(backends[0]!)],
      healthCheck: { enabled: false },
    };
    lb = await startBalancer(config);
    plainPort = lb.balancer.listeners[0]!.port;
    tlsPort = lb.balancer.listeners[1]!.port;
  });

  after(async () => {
    await lb.close();
    for (const b of backends) await b.close();
    certs.remove();
  });

  test('SNI picks the certificate for the name, and the default for no or unknown names', async () => {
    const a = certs.fingerprint(certs.a.cert);
    const b = certs.fingerprint(certs.b.cert);
    assert.equal((await handshake(tlsPort, { servername: 'a.test' })).fingerprint, a);
    assert.equal((await handshake(tlsPort, { servername: 'b.test' })).fingerprint, b);
    assert.equal((await handshake(tlsPort, { servername: 'api.wild.test' })).fingerprint, b, 'wildcard *.wild.test');
    assert.equal((await handshake(tlsPort, { servername: 'unknown.test' })).fingerprint, a, 'unknown name: default');
    assert.equal((await handshake(tlsPort, {})).fingerprint, a, 'no SNI: default');
    const verified = await handshake(tlsPort, { servername: 'b.test', ca: certs.read(certs.ca), rejectUnauthorized: true });
    assert.equal(verified.authorized, true);
  });

  test('HTTPS requests are proxied with X-Forwarded-Proto: https; TLS 1.2 is the default minimum', async () => {
    const res = await httpsGet(tlsPort, '/echo', { servername: 'a.test', ca: certs.read(certs.ca), agent: false, headers: { host: 'a.test' } });
    assert.equal(res.status, 200);
    const echo = JSON.parse(res.body) as { headers: Record<string, string> };
    assert.equal(echo.headers['x-forwarded-proto'], 'https');
    assert.equal(echo.headers.host, 'a.test');
    assert.match(echo.headers.forwarded!, /proto=https/);
    assert.equal((await handshake(tlsPort, { maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2');
  });

  test('a plain listener with redirectHttps answers 308 to the TLS port, keeping host, path and query', async () => {
    const res = await get(`http://127.0.0.1:${plainPort}/some/path?q=1`, { headers: { host: `shop.test:${plainPort}` }, method: 'POST' });
    assert.equal(res.status, 308);
    assert.equal(res.headers.location, `https://shop.test:${tlsPort}/some/path?q=1`);
    assert.equal(backends[0]!.requests.get('/some/path'), undefined, 'nothing reached a backend');
    const noHost = await new Promise<string>((resolve) => {
      const s = net.connect(plainPort, '127.0.0.1', () => s.write('GET / HTTP/1.0\r\n\r\n'));
      let text = '';
      s.on('data', (d: Buffer) => { text += d.toString(); });
      s.on('end', () => resolve(text));
    });
    assert.match(noHost, /^HTTP\/1\.1 400 /);
    assert.equal(httpsLocation('example.com:80', '/x', 443), 'https://example.com/x', 'port 443 is left out');
    assert.equal(httpsLocation('[::1]:8080', '/', 8443), 'https://[::1]:8443/');
    assert.equal(httpsLocation('evil.test/\r\nx', '/', 443), undefined);
  });

  test('a reload swaps the certificate for new handshakes; an open connection keeps working', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const opts = { servername: 'a.test', ca: certs.read(certs.ca), agent };
      const first = await httpsGet(tlsPort, '/', opts);
      assert.equal(first.fingerprint, certs.fingerprint(certs.a.cert));

      const listen = structuredClone(config.listen) as { tls?: { cert: string; key: string } }[];
      listen[1]!.tls = { cert: certs.a2.cert, key: certs.a2.key };
      const result = await lb.balancer.reload({ ...config, listen, logLevel: 'silent', accessLog: false } as FulcrumConfigInput);
      assert.equal(result.ok, true, JSON.stringify(result));

      const again = await httpsGet(tlsPort, '/', opts);
      assert.equal(again.status, 200);
      assert.equal(again.socket, first.socket, 'the same connection is reused');
      assert.equal(again.fingerprint, certs.fingerprint(certs.a.cert), 'with the certificate it was opened with');
      assert.equal((await handshake(tlsPort, { servername: 'a.test' })).fingerprint, certs.fingerprint(certs.a2.cert));
      assert.equal((await handshake(tlsPort, { servername: 'b.test' })).fingerprint, certs.fingerprint(certs.a2.cert), 'b.test is no longer configured');

      // A bad certificate rejects the reload; the previous ones keep serving.
      listen[1]!.tls = { cert: certs.expired.cert, key: certs.expired.key };
      const rejected = await lb.balancer.reload({ ...config, listen, logLevel: 'silent', accessLog: false } as FulcrumConfigInput);
      assert.equal(rejected.ok, false);
      assert.ok(rejected.problems!.some((p) => p.includes('listen[1].tls.cert') && p.includes('expired') && p.includes(certs.expired.cert)), rejected.problems!.join('\n'));
      assert.equal((await handshake(tlsPort, { servername: 'a.test' })).fingerprint, certs.fingerprint(certs.a2.cert));
    } finally {
      agent.destroy();
      await lb.balancer.reload({ ...config, logLevel: 'silent', accessLog: false });
    }
  });
});

describe('TLS start-up errors', () => {
  let certs: TestCerts;
  before(() => { certs = makeCerts(); });
  after(() => certs.remove());

  const startWith = async (tls: Record<string, unknown>): Promise<ConfigError> => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const plain = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const balancer = createBalancer({
      listen: [{ host: '127.0.0.1', port: plain }, { host: '127.0.0.1', port: 0, tls: tls as { cert: string; key: string } }],
      backends: ['http://127.0.0.1:1'], healthCheck: { enabled: false }, logLevel: 'silent',
    }, { logger: silentLogger() });
    try {
      const err = await balancer.listen().then(() => null, (e: unknown) => e);
      assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
      // Nothing was bound: the plain listener's port is still free.
      const again = net.createServer();
      await new Promise<void>((resolve, reject) => { again.once('error', reject); again.listen(plain, '127.0.0.1', resolve); });
      await new Promise<void>((resolve) => again.close(() => resolve()));
      return err;
    } finally {
      await balancer.close({ drainTimeout: 100 });
    }
  };

  test('missing, mismatched, expired and non-PEM files are reported with the listener, key path and file', async () => {
    const missing = await startWith({ cert: join(certs.dir, 'nope.pem'), key: certs.a.key });
    assert.match(missing.message, /listen\[1\] \(127\.0\.0\.1:0\): listen\[1\]\.tls\.cert: cannot read certificate .*nope\.pem: file not found/);

    const mismatched = await startWith({ cert: certs.a.cert, key: certs.strayKey });
    assert.ok(mismatched.message.includes(`listen[1].tls.key: private key ${certs.strayKey} does not match certificate ${certs.a.cert}`), mismatched.message);

    const expired = await startWith({ cert: certs.a.cert, key: certs.a.key, certificates: [{ cert: certs.expired.cert, key: certs.expired.key }] });
    assert.ok(expired.message.includes(`listen[1].tls.certificates[0].cert: certificate ${certs.expired.cert} expired on 2020-01-02`), expired.message);

    const notPem = await startWith({ cert: certs.a.key, key: certs.a.key });
    assert.ok(notPem.message.includes(`${certs.a.key} is not a PEM certificate`), notPem.message);

    const badCiphers = await startWith({ cert: certs.a.cert, key: certs.a.key, ciphers: 'NO-SUCH-CIPHER' });
    assert.match(badCiphers.message, /listen\[1\]\.tls\.ciphers: cannot use .*no cipher match/);
  });
});

describe('TLS certificate files watched (watch: true)', () => {
  let certs: TestCerts;
  let dir: string;
  let lb: TestBalancer;
  let backends: DemoBackend[];
  const log = captureLogger();

  before(async () => {
    certs = makeCerts();
    dir = mkdtempSync(join(tmpdir(), 'fulcrum-watch-'));
    copyFileSync(certs.a.cert, join(dir, 'site.pem'));
    copyFileSync(certs.a.key, join(dir, 'site.key'));
    backends = await startBackends(1, 'Watch');
    lb = await startBalancer({
      listen: { host: '127.0.0.1', port: 0, tls: { cert: join(dir, 'site.pem'), key: join(dir, 'site.key'), minVersion: 'TLSv1.3' } },
      backends: [urlOf(backends[0]!)],
      healthCheck: { enabled: false },
      watch: true,
    }, { logger: log.logger });
  });

  after(async () => {
    await lb.close();
    for (const b of backends) await b.close();
    certs.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  test('new files are picked up without a reload; a half-written pair is skipped until it matches', async () => {
    assert.equal((await handshake(lb.port)).fingerprint, certs.fingerprint(certs.a.cert));
    assert.equal((await handshake(lb.port)).protocol, 'TLSv1.3');
    await assert.rejects(handshake(lb.port, { maxVersion: 'TLSv1.2' }), 'minVersion TLSv1.3 refuses TLS 1.2');
    // The certificate first (mismatching the old key: the reload is refused), then its key.
    copyFileSync(certs.a2.cert, join(dir, 'site.pem'));
    await waitFor(() => log.find('TLS certificates not reloaded; the previous ones keep serving').length > 0, 10_000, 100);
    const refused = log.find('TLS certificates not reloaded; the previous ones keep serving')[0]!;
    assert.match(JSON.stringify(refused.problems), /does not match certificate/);
    assert.equal((await handshake(lb.port)).fingerprint, certs.fingerprint(certs.a.cert), 'the old pair keeps serving');
    copyFileSync(certs.a2.key, join(dir, 'site.key'));
    await waitFor(async () => (await handshake(lb.port)).fingerprint === certs.fingerprint(certs.a2.cert), 10_000, 200);
  });
});
