/**
 * forward: one client request's trip to a backend and back, with the retry
 * loop. An Exchange is the per-request context and, at the same time, the
 * upstream client's dispatch handler (dispatch.ts: undici's low-level
 * callback interface, which Fulcrum's own HTTP/1.1 client speaks too, and
 * which avoids the stream plumbing of `request()`/`pipe`): one object per
 * request, its methods bound once.
 *
 * Phases: choose upstream -> dispatch -> response head -> body -> finish,
 * and on error: classify -> retry on another backend, or answer 502/504.
 * A response head whose status `retries.on` lists is retried too: its body
 * is read and dropped (the connection stays usable; a long one is cut),
 * then the next backend is asked. The circuit breaker, when the service
 * has one, is asked once before the first pick and told the outcome once.
 * An upgrade request (a `tunnel`) takes the same phases to the backend's
 * answer; a 101 then turns the exchange into a tunnel, which finishes when
 * either side closes.
 */
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { Backend } from '../backends/backend.js';
import type { PickContext } from '../balancer/picker.js';
import type { ResponseHeadContext } from '../balancer/sticky.js';
import { CLOSING, type DownstreamRequest, type DownstreamResponse, type DownstreamTunnel } from '../core/downstream.js';
import { FulcrumError, fromUpstreamError, neverReached } from '../core/errors.js';
import type { RequestView } from '../core/request-view.js';
import type { Route } from '../routing/route.js';
import type { HeaderValues } from '../routing/transforms.js';
import type { Failover } from '../service/failover.js';
import { REFUSED, type CircuitBreaker } from '../service/circuit.js';
import type { RetryPolicy, RetryReason } from '../service/retry.js';
import type { Service } from '../service/service.js';
import type { RawHeaders, UpstreamDispatcher, UpstreamRequest } from '../upstream/dispatch.js';
import { encodeProxyHeader } from '../upstream/proxy-protocol.js';
import { openTunnel, type TunnelHandler } from '../upstream/tunnel.js';
import type { ProxyContext } from './context.js';
import { grpcAnswer, grpcCall, grpcStatusIn, isGrpcFailure, type GrpcCall } from './grpc.js';
import { downstreamHeaders, latin1, switchingHeaders } from './headers.js';
import { Reason } from '../backends/reasons.js';
import { dropField, setField } from '../trace/request-id.js';
import type { RequestTrace } from '../trace/request-trace.js';
import type { LogIds } from '../observe/access-log.js';
import { ReplayableBody } from './replay-body.js';

type Abort = (reason?: Error) => void;

/** FAILING_OVER aborts an attempt whose answer is discarded because the request fails over (onError knows it). */
const FAILING_OVER = new Error('failing over to the fallback service');

/** EXCHANGE marks the response object with its exchange, so one shared listener can reach it. */
export const EXCHANGE: unique symbol = Symbol('fulcrum.exchange');
export interface ExchangeCarrier { [EXCHANGE]?: Exchange | null }

/** ExchangeBody is the request body: none, buffered (replayable), or streamed. */
export type ExchangeBody = Buffer | Readable | null;

/**
 * DISCARD_LIMIT: a response dropped for a status retry is read to its end
 * (so that its connection can be reused) up to this many bytes; a longer
 * one is cut, closing its connection.
 */
const DISCARD_LIMIT = 64 * 1024;

/** retryAfterBackoff: the back-off timer's callback (a function of the module: no closure per request). */
function retryAfterBackoff(ex: Exchange): void {
  ex.retryNow();
}

/** perTryExpired: the per-try timer's callback. */
function perTryExpired(ex: Exchange): void {
  ex.onPerTryTimeout();
}

export class Exchange implements PickContext, RequestView, ResponseHeadContext, TunnelHandler, LogIds {
  // PickContext
  clientAddress: string;
  hashKey: string | undefined = undefined;
  /** cookie is the request's Cookie header, for sticky sessions. */
  cookie: string | undefined = undefined;
  /** trailersPossible: the request's body may end with trailers (HTTP/2, or HTTP/1.1 chunked), which are forwarded. */
  trailersPossible = false;
  tried: Set<Backend> | undefined = undefined;

  backend: Backend | null = null;
  /** path is the target the backend gets: the client's, normalized and rewritten by the route. */
  path: string;
  /** retry: the service's retry policy, with the route's overrides. */
  retry: RetryPolicy;
  /** headerValues: what the route's header templates refer to (null when it has none). */
  headerValues: HeaderValues | null = null;
  /** setCookie: a Set-Cookie value for the response (a sticky split pinning the client to its side), or null. */
  setCookie: string | null = null;
  attempts = 0;
  /** retryReasons: why each retry was made, in order ("reset", "503"...); null when there was none. */
  retryReasons: RetryReason[] | null = null;
  status = 0;
  error: FulcrumError | null = null;
  readonly startedAt: number;
  /** For a tunnel: the time to the backend's 101 (what metrics record), and the bytes each way after the heads. */
  handshakeMs = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** requestBytes: the request body's length when known, -1 when not (set for traced requests). */
  requestBytes = -1;
  /** requestId: the request's id ('' when `requestId` is not configured, or the request has none). */
  requestId = '';
  /** trace: the request's spans, or null when it is not traced (tracing off and no `fulcrum:span` subscriber). */
  trace: RequestTrace | null = null;
  /** grpc: the call's deadline, when the request is a gRPC call (HTTP/2, application/grpc*); null otherwise. */
  readonly grpc: GrpcCall | null;
  /** grpcStatus: the gRPC status the client got (the backend's, or Fulcrum's own), -1 when none. */
  grpcStatus = -1;

  #body: ExchangeBody;
  #bodyReplayable: boolean;
  /** #replay: a gRPC call's streamed body, kept (bounded) so that a retry can send it again. */
  #replay: ReplayableBody | null = null;
  /** #dispatcher: the upstream client of the last attempt (it knows the protocol it spoke). */
  #dispatcher: UpstreamDispatcher | null = null;
  /** #h2: the client speaks HTTP/2 (node:http2 compat response: no reason phrase, trailers as an object). */
  readonly #h2: boolean;
  /** #hostFromBackend: Host is the chosen backend's own host:port (not preserved, or the client sent none). */
  readonly #hostFromBackend: boolean;
  #abort: Abort | null = null;
  #resume: (() => void) | null = null;
  #inAttempt = false;
  #responseStarted = false;
  #clientGone = false;
  #done = false;
  #timer: NodeJS.Timeout | null = null;
  #attemptStartedAt = 0;
  /** #next: the backend a status retry chose while the dropped response was read. */
  #next: Backend | null = null;
  /** #discarding: the response being read is dropped (a status retry follows); #discarded counts its bytes. */
  #discarding = false;
  #discarded = 0;
  /** #retryTimer: the back-off before the next attempt; #tryTimer: the attempt's perTryTimeout. */
  #retryTimer: NodeJS.Timeout | null = null;
  #tryTimer: NodeJS.Timeout | null = null;
  #tryExpired = false;
  /** #circuit: the breaker that admitted this request and awaits its outcome; #ticket: its admission. */
  #circuit: CircuitBreaker | null = null;
  #ticket = REFUSED;
  /** #headAt: when the response head arrived (read only with a circuit breaker). */
  #headAt = 0;
  /** #traceparentAt: the index of the traceparent value in the backend's header list (traced requests). */
  #traceparentAt = -1;
  /** #retryReason: the error code that made the next attempt a retry (traced requests). */
  #retryReason: string | undefined = undefined;

  constructor(
    private readonly ctx: ProxyContext,
    /** service: the route's service; a failover moves the request to its fallback service. */
    public service: Service,
    /** route: the route the request matched; null when it matched none (or was refused before). */
    readonly route: Route | null,
    readonly req: DownstreamRequest,
    readonly res: DownstreamResponse,
    private readonly headers: string[],
    body: ExchangeBody,
    clientAddress: string,
    private readonly onFinish: (ex: Exchange) => void,
    /** tunnel: the client side of an upgrade request, or null for an ordinary request. */
    readonly tunnel: DownstreamTunnel | null = null,
    /** h2: the request came on an HTTP/2 stream (the listener knows; an HTTP/1 request line may claim any version). */
    h2 = false,
    /** scheme: the listener's (for the server span's url.scheme). */
    scheme: 'http' | 'https' = 'http',
  ) {
    this.startedAt = performance.now();
    this.clientAddress = clientAddress;
    this.#body = body;
    this.#bodyReplayable = body === null || Buffer.isBuffer(body);
    this.#h2 = h2;
    // The header pass (and a route's preserveHost) leave Host empty when the backend's own is to be sent.
    this.#hostFromBackend = headers.length > 1 && headers[1] === '';
    this.path = req.url!;
    this.retry = route === null ? service.retry : route.retryFor(service);
    // Only HTTP/2 requests can be gRPC calls: HTTP/1 requests pay nothing for it.
    this.grpc = h2 ? grpcCall(req) : null;
    if (this.grpc !== null && body !== null && !Buffer.isBuffer(body)) this.#replay = new ReplayableBody(body, this.retry.maxBodySize);
    // The pipeline's one 'close' listener per response calls onClientClose (see pipeline.ts).
    (res as ExchangeCarrier)[EXCHANGE] = this;
    const total = route?.timeouts?.total ?? service.config.timeouts.total;
    if (total > 0) this.#timer = setTimeout(() => this.#deadline(), total);
    const ids = ctx.requestIds;
    if (ids !== null) this.requestId = ids.of(req);
    if (ctx.tracing.active) {
      this.trace = ctx.tracing.start({
        method: req.method!, target: req.url!, rawHeaders: req.rawHeaders, scheme, clientAddress,
        protocol: h2 ? '2' : `${req.httpVersionMajor}.${req.httpVersionMinor}`,
      });
    }
    if (headers.length > 0 && (ids !== null || this.trace !== null)) this.#markHeaders();
  }

  /**
   * #markHeaders puts the request id and the trace context in the backend's
   * header list: the client's own fields of those names go (an untrusted or
   * malformed id, a traceparent that is replaced by Fulcrum's), and the
   * traceparent value is filled in per attempt (#dispatch).
   */
  #markHeaders(): void {
    const headers = this.headers;
    const ids = this.ctx.requestIds;
    // From index 2: Host stays first (see headers.ts).
    if (ids !== null) {
      if (this.requestId === '') dropField(headers, ids.lowerHeader, 2);
      else setField(headers, ids.lowerHeader, ids.header, this.requestId, 2);
    }
    const trace = this.trace;
    if (trace !== null) {
      dropField(headers, 'tracestate', 2);
      this.#traceparentAt = setField(headers, 'traceparent', 'traceparent', '', 2);
      if (trace.traceState !== '') headers.push('tracestate', trace.traceState);
    }
  }

  // LogIds: what the access log and error answers name the request by.
  get traceId(): string { return this.trace === null ? '' : this.trace.traceId; }
  get spanId(): string { return this.trace === null ? '' : this.trace.spanId; }

  // RequestView: what the hash key and other request-reading policies see.
  get method(): string { return this.req.method!; }
  get url(): string { return this.req.url!; }
  get rawHeaders(): readonly string[] { return this.req.rawHeaders; }

  /** start picks a backend and dispatches; called once, then again per retry or when leaving the queue. */
  start(): void {
    if (this.#done) return;
    // Only a route whose services have a failover looks, and only before the first attempt.
    const failovers = this.route?.failovers;
    if (failovers != null && this.#serviceAttempts === 0) {
      const failover = failovers.get(this.service);
      if (failover !== undefined) {
        const verdict = this.service.canServe();
        if (failover.onVerdict(verdict)) return this.#failOver(failover);
      }
    }
    const circuit = this.service.circuit;
    if (circuit !== null && this.#circuit === null && !this.#admit(circuit)) return;
    const next = this.#next;
    this.#next = null;
    let backend = next !== null && next.state.reasons === 0 ? next : this.service.pick(this);
    if (backend !== undefined && this.service.isFull(backend)) {
      backend = this.#pickNotFull(backend);
      if (backend === undefined) {
        this.#enqueue();
        return;
      }
    }
    if (backend === undefined) {
      this.fail(this.attempts === 0 || this.error === null ? new FulcrumError('FULCRUM_ERR_NO_BACKEND', this.service.noBackendHint()) : this.error);
      return;
    }
    this.#dispatch(backend);
  }

  /** #admit asks the service's circuit breaker to let the request through; a refusal answers it. */
  #admit(circuit: CircuitBreaker): boolean {
    const ticket = circuit.admit();
    if (ticket === REFUSED) {
      this.fail(new FulcrumError('FULCRUM_ERR_CIRCUIT_OPEN', `service "${this.service.name}" is failing; retry later`));
      return false;
    }
    this.#circuit = circuit;
    this.#ticket = ticket;
    return true;
  }

  /** #pickNotFull asks the picker again, skipping backends at their connection limit. */
  #pickNotFull(first: Backend): Backend | undefined {
    const saved = this.tried;
    const skip = new Set(saved);
    skip.add(first);
    this.tried = skip;
    let backend = this.service.pick(this);
    while (backend !== undefined && this.service.isFull(backend)) {
      skip.add(backend);
      backend = this.service.pick(this);
    }
    this.tried = saved;
    return backend;
  }

  #queueTimer: NodeJS.Timeout | null = null;

  /** #enqueue waits (bounded by the service's queueTimeout) for a backend to free a slot. */
  #enqueue(): void {
    const service = this.service;
    service.queue.push(this);
    if (this.#queueTimer === null) {
      const timeout = service.config.queueTimeout;
      this.#queueTimer = setTimeout(() => {
        this.#queueTimer = null;
        this.fail(new FulcrumError('FULCRUM_ERR_QUEUE_TIMEOUT', `waited ${timeout}ms`));
      }, timeout);
    }
  }

  /** leaveQueue is called by the service's queue when a slot frees up. */
  leaveQueue(): void {
    if (this.#queueTimer !== null) clearTimeout(this.#queueTimer);
    this.#queueTimer = null;
    this.start();
  }

  get done(): boolean {
    return this.#done;
  }

  /** #visited: the services this request has failed over from (a guard: config/services.ts refuses cycles). */
  #visited: Set<Service> | null = null;

  /**
   * #failOver moves the request to the fallback service and starts again
   * there, with that service's retry policy, hash key and (on the way
   * back) its sticky cookie; backends tried here do not count there.
   */
  #failOver(failover: Failover): void {
    const visited = (this.#visited ??= new Set());
    visited.add(this.service);
    if (visited.has(failover.service)) {
      this.fail(this.error ?? new FulcrumError('FULCRUM_ERR_NO_BACKEND'));
      return;
    }
    this.service = failover.service;
    this.retry = this.route === null ? failover.service.retry : this.route.retryFor(failover.service);
    this.tried = undefined;
    this.hashKey = failover.service.hashKey === null ? undefined : failover.service.hashKey(this);
    this.error = null;
    this.#serviceAttempts = 0;
    this.failovers++;
    this.start();
  }

  /** failovers: how many times this request moved to a fallback service. */
  failovers = 0;
  /** #serviceAttempts: the attempts made on the current service (attempts counts them all, across failovers). */
  #serviceAttempts = 0;

  #dispatch(backend: Backend): void {
    this.backend = backend;
    this.attempts++;
    this.#serviceAttempts++;
    this.#inAttempt = true;
    this.#abort = null;
    const service = this.service;
    service.acquire(backend);
    this.#attemptStartedAt = performance.now();
    // upstreamHeaders left Host empty when it is not preserved or the client sent none (index 1: see headers.ts).
    if (this.#hostFromBackend) this.headers[1] = backend.hostHeader;
    if (this.trace !== null) this.#traceAttempt(this.trace, backend);
    if (this.tunnel !== null) {
      this.#openTunnel(backend, this.tunnel);
      return;
    }
    const timeouts = backend.config.timeouts;
    const opts: UpstreamRequest & { servername: string } = {
      path: this.path,
      method: this.req.method!,
      headers: this.headers,
      body: this.#replay === null ? this.#body : this.#replay.attempt(),
      // A constant per backend: otherwise undici derives the TLS name from each request's Host and
      // reconnects when it changes. The name actually sent is chosen by tlsConnector (backend-tls.ts).
      servername: backend.hostHeader,
      // Read only by a pool that sends the PROXY protocol (its ends are not looked up otherwise).
      client: this.req.socket,
    };
    // A body that may end with trailers (set by the pipeline: HTTP/2, or HTTP/1.1 chunked) has them forwarded.
    if (this.trailersPossible && opts.body !== null) opts.trailers = this.req;
    if (timeouts !== undefined) {
      if (timeouts.response !== undefined) opts.headersTimeout = timeouts.response;
      if (timeouts.idle !== undefined) opts.bodyTimeout = timeouts.idle;
    }
    // A route's timeouts are the most specific: they win over the backend's and the service's.
    const own = this.route?.timeouts;
    if (own != null) {
      if (own.response !== undefined) opts.headersTimeout = own.response;
      if (own.idle !== undefined) opts.bodyTimeout = own.idle;
    }
    const perTry = this.retry.perTryTimeout;
    if (perTry > 0) {
      this.#tryExpired = false;
      this.#tryTimer = setTimeout(perTryExpired, perTry, this);
    }
    // grpc-timeout caps the time to the response head: past it the client has given up.
    const grpc = this.grpc;
    if (grpc !== null && grpc.timeoutMs >= 0) {
      const left = Math.max(1, grpc.timeoutMs - Math.round(performance.now() - this.startedAt));
      const response = opts.headersTimeout ?? service.config.timeouts.response;
      if (response <= 0 || left < response) opts.headersTimeout = left;
    }
    try {
      const dispatcher = service.upstream.get(backend);
      this.#dispatcher = dispatcher;
      dispatcher.dispatch(opts, this);
    } catch (err) {
      this.onError(err as Error);
    }
  }

  /** #traceAttempt starts the attempt's client span and gives the backend its traceparent. */
  #traceAttempt(trace: RequestTrace, backend: Backend): void {
    // Whether an idle connection waits is known of Fulcrum's own client; a tunnel always opens its own.
    const idle = this.tunnel !== null ? 0 : this.service.upstream.get(backend).idleConnections;
    const value = trace.attempt({
      method: this.req.method!, backendId: backend.id, origin: backend.url, path: this.path,
      attempt: this.attempts, retryReason: this.#retryReason, reused: idle === undefined ? undefined : idle > 0,
    });
    if (this.#traceparentAt > 0) this.headers[this.#traceparentAt] = value;
  }

  /** #traceFailure: a failure counted against a backend, told to the outlier detector, and an ejection it caused to the trace. */
  #traceFailure(trace: RequestTrace, backend: Backend, detail: string): void {
    const before = backend.state.reasons & Reason.EJECTED;
    this.service.outlier.failure(backend, detail);
    if (before === 0 && (backend.state.reasons & Reason.EJECTED) !== 0) {
      trace.event('fulcrum.backend.ejected', { 'fulcrum.backend.id': backend.id, 'fulcrum.ejection.cause': detail });
    }
  }

  /** #openTunnel sends the upgrade request on a connection of its own (tunnel.ts). */
  #openTunnel(backend: Backend, tunnel: DownstreamTunnel): void {
    const headers = this.headers;
    headers.push('connection', 'Upgrade', 'upgrade', tunnel.protocol);
    const timeouts = { ...this.service.config.timeouts, ...backend.config.timeouts, ...this.route?.timeouts };
    const tls = backend.url.protocol === 'https:' ? this.service.upstream.tls.optionsFor(backend) : null;
    const proxyProtocol = this.service.upstream.proxyProtocolFor(backend);
    const proxyHeader = proxyProtocol === null ? null : encodeProxyHeader(proxyProtocol, this.req.socket);
    try {
      openTunnel(backend, tls, { method: this.req.method!, path: this.path, headers, connectTimeout: timeouts.connect, responseTimeout: timeouts.response, proxyHeader }, this);
    } catch (err) {
      this.onError(err as Error);
    }
    // A retry sends the list again: take the upgrade fields off (they are added per attempt).
    headers.length -= 4;
  }

  // --- upstream handler interface (dispatch.ts, tunnel.ts) -------------

  onConnect(abort: Abort): void {
    this.#abort = abort;
    // The perTryTimeout ran out before the client library handed over its abort.
    if (this.#tryExpired) {
      abort(this.#perTryError());
      return;
    }
    // The client left, or was already answered (a total deadline that fired while this attempt
    // waited for a connection): the request must not go out.
    if (this.#clientGone || this.#done) abort(new FulcrumError(this.#clientGone ? 'FULCRUM_ERR_CLIENT_ABORTED' : 'FULCRUM_ERR_TOTAL_TIMEOUT'));
  }

  onHeaders(statusCode: number, rawHeaders: RawHeaders, resume: () => void, statusText: string): boolean {
    if (this.#done) return false;
    if (statusCode < 200) return true; // 1xx: the listener answers Expect itself; others are dropped.
    this.#resume = resume;
    if (this.#tryTimer !== null) this.#clearTryTimer();
    const backend = this.backend!;
    const now = performance.now();
    this.service.observeLatency(backend, now - this.#attemptStartedAt);
    const trace = this.trace;
    if (trace !== null) trace.responseHead(statusCode);
    if (statusCode >= 500) {
      if (trace === null) this.service.outlier.failure(backend, `status ${statusCode}`);
      else this.#traceFailure(trace, backend, `status ${statusCode}`);
    } else if (this.grpc !== null) {
      this.#grpcOutcome(grpcStatusIn(rawHeaders)); // trailers-only, or wait for the trailers
    } else {
      this.service.outlier.success(backend);
    }
    if (this.#clientGone) return false;
    if (this.#circuit !== null) this.#headAt = now;
    if (this.retry.retriesStatus && this.#retriesStatus(statusCode)) return true;
    if (statusCode >= 400 && this.route?.failovers != null && this.#failOverOnStatus(statusCode)) return false;
    const res = this.res;
    // A response that starts while the listener drains is the connection's last (RFC 9112 9.6).
    // HTTP/2 has no per-response keep-alive: draining closes its sessions with GOAWAY instead.
    if (this.ctx.draining && !this.#h2) res.shouldKeepAlive = false;
    try {
      res.sendDate = false;
      let headers = downstreamHeaders(rawHeaders);
      // A trailers-only gRPC answer carries its status in the head; node:http2's compatibility response
      // cannot end a stream with its head, so the status goes out as trailers (which every client reads).
      if (this.grpcStatus >= 0) headers = this.#splitGrpcStatus(headers);
      if (this.requestId !== '') this.#answerId(headers);
      if (this.service.sticky !== null) this.service.onResponseHead(this, headers);
      if (this.setCookie !== null) headers.push('set-cookie', this.setCookie);
      const transform = this.route?.responseHeaders;
      if (transform != null) transform.apply(headers, this.headerValues!);
      const head = headersForWriteHead(res, headers);
      if (this.#h2) res.writeHead(statusCode, head); // HTTP/2 has no reason phrase
      else res.writeHead(statusCode, statusText || undefined, head);
    } catch (err) {
      // The backend sent something Node refuses to forward (e.g. an invalid header value).
      // HTTP/2 stores headers one by one as it checks them: drop those already stored.
      if (this.#h2) for (const name of res.getHeaderNames()) res.removeHeader(name);
      this.#abort?.(new FulcrumError('FULCRUM_ERR_UPSTREAM_PROTOCOL', (err as Error).message));
      return false;
    }
    this.#responseStarted = true;
    this.status = statusCode;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.#done) return false;
    if (this.#discarding) {
      this.#discarded += chunk.length;
      if (this.#discarded > DISCARD_LIMIT) this.#abort?.(new FulcrumError('FULCRUM_ERR_UPSTREAM_RESET', 'a retried response is dropped'));
      return true;
    }
    if (this.trace !== null) this.trace.responseBytes += chunk.length;
    if (this.res.write(chunk)) return true;
    this.res.once('drain', this.#resume!);
    return false;
  }

  onUpgrade(rawHeaders: readonly string[], statusText: string, upstream: Socket, upstreamHead: Buffer): void {
    const tunnel = this.tunnel;
    upstream.on('error', () => upstream.destroy());
    if (this.#done || this.#clientGone || tunnel === null) {
      upstream.destroy();
      this.#endAttempt();
      return;
    }
    const backend = this.backend!;
    this.handshakeMs = performance.now() - this.startedAt;
    this.service.observeLatency(backend, performance.now() - this.#attemptStartedAt);
    this.service.outlier.success(backend);
    // A tunnel's outcome is its 101: the circuit is not held for the life of the connection.
    if (this.#circuit !== null) this.#settleCircuit(false, this.handshakeMs);
    // A tunnel lives as long as its two sides: the total deadline is for reaching this point.
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    // The ClientRequest no longer owns the backend's socket: nothing to abort from here on.
    this.#abort = null;
    this.#responseStarted = true;
    this.status = 101;
    if (this.trace !== null) this.trace.responseHead(101);
    const headers = switchingHeaders(rawHeaders);
    if (this.requestId !== '') this.#answerId(headers);
    this.service.onResponseHead(this, headers);
    if (this.setCookie !== null) headers.push('set-cookie', this.setCookie);
    const transform = this.route?.responseHeaders;
    if (transform != null) transform.apply(headers, this.headerValues!);
    const client = tunnel.switchProtocols(statusText, headers);
    if (upstreamHead.length > 0) client.write(upstreamHead);
    if (tunnel.head.length > 0) upstream.write(tunnel.head);
    this.bytesIn = tunnel.head.length;
    this.bytesOut = upstreamHead.length;
    (client as Socket).setNoDelay?.(true);
    const tunnels = this.ctx.tunnels.sockets;
    tunnels.add(client);
    let open = true;
    const close = (): void => {
      if (!open) return;
      open = false;
      tunnels.delete(client);
      client.destroy();
      upstream.destroy();
      this.#endAttempt();
      this.#finish();
    };
    client.on('data', (chunk: Buffer) => { this.bytesIn += chunk.length; });
    upstream.on('data', (chunk: Buffer) => { this.bytesOut += chunk.length; });
    client.once('close', close);
    upstream.once('close', close);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** #grpcTrailers: a trailers-only answer's status fields, sent as the trailers. */
  #grpcTrailers: string[] | null = null;

  #splitGrpcStatus(headers: string[]): string[] {
    const head: string[] = [];
    const trailers: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!.toLowerCase();
      (name === 'grpc-status' || name === 'grpc-message' || name === 'grpc-status-details-bin' ? trailers : head).push(headers[i]!, headers[i + 1]!);
    }
    this.#grpcTrailers = trailers;
    return head;
  }

  onComplete(rawTrailers: RawHeaders | null): void {
    if (this.#grpcTrailers !== null) rawTrailers = rawTrailers === null ? this.#grpcTrailers : [...this.#grpcTrailers, ...rawTrailers];
    else if (this.grpc !== null && rawTrailers !== null) this.#grpcOutcome(grpcStatusIn(rawTrailers));
    this.#endAttempt();
    if (this.#discarding) {
      this.#discarding = false;
      this.#retryAfterStatus();
      return;
    }
    const res = this.res;
    if (rawTrailers !== null && rawTrailers.length > 0 && (this.#h2 || res.chunkedEncoding)) {
      const trailers: [string, string][] = [];
      for (let i = 0; i < rawTrailers.length; i += 2) trailers.push([latin1(rawTrailers[i]!), latin1(rawTrailers[i + 1]!)]);
      try { res.addTrailers(this.#h2 ? Object.fromEntries(trailers) : trailers); } catch { /* invalid trailer from backend: drop it */ }
    }
    res.end();
    this.#finish();
  }

  onError(err: Error): void {
    const wasInAttempt = this.#inAttempt;
    const error = fromUpstreamError(err, this.#responseStarted);
    this.#endAttempt(error.code);
    // Already answered (total deadline): this is the late attempt winding down, not a backend failure.
    if (this.#done) return;
    const pending = this.#pendingFailover;
    if (pending !== null && err === FAILING_OVER) {
      // The answer that sent the request on was discarded, not a failure of the connection.
      this.#pendingFailover = null;
      // Not from inside the upstream client's callback: the new attempt starts once it has unwound.
      queueMicrotask(() => { if (!this.#done) this.#failOver(pending); });
      return;
    }
    if (this.#discarding) {
      // The dropped response ended badly (or was cut): the status already decided on a retry.
      this.#discarding = false;
      if (!this.#clientGone && !this.#deadlinePassed) {
        this.#retryAfterStatus();
        return;
      }
    }
    this.error = error;
    const backend = this.backend;
    if (this.#clientGone || error.code === 'FULCRUM_ERR_CLIENT_ABORTED') {
      this.status = this.#responseStarted ? this.status : 499;
      this.#finish();
      return;
    }
    if (backend !== null && wasInAttempt && error.source === 'upstream') {
      backend.state.failures++;
      if (error.code === 'FULCRUM_ERR_UPSTREAM_TLS') this.service.upstream.tls.reportFailure(backend, error);
      // A refused stream (GOAWAY, REFUSED_STREAM) is the backend shedding a stream it never began, not a failure.
      if (error.code !== 'FULCRUM_ERR_TOTAL_TIMEOUT' && error.code !== 'FULCRUM_ERR_UPSTREAM_REFUSED') {
        if (this.trace === null) this.service.outlier.failure(backend, error.code);
        else this.#traceFailure(this.trace, backend, error.code);
      }
    }
    if (this.#responseStarted || this.res.headersSent) {
      // Part of the response reached the client: the only honest signal left is an aborted response.
      this.res.destroy(error);
      this.#finish();
      return;
    }
    if (error.code === 'FULCRUM_ERR_UPSTREAM_REFUSED' && this.#mayResend()) {
      // The backend is not at fault (see #mayResend): it may take the request again on a new connection.
      this.ctx.metrics.countRetry(this.service.name, 'refused-stream');
      this.start();
      return;
    }
    const reason = error.retryable ? this.retry.errorReason(error.code) : null;
    if (reason !== null && this.#mayRetry(error)) {
      (this.tried ??= new Set()).add(backend!);
      if (this.trace !== null) {
        this.#retryReason = error.code;
        this.trace.event('fulcrum.retry', { 'fulcrum.retry.reason': error.code, 'fulcrum.backend.id': backend!.id, 'fulcrum.attempt': this.attempts });
      }
      this.#retry(reason);
      return;
    }
    this.fail(error);
  }

  #pendingFailover: Failover | null = null;

  /**
   * #failOverOnStatus: the service answered a status its failover lists and
   * the request could be sent again (its method retryable, its body
   * replayable): the answer is discarded (the attempt aborted, which ends
   * in onError) and the request goes to the fallback service.
   */
  #failOverOnStatus(status: number): boolean {
    const failover = this.route!.failovers!.get(this.service);
    if (failover === undefined || !failover.onStatus(status)) return false;
    if (!this.#bodyReplayable || this.tunnel !== null || !this.retry.methods.has(this.req.method!) || this.#abort === null) return false;
    this.#pendingFailover = failover;
    this.#abort(FAILING_OVER);
    return true;
  }

  /** onPerTryTimeout: the attempt reached no response head within `retries.perTryTimeout`. */
  onPerTryTimeout(): void {
    this.#tryTimer = null;
    if (!this.#inAttempt || this.#done) return;
    if (this.#abort !== null) this.#abort(this.#perTryError());
    else this.#tryExpired = true;
  }

  #perTryError(): FulcrumError {
    return new FulcrumError('FULCRUM_ERR_RESPONSE_TIMEOUT', `no response head within retries.perTryTimeout (${this.retry.perTryTimeout}ms)`);
  }

  #clearTryTimer(): void {
    clearTimeout(this.#tryTimer!);
    this.#tryTimer = null;
  }

  // --- lifecycle -------------------------------------------------------

  /** #mayRetry: the request may be retried once more (replayable body, time left, method or key, attempts, budget). */
  #mayRetry(error: FulcrumError | null = null): boolean {
    const retry = this.retry;
    const replayable = this.#bodyReplayable || (this.#replay !== null && this.#replay.replayable);
    if (!replayable || this.#deadlinePassed) return false;
    // attempts counts the tries made so far: the first one plus the retries. An attempt that never
    // reached its backend may be sent again whatever the method: nothing acted on it.
    if (this.#serviceAttempts > retry.attempts) return false;
    if (!retry.requestAllows(this.req.method!, this.req.rawHeaders) && (error === null || !neverReached(error))) return false;
    return retry.budget.tryAcquire();
  }

  #refusals = 0;

  /**
   * #mayResend: a stream the backend refused (above a GOAWAY's last stream
   * id, or REFUSED_STREAM) never reached it; most often the backend is
   * rotating its connection, which says nothing of its health or load. Such
   * an attempt goes again, to any backend (this one included: its next
   * stream opens a new session), outside the retry count and budget, up to
   * MAX_REFUSALS times, when the body can be sent again.
   */
  #mayResend(): boolean {
    const replayable = this.#bodyReplayable || (this.#replay !== null && this.#replay.replayable);
    if (!replayable || this.#deadlinePassed || this.#refusals >= MAX_REFUSALS) return false;
    this.#refusals++;
    this.attempts--;
    return true;
  }

  /** #grpcOutcome: a gRPC answer's status (-1: not known yet), for passive health and the log. */
  #grpcOutcome(status: number): void {
    if (status < 0) return;
    this.grpcStatus = status;
    const backend = this.backend!;
    if (isGrpcFailure(status)) this.service.outlier.failure(backend, `grpc-status ${status}`);
    else this.service.outlier.success(backend);
  }

  /** proto: the protocol the client spoke ("1.1" or "2"). */
  get proto(): '1.1' | '2' {
    return this.#h2 ? '2' : '1.1';
  }

  /** upstreamProto: the protocol spoken to the backend ("1.1" or "2"), "" when no backend was tried. */
  get upstreamProto(): '' | '1.1' | '2' {
    const d = this.#dispatcher;
    return d === null ? '' : d.protocol ?? '1.1';
  }

  /**
   * #retriesStatus decides, at a response head, whether this status is
   * retried: `retries.on` lists it, the request may be retried, and
   * another backend can take it (otherwise this response is the answer).
   * Then the response is read and dropped, and the retry follows its end.
   */
  #retriesStatus(status: number): boolean {
    if (this.tunnel !== null) return false;
    const reason = this.retry.statusReason(status);
    if (reason === null) return false;
    const tried = (this.tried ??= new Set());
    tried.add(this.backend!);
    const next = this.service.pick(this);
    if (next === undefined || !this.#mayRetry()) return false;
    this.#next = next;
    this.#discarding = true;
    this.#discarded = 0;
    this.#noteRetry(reason);
    return true;
  }

  /** #retryAfterStatus: the dropped response has ended; the next attempt goes out (after the back-off). */
  #retryAfterStatus(): void {
    const delay = this.retry.backoffDelay(this.attempts);
    if (delay > 0) this.#retryTimer = setTimeout(retryAfterBackoff, delay, this);
    else this.start();
  }

  /** #retry counts a retry for an error and starts the next attempt, after the back-off. */
  #retry(reason: RetryReason): void {
    this.#noteRetry(reason);
    const delay = this.retry.backoffDelay(this.attempts);
    if (delay > 0) this.#retryTimer = setTimeout(retryAfterBackoff, delay, this);
    else this.start();
  }

  #noteRetry(reason: RetryReason): void {
    (this.retryReasons ??= []).push(reason);
    this.ctx.metrics.countRetry(this.service.name, reason);
  }

  /** retryNow: the back-off is over. */
  retryNow(): void {
    this.#retryTimer = null;
    this.start();
  }

  /**
   * #settleCircuit tells the breaker that admitted this request how it
   * went: failed (a 5xx from a backend, or an upstream error) or not, and
   * how long to the response head. A request that reached no backend, or
   * whose client left, is released without an outcome.
   */
  #settleCircuit(failed: boolean, latencyMs: number): void {
    const circuit = this.#circuit!;
    this.#circuit = null;
    circuit.settle(this.#ticket, failed, latencyMs);
  }

  #circuitOutcome(): void {
    const circuit = this.#circuit!;
    const error = this.error;
    if (this.attempts === 0 || this.#clientGone || (error !== null && error.source !== 'upstream')) {
      this.#circuit = null;
      circuit.release(this.#ticket);
      return;
    }
    const latency = (this.#headAt > 0 ? this.#headAt : performance.now()) - this.startedAt;
    this.#settleCircuit(error !== null || this.status >= 500, latency);
  }

  #deadlinePassed = false;

  #deadline(): void {
    this.#timer = null;
    this.#deadlinePassed = true;
    const err = new FulcrumError('FULCRUM_ERR_TOTAL_TIMEOUT');
    if (this.#abort !== null && this.#inAttempt) this.#abort(err);
    else if (!this.#done) this.fail(err);
  }

  /** #endAttempt frees the attempt's slot at its backend; `error`: the code it failed with (for its span). */
  #endAttempt(error?: string): void {
    if (!this.#inAttempt) return;
    this.#inAttempt = false;
    if (this.#tryTimer !== null) this.#clearTryTimer();
    this.service.release(this.backend!);
    if (this.trace !== null) this.trace.attemptEnd(error);
  }

  /** #answerId gives the client's response the request id (replacing one the backend sent under that name). */
  #answerId(headers: string[]): void {
    const ids = this.ctx.requestIds!;
    setField(headers, ids.lowerHeader, ids.header, this.requestId);
  }

  onClientClose(): void {
    if (this.#done) return;
    this.#clientGone = true;
    if (this.#inAttempt && this.#abort !== null) this.#abort(new FulcrumError('FULCRUM_ERR_CLIENT_ABORTED'));
    else if (!this.#inAttempt) {
      this.status = 499;
      this.#finish();
    }
  }

  /** respond answers the client itself (a route's redirect or fixed answer): no backend is involved. */
  respond(status: number, headers: Readonly<Record<string, string>>, body: string): void {
    this.status = status;
    const res = this.res;
    this.#lastOnConnection();
    if (!res.headersSent && !this.#clientGone) {
      const head: Record<string, string | number> = { ...headers, 'content-length': Buffer.byteLength(body) };
      if (this.requestId !== '') head[this.ctx.requestIds!.header] = this.requestId;
      res.writeHead(status, head);
      res.end(body);
    }
    this.#finish();
  }

  /**
   * #lastOnConnection, before Fulcrum answers itself: a request body left
   * unread (413, a 503 before forwarding...) makes an HTTP/1 connection
   * unusable, and so does draining; a connection that closes after this
   * answer is marked, so that the requests pipelined behind it are not proxied.
   */
  #lastOnConnection(): void {
    if (this.#h2) return;
    const res = this.res;
    if ((!this.req.complete && hasBody(this.req)) || this.ctx.draining) res.shouldKeepAlive = false;
    if (!res.shouldKeepAlive) this.req.socket[CLOSING] = true;
  }

  /** fail answers the client with the error's status and a short plain-text reason. */
  fail(error: FulcrumError, extraHeaders?: Readonly<Record<string, string>>): void {
    this.error = error;
    this.status = error.status;
    const res = this.res;
    // A request body left unread (413, a 503 before forwarding...) makes the connection unusable.
    if (!this.#h2 && ((!this.req.complete && hasBody(this.req)) || this.ctx.draining)) res.shouldKeepAlive = false;
    const trace = this.trace;
    if (trace !== null) trace.event('fulcrum.refused', { 'fulcrum.error.code': error.code, 'http.response.status_code': error.status });
    // After a malformed request (400, 431) what follows on the connection cannot be trusted: it closes.
    if (error.status === 400 || error.status === 431) res.shouldKeepAlive = false;
    this.#lastOnConnection();
    if (this.grpc !== null) {
      // gRPC clients read a call's outcome from grpc-status, not from an HTTP error page.
      this.grpcStatus = grpcAnswer(res, error, extraHeaders, this.#clientGone);
      if (!this.#clientGone) this.status = 200;
    } else if (!res.headersSent && !this.#clientGone) {
      // With request ids or tracing, a second line names the request, so a report of this answer leads to its log line and trace.
      const ids = this.requestId !== '' || trace !== null ? idLine(this) : '';
      const body = `${error.status} ${statusText(error.status)}: ${error.message}\n${ids}`;
      const head: Record<string, string | number> = {
        ...extraHeaders,
        'content-type': 'text/plain; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        'x-fulcrum-error': error.code,
      };
      if (this.requestId !== '') head[this.ctx.requestIds!.header] = this.requestId;
      res.writeHead(error.status, head);
      res.end(body);
    }
    this.#finish();
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (this.#queueTimer !== null) clearTimeout(this.#queueTimer);
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    if (this.#circuit !== null) this.#circuitOutcome();
    (this.res as ExchangeCarrier)[EXCHANGE] = null;
    this.onFinish(this);
  }
}

/** idLine: the error answer's line naming the request: `request-id=... trace-id=... span-id=...` (those it has). */
function idLine(ids: LogIds): string {
  const parts: string[] = [];
  if (ids.requestId !== '') parts.push(`request-id=${ids.requestId}`);
  if (ids.traceId !== '') parts.push(`trace-id=${ids.traceId}`, `span-id=${ids.spanId}`);
  return `${parts.join(' ')}\n`;
}

/** MAX_REFUSALS: how many refused streams one request may see before the refusal is its answer. */
const MAX_REFUSALS = 3;

/** hasBody: the request announces a body (read only on error paths: it builds req.headers). */
function hasBody(req: DownstreamRequest): boolean {
  const h = req.headers;
  return h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0');
}

/**
 * headersForWriteHead: the flat list as is (Node's fast path) unless headers
 * were set with `res.setHeader` before the response started (e.g. the rate
 * limiter's RateLimit headers). Then Node merges a flat list entry by entry
 * with setHeader and a backend's repeated headers (two Set-Cookie) would
 * collapse into one, so they are grouped into an object of arrays instead.
 */
function headersForWriteHead(res: DownstreamResponse, headers: string[]): string[] | Record<string, string | string[]> {
  if (res.getHeaderNames().length === 0) return headers;
  const grouped: Record<string, string | string[]> = {};
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    const value = headers[i + 1]!;
    const seen = grouped[name];
    grouped[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  return grouped;
}

function statusText(status: number): string {
  switch (status) {
    case 400: return 'Bad Request';
    case 403: return 'Forbidden';
    case 404: return 'Not Found';
    case 413: return 'Content Too Large';
    case 429: return 'Too Many Requests';
    case 431: return 'Request Header Fields Too Large';
    case 499: return 'Client Closed Request';
    case 500: return 'Internal Server Error';
    case 502: return 'Bad Gateway';
    case 503: return 'Service Unavailable';
    case 504: return 'Gateway Timeout';
    case 505: return 'HTTP Version Not Supported';
    default: return 'Error';
  }
}
