/**
 * Malformed input must never end the process (issue 19, defect 5). The real
 * command runs as a child with every kind of listener (the plain fast path,
 * `fastPath: false`, h2c, TLS with HTTP/1.1, TLS with h2 and its HTTP/1.1
 * fallback); each gets malformed versions, methods and targets, plain and as
 * upgrades, and must still be alive and serving afterwards.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackends, urlOf, type DemoBackend } from '../helpers/backends.js';
import { waitFor } from '../helpers/balancer.js';
import { makeCerts, opensslAvailable, type TestCerts } from '../helpers/certs.js';
import { startCli, type CliProcess } from '../helpers/cli.js';
import { overTls, plain, rawExchange, type Connector } from '../helpers/raw-http.js';

/** Request heads with a version Fulcrum does not serve, and the answer each must get. */
const VERSIONS: ReadonlyArray<[string, number]> = [
  ['GET / HTTP/2.0\r\n\r\n', 505], // the 19 bytes of the report
  ['GET / HTTP/2.0\r\nHost: x\r\n\r\n', 505],
  ['POST / HTTP/2.0\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc', 505],
  ['GET / HTTP/3.0\r\nHost: x\r\n\r\n', 505],
  ['GET / HTTP/1.2\r\nHost: x\r\n\r\n', 505],
  ['GET / HTTP/9.9\r\nHost: x\r\n\r\n', 505],
  ['GET / HTTP/0.9\r\n\r\n', 400],
  ['GET /\r\n\r\n', 400],
  ['GET / HTTP/2.0\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', 505],
  ['GET / HTTP/3.0\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', 505],
  ['GET / HTTP/0.9\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', 400],
  ['GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n', 400],
  ['GET / HTTPS/1.1\r\nHost: x\r\n\r\n', 400],
  ['GET / HTTP/1.x\r\nHost: x\r\n\r\n', 400],
];

/** Other malformed heads: whatever the answer (their own tests check it: malformed-input.test.ts), the process must live. */
const OTHERS: readonly string[] = [
  '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage\r\n\r\n',
  '\x00\x01\x02\x03\r\n\r\n',
  'G@T / HTTP/1.1\r\nHost: x\r\n\r\n',
  'get / HTTP/1.1\r\nHost: x\r\n\r\n',
  'FROBNICATE / HTTP/1.1\r\nHost: x\r\n\r\n',
  'PRI * HTTP/1.1\r\nHost: x\r\n\r\n',
  'CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n',
  'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET * HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET x HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET http://[::1/x HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET http://evil@a.example/x HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET http://a.example:99999/x HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET http://a.example:abc/x HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET ftp://a.example/x HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET /%zz%00 HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: evil@x\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: x:port\r\n\r\n',
  'GET / HTTP/1.1\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade:\r\n\r\n',
  'GET http://[::1/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
  'GET x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello',
  'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\nContent-Length: 3\r\n\r\nabc',
  'POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
];

const OK = 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';

describe('malformed input never ends the process', { skip: !opensslAvailable() && 'openssl is needed for the TLS listeners' }, () => {
  let certs: TestCerts;
  let backends: DemoBackend[];
  let dir: string;
  let cli: CliProcess;
  let ports: number[] = [];
  const names = ['plain fast path', 'fastPath: false', 'h2c', 'TLS HTTP/1.1', 'TLS h2 (HTTP/1.1 fallback)'];

  before(async () => {
    certs = makeCerts();
    backends = await startBackends(1);
    dir = mkdtempSync(join(tmpdir(), 'fulcrum-malformed-'));
    const tls = { cert: certs.a.cert, key: certs.a.key };
    const file = join(dir, 'fulcrum.json');
    writeFileSync(file, JSON.stringify({
      listen: [
        { host: '127.0.0.1', port: 0 },
        { host: '127.0.0.1', port: 0, fastPath: false },
        { host: '127.0.0.1', port: 0, http2: true },
        { host: '127.0.0.1', port: 0, tls },
        { host: '127.0.0.1', port: 0, tls, http2: true },
      ],
      backends: [{ url: urlOf(backends[0]!) }],
      healthCheck: { enabled: false },
      accessLog: false,
      logLevel: 'info',
    }));
    cli = startCli(['-c', file]);
    await waitFor(() => /"fulcrum started"/.test(cli.output()) || cli.child.exitCode !== null, 10_000);
    const started = cli.output().split('\n').find((l) => l.includes('"fulcrum started"'));
    assert.ok(started !== undefined, cli.output());
    ports = (JSON.parse(started) as { listen: string[] }).listen.map((u) => Number(new URL(u).port));
  });

  after(async () => {
    if (cli?.child.exitCode === null) cli.child.kill('SIGKILL');
    await Promise.all((backends ?? []).map((b) => b.close()));
    certs?.remove();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const connector = (i: number): Connector => (i < 3 ? plain(ports[i]!) : overTls(ports[i]!));

  const alive = async (): Promise<void> => {
    assert.equal(cli.child.exitCode, null, `the process exited:\n${cli.output()}`);
    for (let i = 0; i < ports.length; i++) {
      const answer = await rawExchange(connector(i), OK);
      assert.equal(answer.status, 200, `${names[i]} still serves: ${answer.text}\n${cli.output()}`);
    }
  };

  test('unsupported versions get 505, HTTP/0.9 and broken request lines 400, on every HTTP/1 entry', async () => {
    for (let i = 0; i < ports.length; i++) {
      for (const [bytes, status] of VERSIONS) {
        const answer = await rawExchange(connector(i), bytes);
        assert.equal(answer.status, status, `${names[i]}: ${JSON.stringify(bytes)} -> ${JSON.stringify(answer.text)}`);
      }
    }
    await alive();
  });

  test('malformed methods, targets and fields: answered or closed, never fatal', async () => {
    for (let i = 0; i < ports.length; i++) {
      for (const bytes of OTHERS) {
        const answer = await rawExchange(connector(i), bytes, 2000);
        assert.ok(answer.closed || answer.status >= 200, `${names[i]}: ${JSON.stringify(bytes)} -> ${JSON.stringify(answer.text)}`);
      }
    }
    await alive();
  });

  test('HTTP/2 streams with malformed pseudo-headers and fields, then an ordinary one', async () => {
    const session = http2.connect(`https://127.0.0.1:${ports[4]!}`, { rejectUnauthorized: false });
    session.on('error', () => { /* a GOAWAY is an answer */ });
    const send = (headers: http2.OutgoingHttpHeaders): Promise<number> => new Promise((resolve) => {
      let req: http2.ClientHttp2Stream;
      try { req = session.request(headers); } catch { resolve(-1); return; } // refused by the client itself
      let status = 0;
      req.on('response', (h) => { status = Number(h[':status']); });
      req.on('error', () => resolve(status));
      req.on('close', () => resolve(status));
      req.resume();
      req.end();
    });
    const cases: http2.OutgoingHttpHeaders[] = [
      { ':path': '*', ':method': 'GET' },
      { ':path': 'x', ':method': 'GET' },
      { ':path': 'http://[::1/x', ':method': 'GET' },
      { ':path': '/', ':method': 'FROB' },
      { ':path': '/', ':method': 'GET', ':authority': 'evil@x' },
      { ':path': '/', ':method': 'GET', ':authority': 'x:99999' },
      { ':path': '/', ':method': 'GET', host: 'y' },
      { ':path': '/', ':method': 'GET', 'content-length': '10' },
      { ':path': '/', ':method': 'CONNECT', ':authority': 'a.example:443' },
    ];
    for (const headers of cases) await send(headers);
    assert.equal(await send({ ':path': '/', ':method': 'GET' }), 200);
    session.close();
    await alive();
  });
});
