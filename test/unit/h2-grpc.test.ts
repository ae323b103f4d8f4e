/** The small parts of HTTP/2 and gRPC support: config keys, grpc-timeout, status mapping, the health messages. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadConfig, validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/config-error.js';
import { FulcrumError, grpcStatusOf, neverReached } from '../../src/core/errors.js';
import { grpcHealthRequest, grpcServingStatus } from '../../src/health/h2-probe.js';
import { encodeGrpcMessage, parseGrpcTimeout } from '../../src/proxy/grpc.js';
import { flatHeaders, requestHeaders } from '../../src/upstream/h2-client.js';
import { Backend } from '../../src/backends/backend.js';

function problemsOf(input: unknown): string {
  try {
    validateConfig(input);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  return assert.fail('expected a ConfigError');
}

describe('config', () => {
  test('h2c:// backends, upstream.http2 and the grpc health check load; examples/grpc.yaml is valid', () => {
    const config = validateConfig({ backends: ['h2c://127.0.0.1:50051'], upstream: { http2: true }, healthCheck: { mode: 'grpc', grpcService: 'pkg.Svc' } });
    assert.equal(config.backends[0]!.url, 'h2c://127.0.0.1:50051');
    assert.equal(config.upstream.http2, true);
    assert.equal(config.healthCheck.mode, 'grpc');
    assert.equal(config.healthCheck.grpcService, 'pkg.Svc');
    const example = loadConfig({ file: 'examples/grpc.yaml', env: {} }).config;
    assert.equal(example.services.greeter!.healthCheck.mode, 'grpc');
  });

  test('bad values are named by their key path', () => {
    assert.match(problemsOf({ backends: ['h2c://127.0.0.1:50051/path'] }), /backends\[0\].*h2c:\/\/ URL with a host and port only/);
    assert.match(problemsOf({ backends: ['ftp://127.0.0.1'] }), /backends\[0\].*http:\/\/, https:\/\/ or h2c:\/\//);
    assert.match(problemsOf({ backends: ['h2c://127.0.0.1:1'], healthCheck: { mode: 'tcp' } }), /healthCheck\.mode.*"http", "grpc"/);
    assert.match(problemsOf({ backends: ['h2c://127.0.0.1:1'], upstream: { http2: 'yes' } }), /upstream\.http2/);
  });

  test('an h2c backend has an origin of its own (WHATWG URLs give non-special schemes "null")', () => {
    const b = new Backend({ id: 'a', config: validateConfig({ backends: ['h2c://127.0.0.1:50051'] }).backends[0]! });
    assert.equal(b.origin, 'h2c://127.0.0.1:50051');
    assert.equal(b.hostHeader, '127.0.0.1:50051');
  });
});

describe('gRPC', () => {
  test('grpc-timeout values in ms; malformed ones are ignored', () => {
    assert.equal(parseGrpcTimeout('100m'), 100);
    assert.equal(parseGrpcTimeout('5S'), 5000);
    assert.equal(parseGrpcTimeout('2M'), 120_000);
    assert.equal(parseGrpcTimeout('1H'), 3_600_000);
    assert.equal(parseGrpcTimeout('1500u'), 2);
    assert.equal(parseGrpcTimeout('123456789S'), -1); // more than 8 digits
    assert.equal(parseGrpcTimeout('10s'), -1); // lower-case s is not a unit
    assert.equal(parseGrpcTimeout(undefined), -1);
  });

  test('Fulcrum\'s refusals map to the gRPC statuses clients expect', () => {
    assert.equal(grpcStatusOf('FULCRUM_ERR_NO_BACKEND'), 14);
    assert.equal(grpcStatusOf('FULCRUM_ERR_CONNECT_REFUSED'), 14);
    assert.equal(grpcStatusOf('FULCRUM_ERR_UPSTREAM_RESET'), 14);
    assert.equal(grpcStatusOf('FULCRUM_ERR_RATE_LIMITED'), 8);
    assert.equal(grpcStatusOf('FULCRUM_ERR_NO_ROUTE'), 12);
    assert.equal(grpcStatusOf('FULCRUM_ERR_RESPONSE_TIMEOUT'), 4);
    assert.equal(grpcStatusOf('FULCRUM_ERR_TOTAL_TIMEOUT'), 4);
  });

  test('never-reached failures are the connect failures and refused streams', () => {
    assert.equal(neverReached(new FulcrumError('FULCRUM_ERR_CONNECT_REFUSED')), true);
    assert.equal(neverReached(new FulcrumError('FULCRUM_ERR_UPSTREAM_REFUSED')), true);
    assert.equal(neverReached(new FulcrumError('FULCRUM_ERR_UPSTREAM_RESET')), false);
  });

  test('grpc-message is percent-encoded outside printable ASCII', () => {
    assert.equal(encodeGrpcMessage('no backend: 100% é'), 'no backend: 100%25 %C3%A9');
  });

  test('the health check messages: a HealthCheckRequest out, a HealthCheckResponse in', () => {
    assert.deepEqual([...grpcHealthRequest('')], [0, 0, 0, 0, 0]);
    assert.deepEqual([...grpcHealthRequest('ab')], [0, 0, 0, 0, 4, 0x0a, 2, 0x61, 0x62]);
    assert.equal(grpcServingStatus(Buffer.from([0, 0, 0, 0, 2, 0x08, 1])), 1);
    assert.equal(grpcServingStatus(Buffer.from([0, 0, 0, 0, 2, 0x08, 2])), 2);
    assert.equal(grpcServingStatus(Buffer.from([0, 0, 0, 0, 0])), 0);
    assert.equal(grpcServingStatus(Buffer.from([0, 0, 0, 0, 9])), -1); // truncated
  });
});

describe('HTTP/2 header translation', () => {
  test('Host becomes :authority; repeated fields stay separate; gRPC calls get te: trailers', () => {
    const h = requestHeaders({
      method: 'POST', path: '/pkg.Svc/M', body: null,
      headers: ['host', 'api.example', 'content-type', 'application/grpc+proto', 'accept', 'a', 'accept', 'b', 'x-forwarded-for', '1.2.3.4'],
    }, 'http');
    assert.equal(h[':authority'], 'api.example');
    assert.equal(h[':scheme'], 'http');
    assert.equal(h.host, undefined);
    assert.deepEqual(h.accept, ['a', 'b']);
    assert.equal(h.te, 'trailers');
    assert.equal(requestHeaders({ method: 'GET', path: '/', body: null, headers: ['host', 'x', 'content-type', 'text/plain'] }, 'http').te, undefined);
  });

  test('response headers lose their pseudo-headers; arrays become repeated fields', () => {
    assert.deepEqual(flatHeaders({ ':status': '200', 'set-cookie': ['a=1', 'b=2'], 'content-type': 'text/plain' }), ['set-cookie', 'a=1', 'set-cookie', 'b=2', 'content-type', 'text/plain']);
  });
});
