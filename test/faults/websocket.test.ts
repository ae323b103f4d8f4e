/** WebSocket (Upgrade) proxying: echo, subprotocols, close from either side, non-101 answers, no leaks. */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import WebSocket from 'ws';
import { startBackends, urlOf, type DemoBackend } from '../helpers/backends.js';
import { startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';

describe('WebSocket through the balancer', () => {
  let backends: DemoBackend[];
  let lb: TestBalancer;
  before(async () => {
    backends = await startBackends(1);
    lb = await startBalancer({ backends: backends.map(urlOf), healthCheck: { enabled: false } });
  });
  after(async () => {
    await lb.close();
    await Promise.all(backends.map((b) => b.close()));
  });
  const inflight = (): number => lb.balancer.pool.snapshot[0]!.state.inflight;

  test('echo, subprotocol negotiation and X-Forwarded-For', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${lb.port}/ws`, ['chat.v2', 'chat.v1']);
    const [hello] = await once(ws, 'message');
    const greeting = JSON.parse(String(hello));
    assert.equal(ws.protocol, 'chat.v2');
    assert.equal(greeting.protocol, 'chat.v2');
    assert.equal(greeting.forwardedFor, '127.0.0.1');
    assert.equal(inflight(), 1, 'an open tunnel counts as in flight');
    ws.send('ping');
    const [echo] = await once(ws, 'message');
    assert.equal(String(echo), 'ping');
    ws.send(Buffer.from([1, 2, 3]));
    const [binary] = await once(ws, 'message');
    assert.deepEqual([...(binary as Buffer)], [1, 2, 3]);
    ws.close(1000, 'bye');
    const [code] = await once(ws, 'close');
    assert.equal(code, 1000);
    await waitFor(() => inflight() === 0 && lb.balancer.tunnels.sockets.size === 0);
  });

  test('close from the server side reaches the client', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${lb.port}/ws`);
    await once(ws, 'message');
    ws.send('close-from-server');
    const [code, reason] = await once(ws, 'close');
    assert.equal(code, 4000);
    assert.equal(String(reason), 'server closing');
    await waitFor(() => inflight() === 0 && lb.balancer.tunnels.sockets.size === 0);
  });

  test('a client that vanishes closes the backend side too', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${lb.port}/ws`);
    await once(ws, 'message');
    ws.terminate();
    await waitFor(() => inflight() === 0 && lb.balancer.tunnels.sockets.size === 0);
  });

  test('a non-101 answer is relayed as an ordinary response', async () => {
    const socket = net.connect(lb.port, '127.0.0.1');
    socket.write('GET /not-ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    let text = '';
    socket.on('data', (d: Buffer) => { text += d.toString(); });
    await once(socket, 'close');
    assert.match(text, /^HTTP\/1\.1 404 /);
    assert.match(text, /no upgrade here/);
    await waitFor(() => inflight() === 0);
  });

  test('the backend gets the Upgrade headers and forwarded headers', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${lb.port}/ws`, { headers: { 'x-forwarded-for': '6.6.6.6' } });
    const [hello] = await once(ws, 'message');
    assert.equal(JSON.parse(String(hello)).forwardedFor, '127.0.0.1', 'a spoofed X-Forwarded-For is replaced');
    ws.close();
    await once(ws, 'close');
  });
});
