/**
 * gRPC through Fulcrum, end to end: real @grpc/grpc-js servers behind an
 * h2c listener, real gRPC clients in front of it (test/helpers/grpc.ts), and
 * node:http2 for what a gRPC client hides (trailers-only answers, a client
 * that never cancels).
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { get, startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';
import type net from 'node:net';
import { captureLogger } from '../helpers/logs.js';
import { freePort } from '../helpers/backends.js';
import { echoClient, grpc, startGrpcBackend, unary, type EchoReply, type EchoStub, type GrpcBackend } from '../helpers/grpc.js';

const H2_LISTENER = { host: '127.0.0.1', port: 0, http2: true };
const NO_CHECKS = { healthCheck: { enabled: false } };

interface RawAnswer {
  status: number;
  headers: http2.IncomingHttpHeaders;
  /** endedWithHeaders: the answer was trailers-only (one HEADERS frame with END_STREAM). */
  endedWithHeaders: boolean;
  trailers: http2.IncomingHttpHeaders;
}

/** rawCall sends one gRPC request with node:http2 and reads the answer's frames as they are. */
function rawCall(port: number, path: string, extra: http2.OutgoingHttpHeaders = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...extra });
    // An empty EchoRequest: one uncompressed message of length 0.
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
    const answer: RawAnswer = { status: 0, headers: {}, endedWithHeaders: false, trailers: {} };
    stream.on('response', (headers, flags) => {
      answer.status = Number(headers[':status']);
      answer.headers = headers;
      answer.endedWithHeaders = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    stream.on('trailers', (t) => { answer.trailers = t; });
    stream.resume();
    stream.on('close', () => { session.close(); resolve(answer); });
    stream.on('error', reject);
  });
}

/** collect reads a server stream to its end: the replies, the leading metadata and the trailers. */
function collect(call: grpc.ClientReadableStream<EchoReply> | grpc.ClientDuplexStream<unknown, EchoReply>): Promise<{ replies: EchoReply[]; metadata: grpc.Metadata | null; status: grpc.StatusObject }> {
  return new Promise((resolve) => {
    const replies: EchoReply[] = [];
    let metadata: grpc.Metadata | null = null;
    call.on('metadata', (md: grpc.Metadata) => { metadata = md; });
    call.on('data', (r: EchoReply) => replies.push(r));
    call.on('error', () => undefined); // the status says it
    call.on('status', (status: grpc.StatusObject) => resolve({ replies, metadata, status }));
  });
}

describe('gRPC: the four call kinds through Fulcrum', () => {
  let backend: GrpcBackend;
  let lb: TestBalancer;
  let client: EchoStub;
  const log = captureLogger('warn');

  before(async () => {
    backend = await startGrpcBackend('b1');
    lb = await startBalancer({ listen: H2_LISTENER, backends: [backend.url], ...NO_CHECKS, accessLog: true }, { logger: log.logger });
    client = echoClient(`127.0.0.1:${lb.port}`);
  });
  after(async () => {
    client.close();
    await lb.close();
    await backend.close();
  });

  it('unary: the reply, metadata both ways and the trailers', async () => {
    const md = new grpc.Metadata();
    md.set('x-test-id', 'abc');
    const r = await unary(client, { message: 'hello' }, { metadata: md });
    assert.equal(r.error, null);
    assert.equal(r.reply?.message, 'hello');
    assert.equal(r.reply?.backend, 'b1');
    assert.deepEqual(r.metadata?.get('x-test-id'), ['abc']);
    assert.deepEqual(r.trailers?.get('x-trailer'), ['from b1']);
  });

  it('unary: the backend\'s error status and message reach the client', async () => {
    const r = await unary(client, { message: 'x', failCode: grpc.status.FAILED_PRECONDITION });
    assert.equal(r.error?.code, grpc.status.FAILED_PRECONDITION);
    assert.match(r.error?.details ?? '', /failing as asked by b1/);
  });

  it('server streaming: every message, then the trailers', async () => {
    const md = new grpc.Metadata();
    md.set('x-test-kind', 'server');
    const { replies, metadata, status } = await collect(client.ServerStream({ count: 5, size: 10 }, md));
    assert.equal(status.code, grpc.status.OK);
    assert.deepEqual(replies.map((r) => r.message), ['1', '2', '3', '4', '5']);
    assert.deepEqual(metadata?.get('x-test-kind'), ['server']);
    assert.deepEqual(status.metadata.get('x-trailer'), ['from b1']);
  });

  it('client streaming: every message reaches the backend, one reply comes back', async () => {
    const reply = await new Promise<{ err: grpc.ServiceError | null; reply?: EchoReply }>((resolve) => {
      const call = client.ClientStream(new grpc.Metadata(), {}, (err, r) => resolve({ err, reply: r }));
      for (const m of ['a', 'b', 'c']) call.write({ message: m });
      call.end();
    });
    assert.equal(reply.err, null);
    assert.equal(reply.reply?.message, 'a,b,c');
  });

  it('bidirectional streaming: replies interleave with requests', async () => {
    const call = client.Bidi(new grpc.Metadata());
    const done = collect(call);
    const first = await new Promise<EchoReply>((resolve) => { call.once('data', resolve); call.write({ message: 'one' }); });
    assert.equal(first.message, 'echo one'); // answered before the client finished sending
    call.write({ message: 'two' });
    call.end();
    const { replies, status } = await done;
    assert.equal(status.code, grpc.status.OK);
    assert.deepEqual(replies.map((r) => r.message), ['echo one', 'echo two']);
    assert.deepEqual(status.metadata.get('x-trailer'), ['from b1']);
  });

  it('a 10 MB server stream is not buffered: a paused client holds the backend back', async () => {
    const total = 160;
    const size = 64 * 1024; // 160 x 64 KiB = 10 MiB
    const startStreamed = backend.streamed;
    const call = client.ServerStream({ count: total, size });
    let received = 0;
    let bytes = 0;
    call.on('data', (r: EchoReply) => { received++; bytes += r.payload.length; });
    await waitFor(() => received > 0);
    call.pause();
    await new Promise((r) => setTimeout(r, 300));
    const stalled = backend.streamed - startStreamed;
    // The windows on the way (client, Fulcrum's two sides, the backend) hold a few MiB at most, not 10.
    assert.ok(stalled < total * 0.6, `the backend wrote ${stalled} of ${total} messages while the client read nothing`);
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.resume();
    assert.equal((await status).code, grpc.status.OK);
    assert.equal(received, total);
    assert.equal(bytes, total * size);
  });

  it('a client cancel resets the backend\'s stream', async () => {
    const before = backend.cancelled;
    const call = client.ServerStream({ count: 1000, size: 10, delayMs: 20 });
    call.on('error', () => undefined);
    await new Promise<void>((resolve) => call.once('data', () => resolve()));
    call.cancel();
    await waitFor(() => backend.cancelled > before, 2000);
  });

  it('a deadline the client sets reaches the backend, which sees the call cancelled', async () => {
    const before = backend.cancelled;
    const r = await unary(client, { message: 'slow', delayMs: 2000 }, { deadlineMs: 200 });
    assert.equal(r.error?.code, grpc.status.DEADLINE_EXCEEDED);
    await waitFor(() => backend.cancelled > before, 2000);
  });

  it('grpc-timeout caps Fulcrum\'s own wait: DEADLINE_EXCEEDED from Fulcrum when the client does not cancel', async () => {
    // An EchoRequest { delay_ms: 2000 }: field 2, varint 2000 (0xd0 0x0f).
    const answer = await new Promise<RawAnswer>((resolve, reject) => {
      const session = http2.connect(`http://127.0.0.1:${lb.port}`);
      session.on('error', reject);
      const stream = session.request({ ':method': 'POST', ':path': '/fulcrum.test.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '200m' });
      stream.end(Buffer.from([0, 0, 0, 0, 3, 0x10, 0xd0, 0x0f]));
      const a: RawAnswer = { status: 0, headers: {}, endedWithHeaders: false, trailers: {} };
      stream.on('response', (h, flags) => { a.status = Number(h[':status']); a.headers = h; a.endedWithHeaders = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0; });
      stream.resume();
      stream.on('close', () => { session.close(); resolve(a); });
    });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['grpc-status'], String(grpc.status.DEADLINE_EXCEEDED));
    assert.equal(answer.headers['x-fulcrum-error'], 'FULCRUM_ERR_RESPONSE_TIMEOUT');
  });

  it('the access log shows both protocols and the grpc status; metrics count by grpc_status', async () => {
    await unary(client, { message: 'logged' });
    await waitFor(() => log.lines.some((l) => l.type === 'access' && l.grpcStatus === 0), 2000);
    const line = log.lines.find((l) => l.type === 'access' && l.grpcStatus === 0)!;
    assert.equal(line.proto, '2');
    assert.equal(line.upstreamProto, '2');
    const prom = (await get(`${lb.url}/metrics`, { headers: { accept: 'text/plain' } })).body;
    assert.match(prom, /fulcrum_grpc_responses_total\{service="default",grpc_status="0"\} \d+/);
    assert.match(prom, /fulcrum_grpc_responses_total\{service="default",grpc_status="9"\} 1/); // FAILED_PRECONDITION above
  });
});

describe('gRPC: a backend reset reaches the client', () => {
  it('a stream the backend resets mid-response fails the client\'s call', async () => {
    const backend = http2.createServer();
    backend.on('stream', (stream) => {
      stream.on('error', () => undefined); // closing it with INTERNAL_ERROR reports that on this side too
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      stream.write(Buffer.from([0, 0, 0, 0, 0]));
      setTimeout(() => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR), 50);
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const port = (backend.address() as net.AddressInfo).port;
    const lb = await startBalancer({ listen: H2_LISTENER, backends: [`h2c://127.0.0.1:${port}`], ...NO_CHECKS });
    const client = echoClient(`127.0.0.1:${lb.port}`);
    try {
      const { status, replies } = await collect(client.ServerStream({ count: 3 }));
      assert.equal(replies.length, 1);
      assert.notEqual(status.code, grpc.status.OK);
      assert.match(status.details, /RST_STREAM/);
    } finally {
      client.close();
      await lb.close();
      await new Promise<void>((resolve) => backend.close(() => resolve()));
    }
  });
});

describe('gRPC: Fulcrum\'s own refusals are gRPC answers', () => {
  const balancers: TestBalancer[] = [];
  after(async () => { for (const lb of balancers) await lb.close(); });
  const start = async (config: Record<string, unknown>): Promise<TestBalancer> => {
    const lb = await startBalancer({ listen: H2_LISTENER, ...(config.services === undefined ? NO_CHECKS : {}), ...config });
    balancers.push(lb);
    return lb;
  };

  it('no healthy backend -> 14 UNAVAILABLE, trailers-only', async () => {
    const lb = await start({ backends: [{ url: 'h2c://127.0.0.1:1', healthy: false }] });
    const a = await rawCall(lb.port, '/fulcrum.test.Echo/Unary');
    assert.equal(a.status, 200);
    assert.equal(a.endedWithHeaders, true);
    assert.equal(a.headers['content-type'], 'application/grpc');
    assert.equal(a.headers['grpc-status'], '14');
    assert.match(String(a.headers['grpc-message']), /no healthy backend/);
    assert.equal(a.headers['x-fulcrum-error'], 'FULCRUM_ERR_NO_BACKEND');
  });

  it('backend unreachable -> 14 UNAVAILABLE for a real gRPC client', async () => {
    const lb = await start({ backends: [`h2c://127.0.0.1:${await freePort()}`], retries: { attempts: 0 } });
    const client = echoClient(`127.0.0.1:${lb.port}`);
    try {
      const r = await unary(client, { message: 'x' });
      assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
      assert.match(r.error?.details ?? '', /refused the connection/);
    } finally {
      client.close();
    }
  });

  it('no route -> 12 UNIMPLEMENTED; routing by :path picks the service', async () => {
    const b = await startGrpcBackend('routed');
    try {
      const lb = await start({
        services: { echo: { backends: [b.url], ...NO_CHECKS } },
        routes: [{ name: 'echo', match: { path: { prefix: '/fulcrum.test.Echo/' } }, service: 'echo' }],
      });
      const a = await rawCall(lb.port, '/other.Service/Method');
      assert.equal(a.headers['grpc-status'], '12');
      assert.equal(a.endedWithHeaders, true);
      const client = echoClient(`127.0.0.1:${lb.port}`);
      try {
        const r = await unary(client, { message: 'routed' });
        assert.equal(r.reply?.backend, 'routed');
      } finally {
        client.close();
      }
    } finally {
      await b.close();
    }
  });

  it('rate limited -> 8 RESOURCE_EXHAUSTED', async () => {
    const b = await startGrpcBackend('limited');
    try {
      const lb = await start({ backends: [b.url], rateLimit: { rate: 1, per: '1m' } });
      const client = echoClient(`127.0.0.1:${lb.port}`);
      try {
        assert.equal((await unary(client, { message: '1' })).error, null);
        const r = await unary(client, { message: '2' });
        assert.equal(r.error?.code, grpc.status.RESOURCE_EXHAUSTED);
      } finally {
        client.close();
      }
    } finally {
      await b.close();
    }
  });
});

describe('gRPC: balancing, GOAWAY, a backend killed under load, health checks', () => {
  it('spreads the streams of one client connection across 3 backends by the policy', async () => {
    const backends = await Promise.all(['b1', 'b2', 'b3'].map((n) => startGrpcBackend(n)));
    const lb = await startBalancer({ listen: H2_LISTENER, backends: backends.map((b) => b.url), algorithm: 'round-robin', ...NO_CHECKS });
    const client = echoClient(`127.0.0.1:${lb.port}`);
    try {
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => unary(client, { message: String(i) })));
      const by = new Map<string, number>();
      for (const r of results) {
        assert.equal(r.error, null);
        by.set(r.reply!.backend, (by.get(r.reply!.backend) ?? 0) + 1);
      }
      assert.deepEqual([...by.keys()].sort(), ['b1', 'b2', 'b3']);
      for (const n of by.values()) assert.equal(n, 10);
    } finally {
      client.close();
      await lb.close();
      await Promise.all(backends.map((b) => b.close()));
    }
  });

  it('backends that send GOAWAY under load (max connection age) lose no call', async () => {
    const options = { 'grpc.max_connection_age_ms': 150, 'grpc.max_connection_age_grace_ms': 2000 };
    const backends = await Promise.all(['g1', 'g2'].map((n) => startGrpcBackend(n, options)));
    const lb = await startBalancer({ listen: H2_LISTENER, backends: backends.map((b) => b.url), ...NO_CHECKS });
    const client = echoClient(`127.0.0.1:${lb.port}`);
    try {
      const failures: string[] = [];
      const deadline = Date.now() + 1200;
      await Promise.all(Array.from({ length: 10 }, async () => {
        while (Date.now() < deadline) {
          const r = await unary(client, { message: 'x', delayMs: 2 });
          if (r.error !== null) failures.push(`${r.error.code} ${r.error.details}`);
        }
      }));
      assert.deepEqual(failures, []);
    } finally {
      client.close();
      await lb.close();
      await Promise.all(backends.map((b) => b.close()));
    }
  });

  it('a backend killed under load, with POST retries on: no retryable unary call fails', async () => {
    const [k1, k2] = await Promise.all([startGrpcBackend('k1'), startGrpcBackend('k2')]);
    const log = captureLogger('warn');
    const lb = await startBalancer({
      listen: H2_LISTENER, backends: [k1!.url, k2!.url], ...NO_CHECKS, accessLog: true,
      retries: { attempts: 2, methods: ['POST'], budget: 1 },
    }, { logger: log.logger });
    const client = echoClient(`127.0.0.1:${lb.port}`);
    try {
      const failures: string[] = [];
      let done = 0;
      const load = Promise.all(Array.from({ length: 10 }, async () => {
        for (let i = 0; i < 30; i++) {
          // A deadline, so that a call Fulcrum left hanging fails here instead of stalling the suite.
          const r = await unary(client, { message: 'x', delayMs: 5 }, { deadlineMs: 5000 });
          done++;
          if (r.error !== null) failures.push(`${r.error.code} ${r.error.details}`);
        }
      }));
      await waitFor(() => done >= 60);
      k1!.kill();
      await load;
      await lb.close(); // flushes the access log
      // A call whose answer had begun (its head forwarded: status 200) cannot be sent again; every other one must succeed.
      const midResponse = log.lines.filter((l) => l.type === 'access' && l.error === 'FULCRUM_ERR_UPSTREAM_RESET' && l.status === 200).length;
      assert.ok(failures.length <= midResponse, `${failures.length} failed calls, ${midResponse} cut mid-answer: ${failures.join('; ')}`);
      // Only the calls in flight at the kill (one per worker) can be cut mid-answer.
      assert.ok(failures.length <= 10, `${failures.length} calls were cut mid-answer`);
      // The calls the kill cut before they were answered, and those sent to the dead backend, went to the other.
      assert.ok(lb.balancer.metrics.retries > 0);
      assert.ok((k2!.calls.get('Unary') ?? 0) > 150);
    } finally {
      client.close();
      await lb.close();
      await k2!.close();
    }
  });

  it('healthCheck.mode grpc takes a NOT_SERVING backend out and a SERVING one back in', async () => {
    const [h1, h2] = await Promise.all([startGrpcBackend('h1'), startGrpcBackend('h2')]);
    const lb = await startBalancer({
      listen: H2_LISTENER, backends: [h1!.url, h2!.url],
      healthCheck: { mode: 'grpc', interval: '50ms', timeout: '500ms', healthyThreshold: 1, unhealthyThreshold: 1 },
    });
    const service = lb.balancer.services.default;
    const healthy = (name: GrpcBackend): boolean => service.pool.snapshot.find((b) => b.url.port === String(name.port))!.healthy;
    const client = echoClient(`127.0.0.1:${lb.port}`);
    try {
      await waitFor(() => healthy(h1!) && healthy(h2!));
      h1!.serving = false;
      await waitFor(() => !healthy(h1!));
      const replies = await Promise.all(Array.from({ length: 6 }, () => unary(client, { message: 'x' })));
      assert.deepEqual(new Set(replies.map((r) => r.reply?.backend)), new Set(['h2']));
      h1!.serving = true;
      await waitFor(() => healthy(h1!));
      const back = await Promise.all(Array.from({ length: 6 }, () => unary(client, { message: 'x' })));
      assert.ok(back.some((r) => r.reply?.backend === 'h1'));
    } finally {
      client.close();
      await lb.close();
      await Promise.all([h1!.close(), h2!.close()]);
    }
  });
});
