/**
 * Routing is one phase for every protocol: WebSocket upgrades (on the fast
 * path and on node:http) and HTTP/2 streams are routed, rewritten and
 * refused like plain HTTP/1.1 requests, and HTTP/2 routes by `:authority`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { WebSocket, WebSocketServer } from 'ws';
import { startBalancer, type TestBalancer } from '../helpers/balancer.js';

interface WsBackend { url: string; paths: string[]; close(): Promise<void> }

/** wsBackend answers plain requests with its name and echoes WebSocket messages prefixed with it. */
async function wsBackend(name: string): Promise<WsBackend> {
  const paths: string[] = [];
  const server = http.createServer((req, res) => { paths.push(req.url!); res.end(`${name} ${req.url}`); });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (socket, req) => {
    paths.push(`ws:${req.url}`);
    socket.on('message', (data) => socket.send(`${name}:${req.url}:${data.toString()}`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    paths,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** wsExchange opens a WebSocket, sends one message, and returns the answer, or the HTTP status that refused the upgrade. */
function wsExchange(url: string, host: string, message: string): Promise<{ reply?: string; status?: number; error?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers: { host } });
    ws.on('open', () => ws.send(message));
    ws.on('message', (data) => { resolve({ reply: data.toString() }); ws.close(); });
    ws.on('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode, error: String(res.headers['x-fulcrum-error']) });
      res.resume();
      ws.terminate();
    });
    ws.on('error', () => { /* reported through unexpected-response or the close */ });
  });
}

async function h2Get(port: number, authority: string, path: string): Promise<{ status: number; body: string; error?: string }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const stream = session.request({ ':path': path, ':authority': authority });
    const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
    let body = '';
    stream.setEncoding('utf8');
    for await (const chunk of stream) body += chunk as string;
    const error = headers['x-fulcrum-error'];
    return { status: Number(headers[':status']), body, ...(typeof error === 'string' ? { error } : {}) };
  } finally {
    session.close();
  }
}

describe('routing across protocols', () => {
  let chat: WsBackend;
  let api: WsBackend;
  let web: WsBackend;
  let tb: TestBalancer;
  let slowPathPort: number;
  let h2cPort: number;
  const off = { healthCheck: { enabled: false } };

  before(async () => {
    [chat, api, web] = await Promise.all([wsBackend('chat'), wsBackend('api'), wsBackend('web')]);
    tb = await startBalancer({
      listen: [
        { host: '127.0.0.1', port: 0 },
        { host: '127.0.0.1', port: 0, fastPath: false },
        { host: '127.0.0.1', port: 0, http2: true },
      ],
      services: {
        chat: { backends: [chat.url], ...off },
        api: { backends: [api.url], ...off },
        web: { backends: [web.url], ...off },
      },
      routes: [
        { name: 'chat', match: { hosts: ['chat.example.com'], path: { prefix: '/live' } }, service: 'chat', rewrite: { stripPrefix: '/live' } },
        { name: 'chat-private', match: { hosts: ['chat.example.com'], path: { prefix: '/private' } }, deny: ['127.0.0.0/8'], service: 'chat' },
        { name: 'api', match: { hosts: ['api.example.com'] }, service: 'api' },
        { name: 'web', match: { hosts: ['www.example.com'] }, service: 'web' },
      ],
    });
    slowPathPort = tb.balancer.listeners[1]!.port;
    h2cPort = tb.balancer.listeners[2]!.port;
  });
  after(async () => { await tb.close(); await Promise.all([chat.close(), api.close(), web.close()]); });

  for (const [label, port] of [['fast path', () => tb.port], ['node:http', () => slowPathPort]] as const) {
    test(`WebSocket upgrades are routed by host and path and rewritten (${label})`, async () => {
      const res = await wsExchange(`ws://127.0.0.1:${port()}/live/room/1`, 'chat.example.com', 'hi');
      assert.equal(res.reply, 'chat:/room/1:hi');
      const other = await wsExchange(`ws://127.0.0.1:${port()}/live/room/1`, 'api.example.com', 'hi');
      assert.equal(other.reply, 'api:/live/room/1:hi', 'the same path on another host goes to that host’s service, not rewritten');
    });

    test(`a WebSocket upgrade with no route is 404 and one a deny list refuses is 403, before any backend (${label})`, async () => {
      const before = chat.paths.length + api.paths.length + web.paths.length;
      const none = await wsExchange(`ws://127.0.0.1:${port()}/live/x`, 'nowhere.example.com', 'hi');
      assert.deepEqual(none, { status: 404, error: 'FULCRUM_ERR_NO_ROUTE' });
      const denied = await wsExchange(`ws://127.0.0.1:${port()}/private/x`, 'chat.example.com', 'hi');
      assert.deepEqual(denied, { status: 403, error: 'FULCRUM_ERR_FORBIDDEN' });
      assert.equal(chat.paths.length + api.paths.length + web.paths.length, before);
    });
  }

  test('HTTP/2 routes by :authority (case, port and trailing dot ignored) and gets the same rewrites and refusals', async () => {
    assert.deepEqual(await h2Get(h2cPort, 'api.example.com', '/v1/x'), { status: 200, body: 'api /v1/x' });
    assert.deepEqual(await h2Get(h2cPort, 'WWW.Example.COM.:8443', '/page'), { status: 200, body: 'web /page' });
    assert.deepEqual(await h2Get(h2cPort, 'chat.example.com', '/live/feed'), { status: 200, body: 'chat /feed' });
    const none = await h2Get(h2cPort, 'nowhere.example.com', '/');
    assert.equal(none.status, 404);
    assert.equal(none.error, 'FULCRUM_ERR_NO_ROUTE');
    const denied = await h2Get(h2cPort, 'chat.example.com', '/private/x');
    assert.equal(denied.status, 403);
    assert.equal(denied.error, 'FULCRUM_ERR_FORBIDDEN');
  });
});
