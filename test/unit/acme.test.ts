/**
 * The ACME feature without a CA: its configuration, the sealing of private
 * keys, the HTTP-01 routes, the manager's lease, back-off and hourly cap
 * (with a stand-in for the ACME client), and file and ACME certificates on
 * one listener.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/config-error.js';
import { DynamicCertificates } from '../../src/core/certificates.js';
import { challengeRoutes, tokenOf } from '../../src/listen/challenge-routes.js';
import { KeySeal, parseStorageKey } from '../../src/acme/seal.js';
import { AcmeManager, MAX_ORDERS_PER_HOUR, type WantedCertificate } from '../../src/acme/manager.js';
import { AcmeOrderError, type IssuedCertificate, type OrderRequest } from '../../src/acme/issuer.js';
import { FileStorage, StoreStorage } from '../../src/acme/storage.js';
import { acmeSchema, autoDomains } from '../../src/config/schema.js';
import { wantedCertificates } from '../../src/acme/feature.js';
import { MemoryStateServer, MemoryStore } from '../../src/state/memory.js';
import { createBalancer } from '../../src/index.js';
import { silentLogger } from '../../src/observe/log.js';
import { handshake, makeCerts, opensslAvailable, type TestCerts } from '../helpers/certs.js';
import { waitFor } from '../helpers/balancer.js';

function problemsOf(input: unknown): string[] {
  try {
    validateConfig(input as never, 'test');
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
  return [];
}

describe('ACME configuration', () => {
  test('a TLS listener may have acme instead of cert and key; durations take days', () => {
    const c = validateConfig({ listen: { port: 443, tls: { acme: { email: 'ops@example.com', domains: ['Example.com', 'www.example.com'] } } }, acme: { renewBefore: '30d' } }, 'test');
    assert.deepEqual(c.listen[0]!.tls!.acme!.domains, ['example.com', 'www.example.com']);
    assert.equal(c.acme!.renewBefore, 30 * 86_400_000);
    assert.equal(c.acme!.challenge, 'http-01');
    assert.equal(c.acme!.storage, 'file');
  });

  test('mistakes name their key path', () => {
    assert.match(problemsOf({ listen: { port: 443, tls: {} } }).join('\n'), /listen\.tls\.cert: required \(or acme/);
    assert.match(problemsOf({ listen: { port: 443, tls: { cert: 'c.pem' } } }).join('\n'), /listen\.tls\.key: required with cert/);
    assert.match(problemsOf({ listen: { port: 443, tls: { acme: { email: 'ops@example.com', domains: ['*.example.com'] } } } }).join('\n'), /listen\.tls\.acme\.domains\[0\]: .*no wildcards/);
    assert.match(problemsOf({ listen: { port: 443, tls: { acme: { email: 'not-an-address', domains: ['example.com'] } } } }).join('\n'), /listen\.tls\.acme\.email: expected an e-mail address/);
    assert.match(problemsOf({ listen: { port: 443, tls: { acme: { email: 'a@b.c', domains: ['example.com'] } } }, acme: { storage: 'redis' } }).join('\n'), /acme\.storage: .*state\.store: redis/);
    assert.match(problemsOf({ listen: { port: 443, http2: true, tls: { acme: { email: 'a@b.c', domains: ['example.com'] } } }, acme: { challenge: 'tls-alpn-01' } }).join('\n'), /listen\[0\]\.http2: tls-alpn-01 is answered on HTTP\/1\.1/);
    assert.match(problemsOf({ acme: { storageKey: 'short' } }).join('\n'), /acme\.storageKey: expected a 32-byte key/);
    assert.match(problemsOf({ listen: { port: 443, tls: { acme: { email: 'a@b.c', domains: 'all' } } } }).join('\n'), /listen\.tls\.acme\.domains: expected a list of domains .* or "auto"/);
    // auto with no route host it could order for (a wildcard, a one-label name): said where auto is written.
    assert.deepEqual(problemsOf({
      listen: [{ port: 80 }, { port: 443, tls: { acme: { email: 'a@b.c', domains: 'auto' } } }],
      routes: [{ match: { hosts: ['*.example.com', 'localhost'] }, service: 'default' }], backends: ['http://127.0.0.1:9000'],
    }), ['listen[1].tls.acme.domains: auto takes the exact hosts of routes[].match.hosts, and no route names one (wildcards, IP addresses and one-label names cannot be ordered): list the domains, got "auto"']);
  });

  test('domains auto: one certificate per exact route host, port, case and trailing dot aside', () => {
    const c = validateConfig({
      listen: [{ port: 80 }, { port: 443, tls: { acme: { email: 'a@b.c', domains: 'auto' } } }],
      backends: ['http://127.0.0.1:9000'],
      routes: [
        { match: { hosts: ['API.example.com:443', 'api.example.com.', '*.example.com', '10.0.0.1'] }, service: 'default' },
        { match: { hosts: ['www.example.com'] }, service: 'default' },
        { service: 'default' },
      ],
    }, 'test');
    assert.deepEqual(wantedCertificates(c).map((w) => w.domains), [['api.example.com'], ['www.example.com']]);
    assert.deepEqual(autoDomains(c.routes).skipped.map((s) => s.host), ['*.example.com', '10.0.0.1']);
  });
});

describe('private keys at rest', () => {
  test('sealed with the storage key, readable with it only', () => {
    const hex = 'ab'.repeat(32);
    const key = parseStorageKey(hex);
    assert.equal(key.length, 32);
    assert.deepEqual(parseStorageKey(key.toString('base64')), key);
    const seal = new KeySeal(key);
    const sealed = seal.seal('-----BEGIN PRIVATE KEY-----\nx\n');
    assert.doesNotMatch(sealed, /PRIVATE KEY/);
    assert.equal(seal.open(sealed), '-----BEGIN PRIVATE KEY-----\nx\n');
    assert.throws(() => new KeySeal(null).open(sealed), /set acme\.storageKey/);
    assert.throws(() => new KeySeal(parseStorageKey('cd'.repeat(32))).open(sealed), /not the key it was stored with/);
    assert.equal(new KeySeal(null).seal('pem'), 'pem', 'no key: stored as it is');
  });
});

describe('HTTP-01 routes', () => {
  test('tokenOf reads origin and absolute forms only under the challenge prefix', () => {
    assert.equal(tokenOf('/.well-known/acme-challenge/abc_-1'), 'abc_-1');
    assert.equal(tokenOf('http://example.com/.well-known/acme-challenge/t?x=1'), 't');
    assert.equal(tokenOf('/.well-known/acme-challenge/t?x=1'), 't');
    assert.equal(tokenOf('/.well-known/other'), undefined);
    assert.equal(tokenOf('/'), undefined);
  });

  test('known tokens answered, unknown and malformed ones 404, a store failure 503, others go to next', async () => {
    const next = { matches: (url: string) => url === '/status', handle: (_req: http.IncomingMessage, res: http.ServerResponse) => { res.end('status'); } };
    let failing = false;
    const routes = challengeRoutes({ keyAuthorization: async (t) => { if (failing) throw new Error('down'); return t === 'good' ? 'good.thumbprint' : null; } }, next);
    const server = http.createServer((req, res) => { if (routes.matches(req.url!)) routes.handle(req, res); else res.end('proxied'); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const fetchText = async (path: string): Promise<[number, string]> => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return [res.status, await res.text()];
    };
    try {
      assert.deepEqual(await fetchText('/.well-known/acme-challenge/good'), [200, 'good.thumbprint']);
      assert.equal((await fetchText('/.well-known/acme-challenge/unknown'))[0], 404);
      assert.equal((await fetchText('/.well-known/acme-challenge/bad%20token'))[0], 404);
      assert.deepEqual(await fetchText('/status'), [200, 'status']);
      assert.deepEqual(await fetchText('/other'), [200, 'proxied']);
      failing = true;
      assert.equal((await fetchText('/.well-known/acme-challenge/good'))[0], 503);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('AcmeManager (a stand-in for the CA)', { skip: !opensslAvailable() && 'openssl is not installed' }, () => {
  let certs: TestCerts;
  const dirs: string[] = [];
  before(() => { certs = makeCerts(); });
  after(() => { certs.remove(); for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

  const wanted: WantedCertificate[] = [{ id: 'a.test', domains: ['a.test'], email: 'ops@a.test' }];

  function manager(store: MemoryStore, order: (r: OrderRequest) => Promise<IssuedCertificate>, options: { storage?: 'file' | 'store'; retryDelay?: string } = {}): { m: AcmeManager; certificates: DynamicCertificates } {
    const certificates = new DynamicCertificates();
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-acme-unit-'));
    dirs.push(dir);
    const m = new AcmeManager({
      config: acmeSchema.parse({ checkInterval: '50ms', retryDelay: options.retryDelay ?? '10ms', storageKey: 'ab'.repeat(32) }),
      wanted, store, storage: options.storage === 'file' ? new FileStorage(dir) : new StoreStorage(store),
      seal: new KeySeal(parseStorageKey('ab'.repeat(32))), certificates, log: silentLogger(), shared: true, order,
    });
    return { m, certificates };
  }

  const issued = (): IssuedCertificate => ({ cert: readFileSync(certs.a.cert, 'utf8'), key: readFileSync(certs.a.key, 'utf8'), notBefore: Date.now() - 1000, notAfter: Date.now() + 90 * 86_400_000, issuer: 'Test CA' });

  test('one instance orders (the lease); the other serves what it stored', async () => {
    const server = new MemoryStateServer();
    let orders = 0;
    const order = async (): Promise<IssuedCertificate> => { orders++; return issued(); };
    const a = manager(new MemoryStore('a', server), order);
    const b = manager(new MemoryStore('b', server), order);
    await a.m.tick();
    await b.m.tick();
    assert.equal(orders, 1);
    assert.equal(a.m.holder, true);
    assert.equal(b.m.holder, false);
    assert.ok(a.certificates.select('a.test') !== undefined);
    assert.ok(b.certificates.select('A.TEST') !== undefined, 'installed from the store, by SNI name in any case');
    assert.equal(b.certificates.select('b.test'), undefined);
    const stored = await new MemoryStore('c', server).getValue('acme:cert:a.test');
    assert.doesNotMatch(String(stored), /PRIVATE KEY/, 'the private key is stored sealed');
    assert.equal(b.m.status()[0]!.issuer, 'Test CA');
    await a.m.close();
    await b.m.close();
  });

  test('a refusing CA: back-off doubles, and the hourly cap holds across instances', async () => {
    const server = new MemoryStateServer();
    let orders = 0;
    const refuse = async (): Promise<IssuedCertificate> => { orders++; throw new AcmeOrderError('rejected', { type: 'urn:ietf:params:acme:error:rejectedIdentifier' }, false); };
    const a = manager(new MemoryStore('a', server), refuse);
    await a.m.tick();
    const first = a.m.status()[0]!;
    assert.equal(first.failures, 1);
    assert.equal(first.lastError, 'rejected');
    for (let i = 0; i < 20; i++) { await a.m.tick(); await new Promise((r) => setTimeout(r, 10)); }
    assert.equal(orders, MAX_ORDERS_PER_HOUR);
    // The lease passes to another instance: it reads the stored history and orders no more.
    await a.m.close();
    const b = manager(new MemoryStore('b', server), refuse);
    for (let i = 0; i < 5; i++) await b.m.tick();
    assert.equal(orders, MAX_ORDERS_PER_HOUR);
    await b.m.close();
  });

  test('an unreachable CA backs off but does not count against the hourly cap', async () => {
    const server = new MemoryStateServer();
    let orders = 0;
    const down = async (): Promise<IssuedCertificate> => { orders++; throw new AcmeOrderError('cannot reach the ACME server', null, true); };
    const a = manager(new MemoryStore('a', server), down, { retryDelay: '10ms', storage: 'file' });
    for (let i = 0; i < 20 && orders <= MAX_ORDERS_PER_HOUR; i++) { await a.m.tick(); await new Promise((r) => setTimeout(r, 25)); }
    assert.ok(orders > MAX_ORDERS_PER_HOUR, `kept trying: ${orders}`);
    assert.ok(Number(a.m.status()[0]!.failures) === orders);
    await a.m.close();
  });
});

describe('file and ACME certificates on one listener', { skip: !opensslAvailable() && 'openssl is not installed' }, () => {
  let certs: TestCerts;
  before(() => { certs = makeCerts(); });
  after(() => certs.remove());

  test('SNI picks whichever covers the name; ACME certificates are asked first and swapped without a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-acme-files-'));
    const b = createBalancer({
      listen: [{ host: '127.0.0.1', port: 0, tls: { cert: certs.a.cert, key: certs.a.key, acme: { email: 'ops@b.test', domains: ['b.test'] } } }],
      // A CA nobody listens on: the order fails in the background; the listener serves regardless.
      acme: { directory: 'https://127.0.0.1:1/dir', storageDir: dir, checkInterval: '1h' },
      healthCheck: { enabled: false },
      logLevel: 'silent',
    }, { logger: silentLogger() });
    try {
      await b.listen();
      const port = b.port;
      const a = await handshake(port, { servername: 'a.test' });
      assert.equal(a.fingerprint, certs.fingerprint(certs.a.cert));
      const before = await handshake(port, { servername: 'b.test' });
      assert.equal(before.fingerprint, certs.fingerprint(certs.a.cert), 'no ACME certificate yet: the default one');
      b.certificates.set('b.test', ['b.test'], readFileSync(certs.b.cert, 'utf8'), readFileSync(certs.b.key, 'utf8'));
      await waitFor(async () => (await handshake(port, { servername: 'b.test' })).fingerprint === certs.fingerprint(certs.b.cert));
      assert.equal((await handshake(port, { servername: 'a.test' })).fingerprint, certs.fingerprint(certs.a.cert));
    } finally {
      await b.close({ drainTimeout: 200 });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
