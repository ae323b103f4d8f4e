/**
 * TLS to backends: verification fails (502, one clear log line) on an
 * untrusted certificate or a wrong name, passes with the CA and servername
 * configured, a client certificate for mTLS, insecureSkipVerify with one
 * warning, health checks with the same settings, bad files at start, and a
 * reload that changes the CA.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ConfigError, createBalancer, type FulcrumConfigInput } from '../../src/index.js';
import { get, startBalancer, waitFor, silentLogger, type TestBalancer } from '../helpers/balancer.js';
import { makeCerts, type TestCerts } from '../helpers/certs.js';
import { captureLogger, type CapturedLog } from '../helpers/logs.js';

interface HttpsBackend {
  readonly url: string;
  close(): Promise<void>;
}

/** startHttpsBackend answers every request with what it saw: path, Host, and the client certificate's CN. */
async function startHttpsBackend(options: https.ServerOptions): Promise<HttpsBackend> {
  const server = https.createServer(options, (req, res) => {
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    const body = JSON.stringify({ path: req.url, host: req.headers.host, proto: req.headers['x-forwarded-proto'], clientCN: peer?.subject?.CN ?? null });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('TLS to backends', () => {
  let certs: TestCerts;
  let backend: HttpsBackend;
  let mtls: HttpsBackend;
  const running: TestBalancer[] = [];

  const start = async (config: FulcrumConfigInput, log?: CapturedLog): Promise<TestBalancer> => {
    const lb = await startBalancer({ healthCheck: { enabled: false }, retries: { attempts: 0 }, ...config }, log === undefined ? {} : { logger: log.logger });
    running.push(lb);
    return lb;
  };

  before(async () => {
    certs = makeCerts();
    backend = await startHttpsBackend({ cert: certs.read(certs.backend.cert), key: certs.read(certs.backend.key) });
    mtls = await startHttpsBackend({
      cert: certs.read(certs.backend.cert), key: certs.read(certs.backend.key),
      ca: certs.read(certs.ca), requestCert: true, rejectUnauthorized: true,
    });
  });

  after(async () => {
    for (const lb of running) await lb.close();
    await backend.close();
    await mtls.close();
    certs.remove();
  });

  test('an untrusted backend certificate gives 502 and one clear log line', async () => {
    const log = captureLogger();
    const lb = await start({ backends: [backend.url] }, log);
    for (let i = 0; i < 3; i++) {
      const res = await get(`${lb.url}/x`);
      assert.equal(res.status, 502);
      assert.equal(res.headers['x-fulcrum-error'], 'FULCRUM_ERR_UPSTREAM_TLS');
      assert.match(res.body, /TLS handshake with backend failed: UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    }
    const lines = log.find('TLS handshake with backend failed');
    assert.equal(lines.length, 1, 'logged once, not per request');
    assert.equal(lines[0]!.level, 50);
    assert.equal(lines[0]!.code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    assert.equal(lines[0]!.url, `${backend.url}/`);
    assert.match(String(lines[0]!.hint), /set backendTls\.ca/);
  });

  test('with the CA but a name the certificate is not for: 502 that says to set servername', async () => {
    const log = captureLogger();
    const lb = await start({ backends: [backend.url], backendTls: { ca: certs.ca } }, log);
    const res = await get(`${lb.url}/`);
    assert.equal(res.status, 502);
    assert.match(res.body, /ERR_TLS_CERT_ALTNAME_INVALID/);
    assert.match(String(log.find('TLS handshake with backend failed')[0]!.hint), /servername/);
  });

  test('with the CA and servername configured the request passes; health checks use the same settings', async () => {
    const lb = await start({
      backends: [{ url: backend.url, healthy: false }],
      backendTls: { ca: certs.ca, servername: 'backend.test' },
      healthCheck: { enabled: true, interval: '200ms', healthyThreshold: 1, path: '/health' },
    });
    // The backend starts out of rotation: only a passing health check over TLS brings it in.
    await waitFor(() => lb.balancer.pool.snapshot[0]!.healthy, 10_000);
    const res = await get(`${lb.url}/hello`, { headers: { host: 'site.test' } });
    assert.equal(res.status, 200, res.body);
    const seen = JSON.parse(res.body) as { path: string; host: string; proto: string };
    assert.deepEqual(seen, { path: '/hello', host: 'site.test', proto: 'http', clientCN: null });
  });

  test('health checks fail on an untrusted certificate, saying why', async () => {
    const lb = await start({ backends: [backend.url], healthCheck: { enabled: true, interval: '200ms', unhealthyThreshold: 1 } });
    await waitFor(() => !lb.balancer.pool.snapshot[0]!.healthy, 10_000);
    assert.match(lb.balancer.pool.snapshot[0]!.state.lastCheckError ?? '', /UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
  });

  test('a backend that requires a client certificate gets the configured one (mTLS)', async () => {
    const lb = await start({
      backends: [{ url: mtls.url, tls: { cert: certs.client.cert, key: certs.client.key } }],
      backendTls: { ca: certs.ca, servername: 'backend.test' },
    });
    const res = await get(`${lb.url}/m`);
    assert.equal(res.status, 200, res.body);
    assert.equal((JSON.parse(res.body) as { clientCN: string }).clientCN, 'fulcrum-client');

    const without = await start({ backends: [mtls.url], backendTls: { ca: certs.ca, servername: 'backend.test' } });
    const refused = await get(`${without.url}/m`);
    assert.equal(refused.status, 502);
  });

  test('insecureSkipVerify on a backend connects without verification and warns once', async () => {
    const log = captureLogger();
    const lb = await start({ backends: [{ url: backend.url, tls: { insecureSkipVerify: true } }] }, log);
    for (let i = 0; i < 3; i++) assert.equal((await get(`${lb.url}/`)).status, 200);
    lb.balancer.upstream.reset(lb.balancer.pool.snapshot[0]!.id);
    assert.equal((await get(`${lb.url}/`)).status, 200);
    const warnings = log.find('TLS verification to backend is disabled (tls.insecureSkipVerify)');
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.level, 40);
  });

  test('a reload that adds the CA takes effect on new connections without a restart', async () => {
    const config: FulcrumConfigInput = { backends: [backend.url], healthCheck: { enabled: false }, retries: { attempts: 0 }, logLevel: 'silent', accessLog: false };
    const lb = await start(config);
    assert.equal((await get(`${lb.url}/`)).status, 502);
    const result = await lb.balancer.reload({ ...config, backendTls: { ca: certs.ca, servername: 'backend.test' } });
    assert.equal(result.ok, true);
    assert.equal((await get(`${lb.url}/`)).status, 200);
    const bad = await lb.balancer.reload({ ...config, backendTls: { ca: `${certs.dir}/missing-ca.pem` } });
    assert.equal(bad.ok, false);
    assert.ok(bad.problems!.some((p) => p.includes('backendTls.ca') && p.includes('missing-ca.pem: file not found')), bad.problems!.join('\n'));
    assert.equal((await get(`${lb.url}/`)).status, 200, 'the previous settings stay');
  });

  test('unreadable or mismatched backend TLS files are start-up errors', () => {
    const build = (config: FulcrumConfigInput): ConfigError => {
      try {
        createBalancer({ logLevel: 'silent', ...config }, { logger: silentLogger() });
      } catch (err) {
        assert.ok(err instanceof ConfigError, String(err));
        return err;
      }
      assert.fail('expected a ConfigError');
    };
    assert.match(build({ backends: [backend.url], backendTls: { ca: '/nonexistent/ca.pem' } }).message, /backendTls\.ca: cannot read \/nonexistent\/ca\.pem: file not found/);
    const mismatch = build({ backends: [{ url: backend.url, tls: { cert: certs.client.cert, key: certs.strayKey } }] });
    assert.ok(mismatch.message.includes(`backends[0].tls.key: private key ${certs.strayKey} does not match certificate ${certs.client.cert}`), mismatch.message);
    assert.match(build({ backendTls: { cert: certs.client.cert } }).message, /backendTls\.key: a client certificate needs both cert and key/);
  });
});
