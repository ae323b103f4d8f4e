/**
 * HTTP/2 floods on an h2c listener (issue 19 item 14): rapid reset, a
 * CONTINUATION flood, SETTINGS and PING floods and an oversized HPACK
 * header list, as raw frames. After each the balancer still serves other
 * clients (HTTP/2 and HTTP/1.1), few or no requests reached the backend,
 * and its memory stays bounded. docs/reliability.md records the counts.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { startBalancer, get, type TestBalancer } from '../helpers/balancer.js';
import { Flag, FrameType, frame, h2Exchange, literal, requestBlock } from '../helpers/h2-frames.js';

const FLOOD = 5000;

describe('HTTP/2 floods', () => {
  let backend: http.Server;
  let forwarded = 0;
  let lb: TestBalancer;
  let rssBefore = 0;

  before(async () => {
    backend = http.createServer((_req, res) => { forwarded++; res.end('ok'); });
    backend.listen(0, '127.0.0.1');
    await once(backend, 'listening');
    lb = await startBalancer({ backends: [`http://127.0.0.1:${(backend.address() as AddressInfo).port}`], healthCheck: { enabled: false }, listen: { host: '127.0.0.1', port: 0, http2: true } });
    rssBefore = process.memoryUsage().rss;
  });

  after(async () => {
    await lb?.close();
    backend.close();
  });

  /** stillServes: a well-behaved HTTP/2 client and an HTTP/1.1 client are served. */
  async function stillServes(): Promise<void> {
    const session = http2.connect(`http://127.0.0.1:${lb.port}`);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const s = session.request({ ':path': '/after' });
        s.on('response', (h) => resolve(Number(h[':status'])));
        s.on('error', reject);
        s.resume();
        s.end();
      });
      assert.equal(status, 200);
    } finally {
      session.destroy();
    }
    assert.equal((await get(`${lb.url}/after-h1`)).status, 200);
  }

  const report: Record<string, string> = {};
  after(() => { console.log(`h2 floods: ${JSON.stringify(report)}`); });

  test(`rapid reset: ${FLOOD} HEADERS + RST_STREAM pairs`, async () => {
    forwarded = 0;
    const frames: Buffer[] = [];
    for (let i = 0; i < FLOOD; i++) {
      const id = 2 * i + 1;
      frames.push(frame(FrameType.HEADERS, Flag.END_STREAM | Flag.END_HEADERS, id, requestBlock(`/r${i}`, 'x')), frame(FrameType.RST_STREAM, 0, id, Buffer.from([0, 0, 0, 8])));
    }
    const answer = await h2Exchange(lb.port, Buffer.concat(frames), 1000);
    report.rapidReset = `${answer.frames.filter((f) => f.startsWith('GOAWAY')).join(',') || 'no GOAWAY'}; ${forwarded} forwarded`;
    assert.ok(forwarded < 50, `${forwarded} of ${FLOOD} reset streams reached the backend`);
    await stillServes();
  });

  test(`CONTINUATION flood: one HEADERS without END_HEADERS, then ${FLOOD} CONTINUATION frames`, async () => {
    forwarded = 0;
    const frames: Buffer[] = [frame(FrameType.HEADERS, Flag.END_STREAM, 1, requestBlock('/c', 'x'))];
    for (let i = 0; i < FLOOD; i++) frames.push(frame(FrameType.CONTINUATION, 0, 1, literal(`x-c${i}`, 'v'.repeat(50))));
    const answer = await h2Exchange(lb.port, Buffer.concat(frames), 1000);
    report.continuation = `${answer.frames.join(',') || 'nothing'}; closed ${answer.closed}`;
    assert.equal(forwarded, 0);
    assert.ok(answer.closed || answer.frames.some((f) => f.startsWith('GOAWAY') || f.startsWith('RST_STREAM(1')), answer.frames.join(' '));
    await stillServes();
  });

  test(`SETTINGS flood: ${FLOOD} SETTINGS frames without waiting for an ACK`, async () => {
    const flood = Buffer.concat(Array.from({ length: FLOOD }, () => frame(FrameType.SETTINGS, 0, 0, Buffer.from([0, 3, 0, 0, 0, 100]))));
    const answer = await h2Exchange(lb.port, flood, 1000);
    report.settings = `${answer.frames.filter((f) => f.startsWith('GOAWAY')).join(',') || 'no GOAWAY'}; ${answer.frames.filter((f) => f === 'SETTINGS').length} SETTINGS frames back; closed ${answer.closed}`;
    await stillServes();
  });

  test(`PING flood: ${FLOOD} PINGs`, async () => {
    const flood = Buffer.concat(Array.from({ length: FLOOD }, (_, i) => frame(FrameType.PING, 0, 0, Buffer.alloc(8, i % 256))));
    const answer = await h2Exchange(lb.port, flood, 1000);
    report.ping = `${answer.frames.filter((f) => f.startsWith('GOAWAY')).join(',') || 'no GOAWAY'}; ${answer.frames.filter((f) => f === 'PING').length} PING ACKs; closed ${answer.closed}`;
    await stillServes();
  });

  test('an oversized HPACK header list (2,000 fields, ~120 KiB decoded, against a 16 KiB limit)', async () => {
    forwarded = 0;
    const fields = Array.from({ length: 2000 }, (_, i) => [`x-big${i}`, 'v'.repeat(50)] as const);
    const block = requestBlock('/big', 'x', fields);
    // In frames of at most 16 KiB (the default SETTINGS_MAX_FRAME_SIZE): HEADERS, then CONTINUATIONs.
    const parts: Buffer[] = [];
    for (let at = 0; at < block.length; at += 16_000) parts.push(block.subarray(at, at + 16_000));
    const frames = parts.map((p, i) => frame(i === 0 ? FrameType.HEADERS : FrameType.CONTINUATION, (i === 0 ? Flag.END_STREAM : 0) | (i === parts.length - 1 ? Flag.END_HEADERS : 0), 1, p));
    const answer = await h2Exchange(lb.port, Buffer.concat(frames), 1000);
    report.oversizedList = `${answer.frames.join(',') || 'nothing'}; closed ${answer.closed}`;
    assert.equal(forwarded, 0);
    assert.ok(answer.closed || answer.frames.some((f) => f.startsWith('RST_STREAM(1') || f.startsWith('GOAWAY')), answer.frames.join(' '));
    await stillServes();
  });

  test('memory stays bounded after the floods', async () => {
    const grown = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
    report.rssGrowthMiB = grown.toFixed(1);
    assert.ok(grown < 150, `RSS grew by ${grown.toFixed(1)} MiB`);
    assert.equal(lb.balancer.activeRequests, 0);
  });
});
