/**
 * Upgrades (WebSocket) through the whole request pipeline, black-box through
 * a running balancer: an upgrade is a request like any other, so it meets
 * the same request filters (rate limit), the same choice of backend (hash
 * key, sticky cookie), the same connection limit and queue, the same TLS
 * settings to https:// backends, the same error answer, the same
 * hop-by-hop list, and it is access-logged and published on
 * `fulcrum:request` like any other (once, when the tunnel closes, with the
 * bytes that crossed it).
 *
 * Clients are raw sockets (exact bytes, exact heads); backends are
 * node:http(s) servers that answer plain requests and upgrades alike with
 * `x-backend: <name>`, and on a tunnel send GREETING then echo every byte.
 */
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { createHash } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import type { FulcrumConfigInput, RequestEvent } from '../../src/index.js';
import type { Logger } from '../../src/observe/log.js';
import { startBalancer, request, type TestBalancer } from '../helpers/balancer.js';
import { captureLogger, type CapturedLog } from '../helpers/logs.js';
import { makeCerts, type TestCerts } from '../helpers/certs.js';

// --- WebSocket bits --------------------------------------------------------

const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const acceptOf = (key: string): string => createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');

/** clientFrame: a masked text frame (payload under 126 bytes), as a client sends it: 6 + payload bytes. */
function clientFrame(text: string): Buffer {
  const data = Buffer.from(text);
  assert.ok(data.length < 126);
  const mask = [0x37, 0xfa, 0x21, 0x3d];
  const out = Buffer.alloc(6 + data.length);
  out[0] = 0x81;
  out[1] = 0x80 | data.length;
  for (let i = 0; i < 4; i++) out[2 + i] = mask[i]!;
  for (let i = 0; i < data.length; i++) out[6 + i] = data[i]! ^ mask[i % 4]!;
  return out;
}

/** serverFrame: an unmasked text frame (payload under 126 bytes): 2 + payload bytes. */
function serverFrame(text: string): Buffer {
  const data = Buffer.from(text);
  assert.ok(data.length < 126);
  return Buffer.concat([Buffer.from([0x81, data.length]), data]);
}

/** GREETING: what every backend sends on a tunnel right after its 101 head (in the same write). */
const GREETING = serverFrame('hello from the backend');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** settle waits until `cond` holds or `ms` pass, without throwing (the assertion after it says what failed). */
async function settle(cond: () => boolean, ms = 1000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await sleep(10);
}

// --- cleanup ---------------------------------------------------------------

/** Everything a test opens registers its cleanup here; afterEach runs them newest first. */
const cleanups: (() => Promise<void> | void)[] = [];
async function cleanupAll(): Promise<void> {
  while (cleanups.length > 0) {
    try { await cleanups.pop()!(); } catch { /* keep cleaning */ }
  }
}

// --- backends ----------------------------------------------------------------

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  /** clientCN: the CN of the client certificate the balancer presented (TLS backends). */
  readonly clientCN: string | null;
  /** sni: the server name the balancer sent (TLS backends). */
  readonly sni: string | null;
}

interface WsBackend {
  readonly name: string;
  readonly url: string;
  /** plain: the plain requests it received; upgrades: the upgrade requests (its 'upgrade' events). */
  readonly plain: Seen[];
  readonly upgrades: Seen[];
  /** tunnels: its open tunnel sockets. */
  readonly tunnels: Set<Duplex>;
  close(): Promise<void>;
}

function seen(req: IncomingMessage): Seen {
  const tlsSocket = (req.socket as TLSSocket).encrypted === true ? req.socket as TLSSocket : null;
  const cn = tlsSocket?.getPeerCertificate()?.subject?.CN;
  const sni = (tlsSocket as (TLSSocket & { servername?: string | false }) | null)?.servername;
  return {
    method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders,
    clientCN: typeof cn === 'string' ? cn : null, sni: typeof sni === 'string' ? sni : null,
  };
}

/**
 * startWsBackend: plain requests get 200 `{name}` with `x-backend: <name>`
 * (`/hop`: a 403 whose Connection names X-Internal, with Proxy-Authenticate);
 * upgrades get a 101 with `x-backend: <name>` and GREETING, then an echo of
 * every byte (`/hop`: the same 403; `/hop101`: a 101 whose Connection names
 * X-Internal, with Keep-Alive).
 */
async function startWsBackend(name: string, tlsOptions?: https.ServerOptions): Promise<WsBackend> {
  const plain: Seen[] = [];
  const upgrades: Seen[] = [];
  const tunnels = new Set<Duplex>();
  const handler = (req: IncomingMessage, res: http.ServerResponse): void => {
    plain.push(seen(req));
    req.resume();
    const s = plain[plain.length - 1]!;
    if (req.url === '/hop') {
      res.writeHead(403, { 'x-backend': name, connection: 'close, X-Internal', 'x-internal': '1', 'proxy-authenticate': 'Basic realm="x"', 'content-length': '4' });
      res.end('nope');
      return;
    }
    const body = JSON.stringify({ name, clientCN: s.clientCN, sni: s.sni });
    res.writeHead(200, { 'x-backend': name, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const server = tlsOptions === undefined ? http.createServer(handler) : https.createServer(tlsOptions, handler);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    upgrades.push(seen(req));
    if (req.url === '/hop') {
      socket.end('HTTP/1.1 403 Forbidden\r\nx-backend: ' + name + '\r\nConnection: close, X-Internal\r\nX-Internal: 1\r\nProxy-Authenticate: Basic realm="x"\r\nContent-Length: 4\r\n\r\nnope');
      return;
    }
    tunnels.add(socket);
    socket.on('close', () => tunnels.delete(socket));
    const connection = req.url === '/hop101' ? 'Connection: Upgrade, X-Internal\r\nX-Internal: 1\r\nKeep-Alive: timeout=5\r\n' : 'Connection: Upgrade\r\n';
    const key = String(req.headers['sec-websocket-key'] ?? '');
    socket.write(Buffer.concat([
      Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n${connection}Sec-WebSocket-Accept: ${acceptOf(key)}\r\nx-backend: ${name}\r\n\r\n`),
      GREETING,
    ]));
    if (head.length > 0) socket.write(head);
    socket.on('data', (d: Buffer) => socket.write(d));
    socket.on('end', () => socket.end());
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const backend: WsBackend = {
    name,
    url: `${tlsOptions === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    plain, upgrades, tunnels,
    close: async () => {
      for (const s of tunnels) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  cleanups.push(() => backend.close());
  return backend;
}

async function startWsBackends(n: number): Promise<WsBackend[]> {
  const out: WsBackend[] = [];
  for (let i = 1; i <= n; i++) out.push(await startWsBackend(`be${i}`));
  return out;
}

async function startLb(config: FulcrumConfigInput, logger?: Logger): Promise<TestBalancer> {
  const lb = await startBalancer({ healthCheck: { enabled: false }, ...config }, logger === undefined ? {} : { logger });
  cleanups.push(() => lb.close());
  return lb;
}

// --- raw clients -------------------------------------------------------------

interface Head {
  readonly statusLine: string;
  readonly status: number;
  /** headers: lower-case names; repeated fields joined with ", " (set-cookie: see setCookies). */
  readonly headers: Record<string, string>;
  readonly setCookies: string[];
  readonly names: string[];
}

function parseHead(text: string): Head {
  const lines = text.split('\r\n');
  const statusLine = lines[0]!;
  const headers: Record<string, string> = {};
  const setCookies: string[] = [];
  const names: string[] = [];
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    names.push(name);
    if (name === 'set-cookie') setCookies.push(value);
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { statusLine, status: Number(statusLine.split(' ')[1]), headers, setCookies, names };
}

/** RawClient: one TCP connection to the balancer, every byte it receives kept. */
class RawClient {
  readonly socket: net.Socket;
  data = Buffer.alloc(0);
  headEnd = -1;
  isClosed = false;
  readonly closed: Promise<void>;
  #wake: (() => void)[] = [];

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('error', () => this.socket.destroy());
    this.socket.on('data', (d: Buffer) => {
      this.data = Buffer.concat([this.data, d]);
      if (this.headEnd < 0) {
        const i = this.data.indexOf('\r\n\r\n');
        if (i >= 0) this.headEnd = i + 4;
      }
      this.#notify();
    });
    this.closed = new Promise((resolve) => this.socket.once('close', () => { this.isClosed = true; this.#notify(); resolve(); }));
    cleanups.push(() => { this.socket.destroy(); });
  }

  #notify(): void {
    for (const w of this.#wake.splice(0)) w();
  }

  /** until waits for `cond` (re-checked on every byte and at close); fails after `ms` saying `what`. */
  async until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; received: ${JSON.stringify(this.data.toString('latin1').slice(0, 400))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 20);
        this.#wake.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  send(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  async head(ms = 3000): Promise<Head> {
    await this.until(() => this.headEnd >= 0 || this.isClosed, 'a response head', ms);
    assert.ok(this.headEnd >= 0, `the connection closed without a response head; received: ${JSON.stringify(this.data.toString('latin1'))}`);
    return parseHead(this.data.subarray(0, this.headEnd - 4).toString('latin1'));
  }

  /** after: the bytes received after the response head. */
  get after(): Buffer {
    return this.headEnd < 0 ? Buffer.alloc(0) : this.data.subarray(this.headEnd);
  }

  /** body: the response body, by Content-Length, or else up to the close. */
  async body(head: Head): Promise<string> {
    const length = head.headers['content-length'];
    if (length !== undefined) await this.until(() => this.after.length >= Number(length) || this.isClosed, 'the response body');
    else await this.until(() => this.isClosed, 'the connection to close after a body without Content-Length');
    return this.after.subarray(0, length === undefined ? undefined : Number(length)).toString('utf8');
  }
}

/** upgradeHead: a WebSocket upgrade request head; `extra` lines replace or add headers (Connection included). */
function upgradeHead(path: string, extra: [string, string][] = []): string {
  const names = new Set(extra.map(([n]) => n.toLowerCase()));
  const base: [string, string][] = [
    ['Host', 'site.test'],
    ['Connection', 'Upgrade'],
    ['Upgrade', 'websocket'],
    ['Sec-WebSocket-Version', '13'],
    ['Sec-WebSocket-Key', WS_KEY],
  ];
  const all = [...base.filter(([n]) => !names.has(n.toLowerCase())), ...extra];
  return `GET ${path} HTTP/1.1\r\n${all.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
}

/** openUpgrade sends an upgrade request and returns the client and the head of its answer. */
async function openUpgrade(port: number, path = '/ws', extra: [string, string][] = [], trailing?: Buffer): Promise<{ client: RawClient; head: Head }> {
  const client = new RawClient(port);
  const headBytes = Buffer.from(upgradeHead(path, extra), 'latin1');
  client.send(trailing === undefined ? headBytes : Buffer.concat([headBytes, trailing]));
  return { client, head: await client.head() };
}

/** rawGet: a plain GET on its own connection (Connection: close), head and body. */
async function rawGet(port: number, path: string, extra: [string, string][] = []): Promise<{ head: Head; body: string }> {
  const client = new RawClient(port);
  const lines: [string, string][] = [['Host', 'site.test'], ['Connection', 'close'], ...extra];
  client.send(`GET ${path} HTTP/1.1\r\n${lines.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`);
  const head = await client.head();
  return { head, body: await client.body(head) };
}

/** closeTunnel ends a tunnel from the client side and waits until it is closed. */
async function closeTunnel(client: RawClient): Promise<void> {
  client.socket.end();
  await Promise.race([client.closed, sleep(2000)]);
  assert.ok(client.isClosed, 'the tunnel closed after the client ended it');
}

const accessLines = (log: CapturedLog): Record<string, unknown>[] => log.lines.filter((l) => l.type === 'access');

function subscribeRequests(): RequestEvent[] {
  const events: RequestEvent[] = [];
  const onMessage = (m: unknown): void => { events.push(m as RequestEvent); };
  diagnostics.subscribe('fulcrum:request', onMessage);
  cleanups.push(() => { diagnostics.unsubscribe('fulcrum:request', onMessage); });
  return events;
}

const OPTS = { timeout: 8000 };

// --- 1. request filters --------------------------------------------------------

describe('upgrades go through the request filters (rate limit)', () => {
  afterEach(cleanupAll);

  test('a client already refused 429 gets 429 for its upgrades too, the same answer, and the backend sees no upgrade', OPTS, async () => {
    const [b] = await startWsBackends(1);
    const lb = await startLb({ backends: [b!.url], rateLimit: { rate: 1, per: '10s', key: 'ip' } });
    assert.equal((await request(`${lb.url}/`)).status, 200);
    const plain = await request(`${lb.url}/`);
    assert.equal(plain.status, 429);
    const code = plain.headers['x-fulcrum-error'];
    assert.equal(code, 'FULCRUM_ERR_RATE_LIMITED');
    const limitHeaders = ['retry-after', 'ratelimit-policy', 'ratelimit'];
    for (const name of limitHeaders) assert.ok(plain.headers[name] !== undefined, `the plain 429 carries ${name}`);

    for (let i = 1; i <= 5; i++) {
      const { client, head } = await openUpgrade(lb.port);
      assert.equal(head.status, 429, `upgrade ${i} over the limit: expected 429, got "${head.statusLine}"`);
      assert.equal(head.headers['x-fulcrum-error'], code, `upgrade ${i}: X-Fulcrum-Error`);
      for (const name of limitHeaders) assert.ok(head.headers[name] !== undefined, `upgrade ${i}: the 429 carries ${name}, as the plain 429 does`);
      assert.equal(head.headers['ratelimit-policy'], plain.headers['ratelimit-policy']);
      assert.equal(await client.body(head), plain.body, `upgrade ${i}: the body of the plain 429`);
    }
    assert.equal(b!.upgrades.length, 0, 'no upgrade request reached the backend');
    assert.equal(b!.plain.length, 1);
  });

  test('an upgrade as the first request consumes the budget: a plain request right after it gets 429', OPTS, async () => {
    const [b] = await startWsBackends(1);
    const lb = await startLb({ backends: [b!.url], rateLimit: { rate: 1, per: '10s', key: 'ip' } });
    const { client, head } = await openUpgrade(lb.port);
    assert.equal(head.status, 101, head.statusLine);
    const plain = await request(`${lb.url}/`);
    assert.equal(plain.status, 429, `the plain request after an upgrade that took the only token: expected 429, got ${plain.status}`);
    assert.equal(plain.headers['x-fulcrum-error'], 'FULCRUM_ERR_RATE_LIMITED');
    assert.equal(b!.plain.length, 0);
    await closeTunnel(client);
  });
});

// --- 2 and 3. choice of backend ---------------------------------------------------

describe('upgrades choose their backend like plain requests', () => {
  afterEach(cleanupAll);

  test('consistent-hash with hashKey header:X-User: the upgrade with key k reaches the backend a plain request with key k does', OPTS, async () => {
    const backends = await startWsBackends(3);
    const lb = await startLb({ backends: backends.map((b) => b.url), algorithm: 'consistent-hash', hashKey: 'header:X-User' });
    const keys = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy'];
    const plainOf: Record<string, string> = {};
    const upgradeOf: Record<string, string> = {};
    for (const k of keys) {
      const plain = await request(`${lb.url}/`, { headers: { 'x-user': k } });
      assert.equal(plain.status, 200);
      plainOf[k] = String(plain.headers['x-backend']);
      const { client, head } = await openUpgrade(lb.port, '/ws', [['X-User', k]]);
      assert.equal(head.status, 101, head.statusLine);
      upgradeOf[k] = head.headers['x-backend']!;
      await closeTunnel(client);
    }
    assert.ok(new Set(Object.values(plainOf)).size >= 2, `the keys spread over the backends (else this test shows nothing): ${JSON.stringify(plainOf)}`);
    assert.deepEqual(upgradeOf, plainOf, 'backend per key: upgrades (actual) vs plain requests (expected)');
  });

  test('sticky: upgrades carrying the sticky cookie all reach the pinned backend (and are not re-pinned)', OPTS, async () => {
    const backends = await startWsBackends(3);
    const lb = await startLb({ backends: backends.map((b) => b.url), sticky: {} });
    const first = await request(`${lb.url}/`);
    const setCookie = (first.headers['set-cookie'] ?? []).find((c) => c.startsWith('fulcrum_sticky='));
    assert.ok(setCookie !== undefined, 'a plain response pins the client');
    const cookie = setCookie.split(';')[0]!;
    const pinned = String(first.headers['x-backend']);
    const reached: string[] = [];
    for (let i = 0; i < 6; i++) {
      const { client, head } = await openUpgrade(lb.port, '/ws', [['Cookie', `theme=dark; ${cookie}`]]);
      assert.equal(head.status, 101, head.statusLine);
      reached.push(head.headers['x-backend']!);
      assert.deepEqual(head.setCookies.filter((c) => c.startsWith('fulcrum_sticky=')), [], 'an upgrade already pinned to the backend that answered is not re-pinned');
      await closeTunnel(client);
    }
    assert.deepEqual(reached, Array(6).fill(pinned), `6 upgrades with the cookie for ${pinned}`);
  });

  test('sticky: an upgrade without the cookie is pinned by its 101, and later plain requests follow the pin', OPTS, async () => {
    const backends = await startWsBackends(3);
    const lb = await startLb({ backends: backends.map((b) => b.url), sticky: {} });
    const { client, head } = await openUpgrade(lb.port);
    assert.equal(head.status, 101, head.statusLine);
    const answered = head.headers['x-backend']!;
    const setCookie = head.setCookies.find((c) => c.startsWith('fulcrum_sticky='));
    assert.ok(setCookie !== undefined, `the 101 sets the sticky cookie; its head: ${JSON.stringify(head.headers)}`);
    assert.match(setCookie, /; Path=\/; HttpOnly; SameSite=Lax$/, 'the same attributes as on plain responses');
    const cookie = setCookie.split(';')[0]!;
    await closeTunnel(client);
    for (let i = 0; i < 4; i++) {
      const res = await request(`${lb.url}/`, { headers: { cookie } });
      assert.equal(res.headers['x-backend'], answered, `plain request ${i + 1} with the 101's cookie`);
    }
  });
});

// --- 4. connection limit and queue ------------------------------------------------

describe('upgrades respect maxConnectionsPerBackend and wait in the queue', () => {
  afterEach(cleanupAll);

  test('while a tunnel holds the only slot, a second upgrade waits and is refused like a plain request that waited', OPTS, async () => {
    const [b] = await startWsBackends(1);
    const lb = await startLb({ backends: [b!.url], limits: { maxConnectionsPerBackend: 1, queueTimeout: '300ms' } });
    const first = await openUpgrade(lb.port);
    assert.equal(first.head.status, 101, first.head.statusLine);

    let t0 = performance.now();
    const plain = await request(`${lb.url}/`);
    const plainWaited = performance.now() - t0;
    assert.ok(plainWaited >= 250, `the plain request waited in the queue (${plainWaited.toFixed(0)}ms)`);
    assert.ok(plain.status >= 500, `the plain request is refused: ${plain.status}`);
    const code = plain.headers['x-fulcrum-error'];
    assert.equal(code, 'FULCRUM_ERR_QUEUE_TIMEOUT');

    t0 = performance.now();
    const second = await openUpgrade(lb.port);
    const upgradeWaited = performance.now() - t0;
    assert.equal(second.head.status, plain.status, `the second upgrade: expected ${plain.status} like the plain request, got "${second.head.statusLine}"`);
    assert.equal(second.head.headers['x-fulcrum-error'], code);
    assert.ok(upgradeWaited >= 250, `the upgrade waited in the queue first (${upgradeWaited.toFixed(0)}ms)`);
    assert.equal(b!.upgrades.length, 1, 'the backend saw only the first upgrade');
    assert.equal(b!.plain.length, 0);
    assert.equal(first.client.isClosed, false, 'the first tunnel is untouched');
    await closeTunnel(first.client);
  });

  test('a queued upgrade goes through when the tunnel holding the slot closes within the queue timeout', OPTS, async () => {
    const [b] = await startWsBackends(1);
    const lb = await startLb({ backends: [b!.url], limits: { maxConnectionsPerBackend: 1, queueTimeout: '1s' } });
    const first = await openUpgrade(lb.port);
    assert.equal(first.head.status, 101, first.head.statusLine);
    const second = new RawClient(lb.port);
    second.send(upgradeHead('/ws'));
    await sleep(150);
    assert.equal(b!.upgrades.length, 1, 'the second upgrade waits in the queue while the slot is taken: it must not reach the backend yet');
    assert.equal(second.headEnd, -1, `the second upgrade has no answer yet; received: ${JSON.stringify(second.data.toString('latin1').slice(0, 200))}`);
    await closeTunnel(first.client);
    const head = await second.head();
    assert.equal(head.status, 101, head.statusLine);
    assert.equal(b!.upgrades.length, 2);
    await second.until(() => second.after.length >= GREETING.length, 'the greeting on the second tunnel');
    await closeTunnel(second);
  });
});

// --- 5. access log and request event -------------------------------------------------

describe('upgrades are access-logged and published on fulcrum:request, at tunnel close', () => {
  afterEach(cleanupAll);

  /** tunnelSession: one upgrade to `path`, GREETING, three frames echoed, open a little longer, closed by the client. */
  const tunnelSession = async (lb: TestBalancer, path: string, during: () => void): Promise<{ openFor: number; sent: number }> => {
    const { client, head } = await openUpgrade(lb.port, path);
    assert.equal(head.status, 101, head.statusLine);
    const opened = performance.now();
    await client.until(() => client.after.length >= GREETING.length, 'the greeting');
    const frames = [clientFrame('one'), clientFrame('two two'), clientFrame('x'.repeat(100))];
    let sent = 0;
    for (const f of frames) {
      client.send(f);
      sent += f.length;
      await client.until(() => client.after.length >= GREETING.length + sent, 'the echo');
    }
    assert.deepEqual(client.after, Buffer.concat([GREETING, ...frames]), 'the tunnel carried the bytes unchanged');
    await sleep(120);
    during();
    // Measured from the 101 to the client's end: strictly inside the balancer's request-to-close span.
    const openFor = performance.now() - opened;
    await closeTunnel(client);
    return { openFor, sent };
  };

  test('one access line when the tunnel closes: GET, url, 101, backend, client, ms, attempts, bytesIn and bytesOut', OPTS, async () => {
    const [b] = await startWsBackends(1);
    const log = captureLogger('warn');
    const lb = await startLb({ backends: [b!.url], accessLog: true }, log.logger);
    const { openFor, sent } = await tunnelSession(lb, '/ws/room?id=7', () => {
      assert.equal(accessLines(log).length, 0, 'no access line while the tunnel is open');
    });
    await settle(() => accessLines(log).length > 0);
    const lines = accessLines(log);
    assert.equal(lines.length, 1, 'exactly one access line for the upgrade, at tunnel close');
    const line = lines[0]!;
    assert.equal(line.method, 'GET');
    assert.equal(line.url, '/ws/room?id=7');
    assert.equal(line.status, 101);
    assert.equal(line.backend, 'b1');
    assert.equal(line.client, '127.0.0.1');
    assert.equal(line.attempts, 1);
    assert.equal(line.error, undefined);
    assert.equal(typeof line.ms, 'number');
    assert.ok((line.ms as number) >= openFor, `ms (${String(line.ms)}) covers the tunnel's life (${openFor.toFixed(1)}ms)`);
    assert.equal(line.bytesIn, sent, 'bytesIn: bytes from the client after its request head');
    assert.equal(line.bytesOut, GREETING.length + sent, 'bytesOut: bytes to the client after the 101 head');
  });

  test('one fulcrum:request event, published when the tunnel closes (not at the 101), with status 101 and the whole duration', OPTS, async () => {
    const [b] = await startWsBackends(1);
    const lb = await startLb({ backends: [b!.url] });
    const events = subscribeRequests();
    const { openFor } = await tunnelSession(lb, '/ws/room?id=7', () => {
      assert.equal(events.length, 0, 'no request event while the tunnel is open: it is published at close');
    });
    await settle(() => events.length > 0);
    assert.equal(events.length, 1, 'exactly one request event for the upgrade, at tunnel close');
    const event = events[0]!;
    assert.equal(event.status, 101);
    assert.equal(event.backend, 'b1');
    assert.equal(event.method, 'GET');
    assert.equal(event.path, '/ws/room?id=7');
    assert.equal(event.attempts, 1);
    assert.equal(event.error, null);
    assert.ok(event.durationMs >= openFor, `durationMs (${event.durationMs}) covers the tunnel's life (${openFor.toFixed(1)}ms)`);
  });

  test('bytes the client sends along with its request head count in bytesIn, and reach the backend', OPTS, async () => {
    const [b] = await startWsBackends(1);
    const log = captureLogger('warn');
    const lb = await startLb({ backends: [b!.url], accessLog: true }, log.logger);
    const early = clientFrame('sent with the head');
    const { client, head } = await openUpgrade(lb.port, '/ws', [], early);
    assert.equal(head.status, 101, head.statusLine);
    const later = clientFrame('later');
    await client.until(() => client.after.length >= GREETING.length + early.length, 'the echo of the early bytes');
    client.send(later);
    const total = early.length + later.length;
    await client.until(() => client.after.length >= GREETING.length + total, 'the echo');
    assert.deepEqual(client.after, Buffer.concat([GREETING, early, later]));
    await closeTunnel(client);
    await settle(() => accessLines(log).length > 0);
    const lines = accessLines(log);
    assert.equal(lines.length, 1, 'one access line at tunnel close');
    assert.equal(lines[0]!.bytesIn, total);
    assert.equal(lines[0]!.bytesOut, GREETING.length + total);
  });

  test('a refused upgrade (no backend) is access-logged and published like the same refusal of a plain request', OPTS, async () => {
    const [b] = await startWsBackends(1);
    const log = captureLogger('warn');
    const lb = await startLb({ backends: [{ url: b!.url, healthy: false }], accessLog: true }, log.logger);
    const events = subscribeRequests();
    const plain = await request(`${lb.url}/plain`);
    assert.equal(plain.status, 503);
    const { client, head } = await openUpgrade(lb.port, '/ws');
    assert.equal(head.status, 503);
    await client.body(head);
    await settle(() => accessLines(log).length >= 2 && events.length >= 2);
    const lines = accessLines(log);
    assert.equal(lines.length, 2, `an access line for the plain request and one for the upgrade: ${JSON.stringify(lines)}`);
    const pick = (l: Record<string, unknown>): unknown[] => [l.method, l.status, l.backend, l.client, l.attempts, l.error];
    assert.equal(lines[1]!.url, '/ws');
    assert.deepEqual(pick(lines[1]!), pick(lines[0]!), 'the upgrade\'s line (actual) vs the plain request\'s (expected)');
    assert.equal(lines[1]!.error, 'FULCRUM_ERR_NO_BACKEND');
    assert.equal(events.length, 2, 'a request event for each');
    const pickEvent = (e: RequestEvent): unknown[] => [e.method, e.status, e.backend, e.attempts, e.error];
    assert.deepEqual(pickEvent(events[1]!), pickEvent(events[0]!));
    assert.equal(events[1]!.path, '/ws');
  });
});

// --- 6. TLS to backends ----------------------------------------------------------------

describe('upgrades to https:// backends use the backend TLS settings', () => {
  let certs: TestCerts;
  before(() => { certs = makeCerts(); });
  after(() => certs.remove());
  afterEach(cleanupAll);

  /** A WSS backend: certificate for backend.test only (no IP), signed by the test CA, and it requires a client certificate. */
  const startWss = (): Promise<WsBackend> => startWsBackend('wss', {
    cert: certs.read(certs.backend.cert), key: certs.read(certs.backend.key),
    ca: certs.read(certs.ca), requestCert: true, rejectUnauthorized: true,
  });

  const check = async (lb: TestBalancer, b: WsBackend): Promise<void> => {
    const plain = await request(`${lb.url}/`);
    assert.equal(plain.status, 200, `the setup is right: a plain request passes (${plain.body})`);
    assert.deepEqual(JSON.parse(plain.body), { name: 'wss', clientCN: 'fulcrum-client', sni: 'backend.test' });
    const { client, head } = await openUpgrade(lb.port);
    assert.equal(head.status, 101, `the upgrade: expected 101, got "${head.statusLine}" ${client.after.toString('utf8').trim()}`);
    assert.equal(b.upgrades.length, 1);
    assert.equal(b.upgrades[0]!.clientCN, 'fulcrum-client', 'the upgrade presented the client certificate');
    assert.equal(b.upgrades[0]!.sni, 'backend.test', 'the upgrade sent the configured servername');
    await client.until(() => client.after.length >= GREETING.length, 'the greeting');
    const frame = clientFrame('over tls');
    client.send(frame);
    await client.until(() => client.after.length >= GREETING.length + frame.length, 'the echo');
    await closeTunnel(client);
  };

  test('backendTls ca, servername, cert and key apply to the upgrade as to a plain request', OPTS, async () => {
    const b = await startWss();
    const lb = await startLb({
      backends: [b.url], retries: { attempts: 0 },
      backendTls: { ca: certs.ca, servername: 'backend.test', cert: certs.client.cert, key: certs.client.key },
    });
    await check(lb, b);
  });

  test('a backend\'s own tls settings apply to the upgrade as to a plain request', OPTS, async () => {
    const b = await startWss();
    const lb = await startLb({
      backends: [{ url: b.url, tls: { ca: certs.ca, servername: 'backend.test', cert: certs.client.cert, key: certs.client.key } }],
      retries: { attempts: 0 },
    });
    await check(lb, b);
  });
});

// --- 7. one error answer ---------------------------------------------------------------

describe('an upgrade refused gets the same answer as a plain request refused', () => {
  afterEach(cleanupAll);

  const compare = async (lb: TestBalancer): Promise<void> => {
    const plain = await rawGet(lb.port, '/');
    assert.equal(plain.head.status, 503);
    assert.equal(plain.head.headers['x-fulcrum-error'], 'FULCRUM_ERR_NO_BACKEND');
    const { client, head } = await openUpgrade(lb.port);
    const body = await client.body(head);
    const answer = (h: Head, b: string): unknown => ({ statusLine: h.statusLine, contentType: h.headers['content-type'], error: h.headers['x-fulcrum-error'], body: b });
    assert.deepEqual(answer(head, body), answer(plain.head, plain.body), 'the upgrade\'s answer (actual) vs the plain request\'s (expected)');
  };

  test('no healthy backend (the only one is down)', OPTS, async () => {
    const [b] = await startWsBackends(1);
    await compare(await startLb({ backends: [{ url: b!.url, healthy: false }] }));
  });

  test('no backend at all (an empty backend list)', OPTS, async () => {
    await compare(await startLb({ backends: [] }));
  });
});

// --- 8. one hop-by-hop list ------------------------------------------------------------

describe('upgrades drop the same hop-by-hop headers as plain requests, both ways', () => {
  afterEach(cleanupAll);

  test('headers the client\'s Connection names, Keep-Alive and Proxy-Connection do not reach the backend', OPTS, async () => {
    const [b] = await startWsBackends(1);
    const lb = await startLb({ backends: [b!.url] });
    const hop: [string, string][] = [['X-Secret', '1'], ['Keep-Alive', 'timeout=5'], ['Proxy-Connection', 'keep-alive'], ['X-Kept', 'yes']];
    const plain = await rawGet(lb.port, '/', [['Connection', 'close, X-Secret'], ...hop]);
    assert.equal(plain.head.status, 200);
    const p = b!.plain[0]!.headers;
    assert.deepEqual([p['x-secret'], p['keep-alive'], p['proxy-connection'], p['x-kept']], [undefined, undefined, undefined, 'yes'], 'the plain request');

    const { client, head } = await openUpgrade(lb.port, '/ws', [['Connection', 'Upgrade, X-Secret'], ...hop]);
    assert.equal(head.status, 101, head.statusLine);
    const u = b!.upgrades[0]!.headers;
    assert.deepEqual([u['x-secret'], u['keep-alive'], u['proxy-connection'], u['x-kept']], [undefined, undefined, undefined, 'yes'], 'the upgrade');
    assert.match(String(u.connection), /^upgrade$/i);
    assert.equal(u.upgrade, 'websocket');
    assert.equal(u['sec-websocket-key'], WS_KEY);
    await closeTunnel(client);
  });

  test('a non-101 answer to an upgrade drops the headers its Connection names and Proxy-Authenticate, as a plain response does', OPTS, async () => {
    const [b] = await startWsBackends(1);
    const lb = await startLb({ backends: [b!.url], retries: { attempts: 0 } });
    const plain = await rawGet(lb.port, '/hop');
    assert.equal(plain.head.status, 403);
    assert.equal(plain.body, 'nope');
    assert.deepEqual([plain.head.headers['x-internal'], plain.head.headers['proxy-authenticate']], [undefined, undefined], 'the plain response');
    const { client, head } = await openUpgrade(lb.port, '/hop');
    assert.equal(head.status, 403);
    assert.equal(await client.body(head), 'nope');
    assert.deepEqual([head.headers['x-internal'], head.headers['proxy-authenticate']], [undefined, undefined], `the upgrade's answer: ${JSON.stringify(head.headers)}`);
  });

  test('a 101 keeps Connection: Upgrade and Upgrade but drops what its Connection names and Keep-Alive', OPTS, async () => {
    const [b] = await startWsBackends(1);
    const lb = await startLb({ backends: [b!.url] });
    const { client, head } = await openUpgrade(lb.port, '/hop101');
    assert.equal(head.status, 101, head.statusLine);
    assert.match(head.headers.connection ?? '', /^upgrade$/i);
    assert.equal(head.headers.upgrade, 'websocket');
    assert.equal(head.headers['sec-websocket-accept'], acceptOf(WS_KEY));
    assert.deepEqual([head.headers['x-internal'], head.headers['keep-alive']], [undefined, undefined], `the 101's head: ${JSON.stringify(head.headers)}`);
    await client.until(() => client.after.length >= GREETING.length, 'the greeting');
    await closeTunnel(client);
  });
});
