/**
 * Automatic certificates against a real ACME server: Pebble, with its DNS
 * pointed at the test DNS server (every test domain is 127.0.0.1) and its
 * validation ports pointed at Fulcrum's listeners, so that it really
 * fetches the HTTP-01 token from the plain listener (through the https
 * redirect) and really completes a TLS-ALPN-01 handshake with the TLS one.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { createBalancer, type FulcrumConfigInput } from '../../src/index.js';
import type { Fulcrum } from '../../src/app/fulcrum.js';
import { MAX_ORDERS_PER_HOUR } from '../../src/acme/manager.js';
import { startBackends, freePort, urlOf, type DemoBackend } from '../helpers/backends.js';
import { get, waitFor } from '../helpers/balancer.js';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { captureLogger, type CapturedLog } from '../helpers/logs.js';
import { pebbleCertificate, startPebble, type TestPebble } from '../helpers/pebble.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const DOMAINS = ['shop.acme.test', 'www.acme.test', 'alpn.acme.test', 'blocked.acme.test', 'api.auto.test', 'web.auto.test', 'new.auto.test'];

interface Handshake {
  readonly authorized: boolean;
  readonly error: string | null;
  readonly serial: string;
  readonly names: string;
  readonly issuer: string;
  readonly socket: tls.TLSSocket;
}

/** handshake connects with SNI `name`, trusting only Pebble's root; the socket stays open (the caller ends it). */
function handshake(port: number, name: string, root: string): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: name, ca: root, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const peer = socket.getPeerX509Certificate();
      resolve({
        authorized: socket.authorized, error: socket.authorizationError === null ? null : String(socket.authorizationError),
        serial: peer?.serialNumber ?? '', names: peer?.subjectAltName ?? '', issuer: peer?.issuer ?? '', socket,
      });
    });
    socket.once('error', reject);
  });
}

/** requestOver sends one HTTP/1.1 request over an open TLS socket and resolves to the status line. */
function requestOver(socket: tls.TLSSocket, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    const onData = (chunk: Buffer): void => {
      data += chunk.toString('latin1');
      if (data.includes('\r\n\r\n')) { socket.off('data', onData); resolve(data.slice(0, data.indexOf('\r\n'))); }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  });
}

function statusOf(b: Fulcrum): { orderingInstance: boolean; certificates: Record<string, unknown>[] } {
  return b.status().acme as { orderingInstance: boolean; certificates: Record<string, unknown>[] };
}

const served = (b: Fulcrum): boolean => statusOf(b).certificates.every((c) => c.notAfter !== null);

function tlsPortOf(b: Fulcrum): number {
  return b.listeners.find((l) => l.config.tls !== undefined)!.port;
}

describe('ACME against Pebble', () => {
  let dns: TestDnsServer;
  let backends: DemoBackend[];
  const open: Fulcrum[] = [];
  const pebbles: TestPebble[] = [];
  const dirs: string[] = [];

  before(async () => {
    dns = await startDnsServer();
    for (const d of DOMAINS) dns.set(d, { A: [{ address: '127.0.0.1' }] });
    backends = await startBackends(1);
  });

  after(async () => {
    for (const b of open) await b.close({ drainTimeout: 500 });
    for (const p of pebbles) await p.close();
    for (const b of backends) await b.close();
    await dns.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function pebble(options: Omit<Parameters<typeof startPebble>[0], 'dns'>): Promise<TestPebble> {
    const p = await startPebble({ dns: dns.server, ...options });
    pebbles.push(p);
    return p;
  }

  function balancer(config: FulcrumConfigInput, log: CapturedLog = captureLogger()): Fulcrum {
    const b = createBalancer({ logLevel: 'info', accessLog: false, healthCheck: { enabled: false }, backends: [urlOf(backends[0]!)], ...config }, { logger: log.logger });
    open.push(b);
    return b;
  }

  function storageDir(): string {
    const d = mkdtempSync(join(tmpdir(), 'fulcrum-acme-'));
    dirs.push(d);
    return d;
  }

  test('http-01 through the https redirect: the certificate is served by SNI, chains to Pebble\'s root, and is renewed renewBefore expiry without dropping connections', async () => {
    const plain = await freePort();
    const ca = await pebble({ httpPort: plain, validitySeconds: 12 });
    const b = balancer({
      listen: [
        { host: '127.0.0.1', port: plain, redirectHttps: true },
        { host: '127.0.0.1', port: 0, tls: { acme: { email: 'ops@acme.test', domains: ['shop.acme.test', 'www.acme.test'] } } },
      ],
      acme: { directory: ca.directory, caBundle: ca.caBundle, storageDir: storageDir(), renewBefore: '8s', checkInterval: '100ms', retryDelay: '100ms' },
    });
    await b.listen();
    await waitFor(() => served(b), 10_000);
    const root = await ca.root();
    const port = tlsPortOf(b);
    const first = await handshake(port, 'www.acme.test', root);
    assert.equal(first.authorized, true, `chains to Pebble's root: ${first.error}`);
    assert.match(first.names, /DNS:shop\.acme\.test/);
    assert.match(first.names, /DNS:www\.acme\.test/);
    assert.equal(await requestOver(first.socket, 'www.acme.test'), 'HTTP/1.1 200 OK');
    assert.equal(ca.orders(), 1);

    const cert = statusOf(b).certificates[0]!;
    assert.deepEqual(cert.domains, ['shop.acme.test', 'www.acme.test']);
    assert.match(String(cert.issuer), /Pebble Intermediate/);
    assert.equal(cert.lastError, null);
    const metrics = await b.metrics.prometheus();
    const expiry = new RegExp(`fulcrum_certificate_expiry_seconds\\{domain="shop.acme.test"\\} (\\d+)`).exec(metrics.body);
    assert.ok(expiry !== null, 'the expiry metric is exported');
    assert.equal(Number(expiry[1]), Math.floor(Date.parse(String(cert.notAfter)) / 1000));

    // 12s certificates renewed 8s before expiry: a second order about 4s later, served to new connections.
    await waitFor(() => statusOf(b).certificates[0]!.serial !== cert.serial, 10_000, 50);
    const second = await handshake(port, 'shop.acme.test', root);
    assert.equal(second.authorized, true);
    assert.notEqual(second.serial, first.serial, 'new connections get the renewed certificate');
    assert.equal(ca.orders(), 2);
    assert.equal(await requestOver(first.socket, 'www.acme.test'), 'HTTP/1.1 200 OK', 'the connection opened before the renewal still serves');
    first.socket.destroy();
    second.socket.destroy();
    // Everything but the validations still goes to https.
    const redirected = await get(`http://127.0.0.1:${plain}/x`, { headers: { host: 'shop.acme.test' } });
    assert.equal(redirected.status, 308);
  });

  test('tls-alpn-01: Pebble validates with a handshake on the TLS listener', async () => {
    const tlsPort = await freePort();
    const ca = await pebble({ tlsPort });
    const b = balancer({
      listen: [{ host: '127.0.0.1', port: tlsPort, tls: { acme: { email: 'ops@acme.test', domains: ['alpn.acme.test'] } } }],
      acme: { directory: ca.directory, caBundle: ca.caBundle, challenge: 'tls-alpn-01', storageDir: storageDir(), checkInterval: '100ms', retryDelay: '100ms' },
    });
    await b.listen();
    await waitFor(() => served(b), 10_000);
    const h = await handshake(tlsPort, 'alpn.acme.test', await ca.root());
    assert.equal(h.authorized, true, String(h.error));
    assert.match(h.names, /DNS:alpn\.acme\.test/);
    assert.equal(await requestOver(h.socket, 'alpn.acme.test'), 'HTTP/1.1 200 OK');
    h.socket.destroy();
    assert.equal(ca.orders(), 1);
  });

  test('a domain the CA refuses: the CA\'s problem in the log and /status, no crash, at most a few orders an hour', async () => {
    const plain = await freePort();
    const ca = await pebble({ httpPort: plain, blocked: ['blocked.acme.test'] });
    const log = captureLogger();
    const b = balancer({
      listen: [
        { host: '127.0.0.1', port: plain },
        { host: '127.0.0.1', port: 0, tls: { acme: { email: 'ops@acme.test', domains: ['blocked.acme.test'] } } },
      ],
      acme: { directory: ca.directory, caBundle: ca.caBundle, storageDir: storageDir(), checkInterval: '50ms', retryDelay: '20ms' },
    }, log);
    await b.listen();
    await waitFor(() => statusOf(b).certificates[0]!.lastError !== null, 10_000);
    // With a 20ms first back-off, a storm would be dozens of orders in a second: the cap is reached, then nothing more.
    await waitFor(() => ca.orders() >= MAX_ORDERS_PER_HOUR, 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(ca.orders(), MAX_ORDERS_PER_HOUR, 'the hourly cap holds');
    const cert = statusOf(b).certificates[0]!;
    assert.equal(cert.notAfter, null);
    assert.match(String(cert.lastError), /blocked|forbidden|policy/i);
    const failed = log.find('ACME: order failed; the certificate in service (if any) stays');
    assert.ok(failed.length >= 1);
    assert.match(String((failed[0]!.problem as { type?: string } | null)?.type), /urn:ietf:params:acme:error:rejectedIdentifier/);
    // Still serving.
    assert.equal((await get(`http://127.0.0.1:${plain}/`)).status, 200);
  });

  test('domains auto: a certificate for each exact route host; a host a reload adds gets its own, the others are not reissued', async () => {
    const plain = await freePort();
    const ca = await pebble({ httpPort: plain });
    const log = captureLogger();
    const routes = (hosts: string[]): FulcrumConfigInput['routes'] => [
      { name: 'api', match: { hosts: ['api.auto.test', '*.api.auto.test'] }, service: 'default' },
      { name: 'web', match: { hosts: hosts }, service: 'default' },
    ];
    // Pebble's certificates last an hour here: renewBefore stays below that, so that every order counted is a first one.
    const acme = { directory: ca.directory, caBundle: ca.caBundle, storageDir: storageDir(), renewBefore: '10m', checkInterval: '100ms', retryDelay: '100ms' };
    const config = (hosts: string[]): FulcrumConfigInput => ({
      listen: [
        { host: '127.0.0.1', port: plain },
        { host: '127.0.0.1', port: 0, tls: { acme: { email: 'ops@acme.test', domains: 'auto' } } },
      ],
      routes: routes(hosts),
      acme,
    });
    const b = balancer(config(['WEB.auto.test:443', 'localhost']), log);
    await b.listen();
    await waitFor(() => statusOf(b).certificates.length === 2 && served(b), 10_000);
    assert.deepEqual(statusOf(b).certificates.map((c) => c.domains), [['api.auto.test'], ['web.auto.test']]);
    assert.equal(ca.orders(), 2, 'one order per host');
    const skipped = log.find('ACME: domains auto leaves out route hosts it cannot order a certificate for')[0]?.skipped as { host: string }[];
    assert.deepEqual(skipped.map((s) => s.host), ['*.api.auto.test', 'localhost']);
    const root = await ca.root();
    const web = await handshake(tlsPortOf(b), 'web.auto.test', root);
    assert.equal(web.authorized, true, String(web.error));
    assert.equal(web.names, 'DNS:web.auto.test');
    web.socket.destroy();

    // What balancer() adds to a config, so that only the route hosts change.
    const result = await b.reload({ logLevel: 'info', accessLog: false, healthCheck: { enabled: false }, backends: [urlOf(backends[0]!)], ...config(['web.auto.test', 'new.auto.test']) });
    assert.equal(result.ok, true);
    assert.deepEqual(result.removed, []);
    await waitFor(() => statusOf(b).certificates.length === 3 && served(b), 10_000);
    assert.equal(ca.orders(), 3, 'only the new host was ordered');
    const added = await handshake(tlsPortOf(b), 'new.auto.test', root);
    assert.equal(added.authorized, true, String(added.error));
    assert.equal(added.names, 'DNS:new.auto.test');
    added.socket.destroy();
  });

  describe('two instances sharing Redis', () => {
    let redis: TestRedis;
    before(async () => { redis = await startRedis(); });
    after(async () => { await redis.close(); });

    test('a CA down at start; then exactly one order, the other instance answers the challenge, both serve the certificate', async () => {
      const acmePort = await freePort();
      const plainB = await freePort();
      const directory = `https://127.0.0.1:${acmePort}/dir`;
      const keyPrefix = `acme-${Date.now()}:`;
      // Pebble's TLS certificate exists before Pebble does, so that the instances start with its CA bundle.
      const tlsCertificate = pebbleCertificate(storageDir());
      const common = (plain: number): FulcrumConfigInput => ({
        listen: [
          { host: '127.0.0.1', port: plain },
          { host: '127.0.0.1', port: 0, tls: { acme: { email: 'ops@acme.test', domains: ['shop.acme.test'] } } },
        ],
        state: { store: 'redis', redis: { url: redis.url, keyPrefix }, flushInterval: '100ms' },
        acme: { directory, caBundle: tlsCertificate.cert, storage: 'redis', storageKey: 'ab'.repeat(32), checkInterval: '100ms', retryDelay: '100ms' },
      });
      const logA = captureLogger();
      const a = balancer(common(0), logA);
      await a.listen();
      await waitFor(() => statusOf(a).certificates[0]!.lastError !== null, 10_000);
      assert.equal(statusOf(a).orderingInstance, true);
      assert.match(String(statusOf(a).certificates[0]!.lastError), /cannot reach the ACME server/);
      assert.ok(logA.find('ACME: order failed; the certificate in service (if any) stays').length >= 1);
      assert.equal((await get(`http://127.0.0.1:${a.port}/`)).status, 200, 'the other listeners serve while the CA is down');

      const b = balancer(common(plainB));
      await b.listen();
      // Pebble validates against B's plain listener only; A, the lease holder, orders.
      const ca = await pebble({ port: acmePort, httpPort: plainB, tlsCertificate });
      await waitFor(() => served(a) && served(b), 15_000, 50);
      assert.equal(statusOf(b).orderingInstance, false);
      assert.equal(ca.orders(), 1, 'exactly one order reached the CA');
      assert.ok(ca.log().includes(`validate w/ HTTP: http://shop.acme.test:${plainB}/.well-known/acme-challenge/`), 'Pebble validated against B, which answered A\'s token');
      const root = await ca.root();
      const ha = await handshake(tlsPortOf(a), 'shop.acme.test', root);
      const hb = await handshake(tlsPortOf(b), 'shop.acme.test', root);
      assert.equal(ha.authorized && hb.authorized, true);
      assert.equal(ha.serial, hb.serial, 'one certificate, served by both');
      ha.socket.destroy();
      hb.socket.destroy();
    });
  });
});
