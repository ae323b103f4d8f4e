/**
 * Test helpers for gRPC: real @grpc/grpc-js servers on port 0 implementing
 * test/fixtures/echo.proto (and grpc.health.v1), and clients for them.
 *
 * The .proto files are read from the source tree: tests run from dist/,
 * which the build does not copy them to, so the path is found from the
 * repository root (the nearest folder up with a package.json).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('no package.json above the test helpers');
    dir = up;
  }
  return dir;
}

export const FIXTURES = path.join(repoRoot(), 'test', 'fixtures');

const loaded = protoLoader.loadSync([path.join(FIXTURES, 'echo.proto'), path.join(FIXTURES, 'health.proto')], {
  keepCase: false, longs: Number, enums: String, defaults: true,
});
const pkg = grpc.loadPackageDefinition(loaded) as unknown as {
  fulcrum: { test: { Echo: grpc.ServiceClientConstructor } };
  grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
};
export const EchoClient = pkg.fulcrum.test.Echo;
const HealthService = pkg.grpc.health.v1.Health;

export interface EchoRequest { message?: string; delayMs?: number; failCode?: number }
export interface StreamRequest { count: number; size?: number; delayMs?: number }
export interface EchoReply { message: string; backend: string; payload: Buffer }

export interface GrpcBackend {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  /** calls counts the calls that reached this backend, by method name. */
  readonly calls: Map<string, number>;
  /** cancelled counts the calls whose client went away (a reset reached the backend). */
  cancelled: number;
  /** streamed counts the messages ServerStream calls have written (accepted by grpc-js, which holds back when the peer does not read). */
  streamed: number;
  /** serving: what the health service answers (SERVING or NOT_SERVING). */
  serving: boolean;
  readonly server: grpc.Server;
  close(): Promise<void>;
  /** kill ends every call and connection at once. */
  kill(): void;
}

const count = (backend: GrpcBackend, method: string): void => {
  backend.calls.set(method, (backend.calls.get(method) ?? 0) + 1);
};

/** echoMetadata: the reply's leading metadata: the request's x-test-* entries back, and the backend's name. */
function echoMetadata(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown> | grpc.ServerReadableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>, name: string): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [key, value] of Object.entries(call.metadata.getMap())) if (key.startsWith('x-test-')) md.set(key, value);
  md.set('x-backend', name);
  return md;
}

function trailer(name: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('x-trailer', `from ${name}`);
  return md;
}

export async function startGrpcBackend(name: string, options: grpc.ServerOptions = {}): Promise<GrpcBackend> {
  const server = new grpc.Server(options);
  const backend: GrpcBackend = {
    name, port: 0, url: '', calls: new Map(), cancelled: 0, streamed: 0, serving: true, server,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
    kill: () => server.forceShutdown(),
  };
  server.addService(EchoClient.service, {
    Unary: (call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, callback: grpc.sendUnaryData<EchoReply>) => {
      count(backend, 'Unary');
      const req = call.request;
      call.on('cancelled', () => { backend.cancelled++; });
      const answer = (): void => {
        if (call.cancelled) return;
        // Leading metadata only when asked for: without it grpc-js sends the head with the reply, at
        // once, so that a backend killed mid-call has either answered whole or not begun to answer.
        if (Object.keys(call.metadata.getMap()).some((k) => k.startsWith('x-test-'))) call.sendMetadata(echoMetadata(call, name));
        if ((req.failCode ?? 0) !== 0) callback({ code: req.failCode!, details: `failing as asked by ${name}` }, null, trailer(name));
        else callback(null, { message: req.message ?? '', backend: name, payload: Buffer.alloc(0) }, trailer(name));
      };
      if ((req.delayMs ?? 0) > 0) setTimeout(answer, req.delayMs);
      else answer();
    },
    ServerStream: (call: grpc.ServerWritableStream<StreamRequest, EchoReply>) => {
      count(backend, 'ServerStream');
      call.on('cancelled', () => { backend.cancelled++; });
      call.sendMetadata(echoMetadata(call, name));
      const { count: n, size = 0, delayMs = 0 } = call.request;
      const payload = Buffer.alloc(size, 0x61);
      let sent = 0;
      const next = (): void => {
        while (sent < n && !call.cancelled) {
          sent++;
          backend.streamed++;
          const flushed = call.write({ message: String(sent), backend: name, payload });
          if (delayMs > 0) { setTimeout(next, delayMs); return; }
          if (!flushed) { call.once('drain', next); return; }
        }
        if (!call.cancelled) call.end(trailer(name));
      };
      next();
    },
    ClientStream: (call: grpc.ServerReadableStream<EchoRequest, EchoReply>, callback: grpc.sendUnaryData<EchoReply>) => {
      count(backend, 'ClientStream');
      call.sendMetadata(echoMetadata(call, name));
      const parts: string[] = [];
      call.on('data', (req: EchoRequest) => parts.push(req.message ?? ''));
      call.on('end', () => callback(null, { message: parts.join(','), backend: name, payload: Buffer.alloc(0) }, trailer(name)));
    },
    Bidi: (call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) => {
      count(backend, 'Bidi');
      call.on('cancelled', () => { backend.cancelled++; });
      call.sendMetadata(echoMetadata(call, name));
      call.on('data', (req: EchoRequest) => call.write({ message: `echo ${req.message ?? ''}`, backend: name, payload: Buffer.alloc(0) }));
      call.on('end', () => call.end(trailer(name)));
    },
  });
  server.addService(HealthService.service, {
    Check: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<{ status: string }>) => {
      callback(null, { status: backend.serving ? 'SERVING' : 'NOT_SERVING' });
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err === null ? resolve(p) : reject(err)));
  });
  return Object.assign(backend, { port, url: `h2c://127.0.0.1:${port}` });
}

/** EchoStub: the generated client's methods, typed. */
export interface EchoStub extends grpc.Client {
  Unary(req: EchoRequest, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, reply?: EchoReply) => void): grpc.ClientUnaryCall;
  ServerStream(req: StreamRequest, md?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientReadableStream<EchoReply>;
  ClientStream(md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, reply?: EchoReply) => void): grpc.ClientWritableStream<EchoRequest>;
  Bidi(md?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientDuplexStream<EchoRequest, EchoReply>;
}

/** echoClient: a client of the Echo service at host:port over one channel (one HTTP/2 connection). */
export function echoClient(address: string, options: grpc.ChannelOptions = {}): EchoStub {
  return new EchoClient(address, grpc.credentials.createInsecure(), options) as unknown as EchoStub;
}

export interface UnaryResult {
  readonly error: grpc.ServiceError | null;
  readonly reply: EchoReply | null;
  readonly metadata: grpc.Metadata | null;
  readonly trailers: grpc.Metadata | null;
}

/** unary makes one Unary call and settles with its outcome (never rejects). */
export function unary(client: EchoStub, request: EchoRequest, options: { metadata?: grpc.Metadata; deadlineMs?: number } = {}): Promise<UnaryResult> {
  return new Promise((resolve) => {
    let metadata: grpc.Metadata | null = null;
    let trailers: grpc.Metadata | null = null;
    const callOptions: grpc.CallOptions = options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs };
    const call = client.Unary(request, options.metadata ?? new grpc.Metadata(), callOptions, (err, reply) => {
        // 'status' comes after the callback: wait for it to have the trailers.
        setImmediate(() => resolve({ error: err, reply: reply ?? null, metadata, trailers }));
      });
    call.on('metadata', (md: grpc.Metadata) => { metadata = md; });
    call.on('status', (status: grpc.StatusObject) => { trailers = status.metadata; });
  });
}

export { grpc };
