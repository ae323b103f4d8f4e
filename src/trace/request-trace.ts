/**
 * RequestTrace: the spans of one request. A server span covers the whole
 * request (for a WebSocket, until the tunnel closes); each attempt to a
 * backend is a client span under it, and the backend is told, in its
 * `traceparent`, that its parent is that client span. Attribute names are
 * OpenTelemetry's HTTP semantic conventions where one exists
 * (`http.request.method`, `url.full`, `http.response.status_code`, ...)
 * and `fulcrum.*` for what only a balancer knows (route, service, backend,
 * attempt, retry reason, connection reuse, time to first byte).
 *
 * Sampling is decided here, before the SDK is asked for anything: a
 * client's sampled flag is followed (parent-based), and a new trace is
 * sampled at `sampleRatio`. A request that is not sampled never reaches
 * the SDK: it gets ids of its own (the client's trace id when it sent one),
 * so context still propagates to the backend with the sampled flag off,
 * but no span object, attribute, sampler call or id check is made for it
 * (at 1% sampling those were most of tracing's cost: docs/performance.md).
 * The SDK's sampler is then always-on under a parent-based rule
 * (provider.ts): it records what was decided here.
 */
import type { Attributes, Span, Tracer } from '@opentelemetry/api';
import { otelApi } from './otel.js';
import { formatTraceparent, remoteParent } from './context.js';
import { randomSpanId, randomTraceId } from './ids.js';

/** ERROR: the value of SpanStatusCode.ERROR (OTLP's STATUS_CODE_ERROR), fixed by the protocol. */
const ERROR = 2;

/** TracedRequest is what the server span is started from. */
export interface TracedRequest {
  readonly method: string;
  readonly target: string;
  readonly rawHeaders: readonly string[];
  readonly scheme: 'http' | 'https';
  /** protocol: the HTTP version the client spoke ('1.1', '1.0', '2'). */
  readonly protocol: string;
  readonly clientAddress: string;
}

/** AttemptInfo is what a client span is started from. */
export interface AttemptInfo {
  readonly method: string;
  readonly backendId: string;
  /** origin: the backend's URL (scheme, host, port); path: what is requested there. */
  readonly origin: URL;
  readonly path: string;
  /** attempt: 1 for the first try, 2 for the first retry, ... */
  readonly attempt: number;
  /** retryReason: the error code that made this a retry (undefined for the first attempt). */
  readonly retryReason: string | undefined;
  /** reused: the request goes on a kept-alive connection (undefined when the client cannot tell). */
  readonly reused: boolean | undefined;
}

/** RequestSummary: what the server span records when the request ends. */
export interface RequestSummary {
  readonly status: number;
  readonly route: string | null;
  readonly service: string | null;
  readonly backend: string | null;
  readonly attempts: number;
  readonly error: string | undefined;
  /** requestBytes: the request body's size when known (-1: unknown); responseBytes: body bytes sent. */
  readonly requestBytes: number;
  readonly responseBytes: number;
  /** tunnel: for an upgraded connection, the bytes each way after the heads. */
  readonly tunnel: { readonly bytesIn: number; readonly bytesOut: number } | null;
}

export class RequestTrace {
  readonly traceId: string;
  /** spanId: the server span's id (what the access log and error answers show). */
  readonly spanId: string;
  readonly sampled: boolean;
  /** traceState: the client's tracestate, when valid (forwarded unchanged), else ''. */
  readonly traceState: string;
  /** responseBytes: counted by the exchange as body bytes go to the client. */
  responseBytes = 0;
  readonly #tracer: Tracer;
  /** #server: the server span; null for a request not sampled (nothing is recorded for it). */
  readonly #server: Span | null;
  readonly #method: string;
  #client: Span | null = null;
  #clientStartedAt = 0;

  /** sampleRatio: the share of new traces (no sampled parent) that are recorded. */
  constructor(tracer: Tracer, req: TracedRequest, sampleRatio: number) {
    this.#tracer = tracer;
    this.#method = req.method;
    const parent = remoteParent(req.rawHeaders);
    this.traceState = parent?.traceState ?? '';
    const sampled = parent !== null ? parent.sampled : sampleRatio >= 1 || Math.random() < sampleRatio;
    if (!sampled) {
      this.traceId = parent?.traceId ?? randomTraceId();
      this.spanId = randomSpanId();
      this.sampled = false;
      this.#server = null;
      return;
    }
    const { ROOT_CONTEXT, SpanKind, createTraceState, trace } = otelApi();
    const context = parent === null ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, {
      traceId: parent.traceId,
      spanId: parent.spanId,
      traceFlags: parent.sampled ? 1 : 0,
      isRemote: true,
      ...(parent.traceState === '' ? {} : { traceState: createTraceState(parent.traceState) }),
    });
    const server = tracer.startSpan(req.method, { kind: SpanKind.SERVER, attributes: serverAttributes(req) }, context);
    this.#server = server;
    const ctx = server.spanContext();
    this.traceId = ctx.traceId;
    this.spanId = ctx.spanId;
    this.sampled = (ctx.traceFlags & 1) === 1;
  }

  /** attempt starts the client span of an attempt and returns the `traceparent` the backend gets. */
  attempt(info: AttemptInfo): string {
    this.#endClient(undefined);
    const server = this.#server;
    // Not sampled: the backend is told of a client span that is not recorded, with an id of its own.
    if (server === null) return formatTraceparent(this.traceId, randomSpanId(), false);
    const { ROOT_CONTEXT, SpanKind, trace } = otelApi();
    const client = this.#tracer.startSpan(info.method, { kind: SpanKind.CLIENT, attributes: clientAttributes(info) }, trace.setSpan(ROOT_CONTEXT, server));
    this.#client = client;
    this.#clientStartedAt = performance.now();
    const ctx = client.spanContext();
    return formatTraceparent(ctx.traceId, ctx.spanId, (ctx.traceFlags & 1) === 1);
  }

  /** responseHead: the backend's answer began (its status, and the time to its first byte). */
  responseHead(status: number): void {
    const client = this.#client;
    if (client === null) return;
    const ttfb = Math.round((performance.now() - this.#clientStartedAt) * 1000) / 1000;
    client.setAttribute('http.response.status_code', status);
    client.setAttribute('fulcrum.upstream.ttfb_ms', ttfb);
    client.addEvent('fulcrum.first_byte');
    // A client span's 4xx and 5xx are errors (semantic conventions); a 101 or 2xx-3xx leaves it unset.
    if (status >= 400) {
      client.setAttribute('error.type', String(status));
      client.setStatus({ code: ERROR });
    }
  }

  /** attemptEnd ends the current client span; `error` is the Fulcrum error code it failed with. */
  attemptEnd(error: string | undefined): void {
    this.#endClient(error);
  }

  /** event adds an event to the server span (retries, ejections, refusals). */
  event(name: string, attributes: Attributes): void {
    this.#server?.addEvent(name, attributes);
  }

  /** end records how the request ended and ends the server span (and a client span still open). */
  end(summary: RequestSummary): void {
    this.#endClient(summary.error);
    const span = this.#server;
    if (span === null || !span.isRecording()) return;
    if (summary.route !== null) {
      span.updateName(`${this.#method} ${summary.route}`);
      span.setAttribute('fulcrum.route', summary.route);
    }
    if (summary.service !== null) span.setAttribute('fulcrum.service', summary.service);
    if (summary.backend !== null) span.setAttribute('fulcrum.backend.id', summary.backend);
    span.setAttribute('fulcrum.attempts', summary.attempts);
    if (summary.status > 0) span.setAttribute('http.response.status_code', summary.status);
    if (summary.requestBytes >= 0) span.setAttribute('http.request.body.size', summary.requestBytes);
    span.setAttribute('http.response.body.size', summary.responseBytes);
    if (summary.tunnel !== null) {
      span.setAttribute('fulcrum.tunnel.bytes_in', summary.tunnel.bytesIn);
      span.setAttribute('fulcrum.tunnel.bytes_out', summary.tunnel.bytesOut);
    }
    if (summary.error !== undefined) {
      span.setAttribute('error.type', summary.error);
      span.setAttribute('fulcrum.error.code', summary.error);
    } else if (summary.status >= 500) {
      span.setAttribute('error.type', String(summary.status));
    }
    // A server span's 5xx is an error; a 4xx is the client's (semantic conventions).
    if (summary.status >= 500) span.setStatus({ code: ERROR, ...(summary.error === undefined ? {} : { message: summary.error }) });
    span.end();
  }

  #endClient(error: string | undefined): void {
    const client = this.#client;
    if (client === null) return;
    this.#client = null;
    if (error !== undefined && client.isRecording()) {
      client.setAttribute('error.type', error);
      client.setStatus({ code: ERROR, message: error });
    }
    client.end();
  }
}

/** serverAttributes: the server span's request attributes (semantic conventions). */
function serverAttributes(req: TracedRequest): Attributes {
  const q = req.target.indexOf('?');
  const attributes: Attributes = {
    'http.request.method': req.method,
    'url.path': q === -1 ? req.target : req.target.slice(0, q),
    'url.scheme': req.scheme,
    'client.address': req.clientAddress,
    'network.protocol.name': 'http',
    'network.protocol.version': req.protocol,
  };
  if (q !== -1) attributes['url.query'] = req.target.slice(q + 1);
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') attributes['server.address'] = raw[i + 1]!;
    else if (name === ':authority') attributes['server.address'] = raw[i + 1]!;
    else if (name.length === 10 && name.toLowerCase() === 'user-agent') attributes['user_agent.original'] = raw[i + 1]!;
  }
  return attributes;
}

/** clientAttributes: an attempt's client span attributes. */
function clientAttributes(info: AttemptInfo): Attributes {
  const port = info.origin.port === '' ? (info.origin.protocol === 'https:' ? 443 : 80) : Number(info.origin.port);
  const attributes: Attributes = {
    'http.request.method': info.method,
    'server.address': info.origin.hostname,
    'server.port': port,
    'url.full': `${info.origin.protocol}//${info.origin.host}${info.path}`,
    'fulcrum.backend.id': info.backendId,
    'fulcrum.attempt': info.attempt,
  };
  if (info.attempt > 1) attributes['http.request.resend_count'] = info.attempt - 1;
  if (info.retryReason !== undefined) attributes['fulcrum.retry.reason'] = info.retryReason;
  if (info.reused !== undefined) attributes['fulcrum.connection.reused'] = info.reused;
  return attributes;
}
