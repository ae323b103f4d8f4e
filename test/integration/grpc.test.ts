/**
 * gRPC through Fulcrum, end to end: real @grpc/grpc-js servers behind an
 * h2c listener, real gRPC clients in front of it (test/helpers/grpc.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBalancer, type TestBalancer } from '../helpers/balancer.js';
import { echoClient, grpc, startGrpcBackend, unary, type GrpcBackend } from '../helpers/grpc.js';

const H2_LISTENER = { host: '127.0.0.1', port: 0, http2: true };

describe('gRPC passthrough', () => {
  let backend: GrpcBackend;
  let lb: TestBalancer;
  let client: grpc.Client;

  before(async () => {
    backend = await startGrpcBackend('b1');
    lb = await startBalancer({ listen: H2_LISTENER, backends: [backend.url], healthCheck: { enabled: false } });
    client = echoClient(`127.0.0.1:${lb.port}`);
  });
  after(async () => {
    client.close();
    await lb.close();
    await backend.close();
  });

  it('passes a unary call with its metadata and trailers', async () => {
    const md = new grpc.Metadata();
    md.set('x-test-id', 'abc');
    const r = await unary(client, { message: 'hello' }, { metadata: md });
    assert.equal(r.error, null);
    assert.equal(r.reply?.message, 'hello');
    assert.equal(r.reply?.backend, 'b1');
    assert.deepEqual(r.metadata?.get('x-test-id'), ['abc']);
    assert.deepEqual(r.trailers?.get('x-trailer'), ['from b1']);
  });
});
