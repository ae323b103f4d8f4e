/**
 * The request pipeline, as the list of phases it is:
 *   internal route? -> request checks (target, limits) -> request filters
 *   (rate limit...) -> forwarded headers -> body (stream, or buffer to make
 *   it retryable) -> choose upstream + forward (Exchange) -> log and count.
 * Nothing here waits on shared state; the only I/O is to the client and
 * the chosen backend.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { Readable } from 'node:stream';
import { requestChannel, type RequestEvent } from '../core/events.js';
import type { AccessLog } from '../observe/access-log.js';
import { BodyLimit, collectBody } from './body.js';
import type { DownstreamRequest, DownstreamResponse } from '../core/downstream.js';
import type { FastPathHandler } from '../listen/fast-path.js';
import { FastRequest } from '../listen/fast-request.js';
import { FulcrumError } from '../core/errors.js';
import { EXCHANGE, Exchange, type ExchangeBody, type ExchangeCarrier } from './exchange.js';
import { clientAddressOf, newRequestMeta, upstreamHeaders, type RequestMeta } from './headers.js';
import { stripMappedPrefix } from '../core/trusted-proxies.js';
import type { ProxyRuntime } from './runtime.js';
import type { InternalRoutes } from '../core/internal-routes.js';
import type { FilterReject, RequestFilter } from '../core/request-filter.js';

/** HashKeyFn extracts the consistent-hash key of a request, for the hash policies. */
export type HashKeyFn = (req: DownstreamRequest, meta: RequestMeta, clientAddress: string) => string | undefined;

export interface PipelineOptions {
  runtime: ProxyRuntime;
  proto: 'http' | 'https';
  internal: InternalRoutes | null;
  filters: () => readonly RequestFilter[];
  hashKey: () => HashKeyFn | null;
  accessLog: AccessLog | null;
}

/**
 * Pipeline: the same request handling behind both servers of a listener:
 * node:http's request listener, and the fast path's (fast-path.ts).
 */
export interface Pipeline {
  listener: RequestListener;
  fast: FastPathHandler;
}

export function createPipeline(options: PipelineOptions): Pipeline {
  const { runtime: rt, proto, internal } = options;

  const finish = (ex: Exchange): void => {
    const seconds = (performance.now() - ex.startedAt) / 1000;
    const backendId = ex.backend?.id ?? 'none';
    rt.metrics.record(backendId, ex.status, seconds);
    const log = rt.config.accessLog ? options.accessLog : null;
    if (log !== null) log.write(ex.req.method!, ex.req.url!, ex.status, backendId, ex.clientAddress, Math.round(seconds * 1e6) / 1000, ex.attempts, ex.error?.code);
    if (requestChannel.hasSubscribers) {
      const event: RequestEvent = {
        backend: ex.backend?.id ?? null, method: ex.req.method ?? '', path: ex.req.url ?? '', status: ex.status,
        durationMs: seconds * 1000, attempts: ex.attempts, error: ex.error?.code ?? null,
      };
      requestChannel.publish(event);
    }
  };

  const reject = (req: DownstreamRequest, res: DownstreamResponse, error: FulcrumError, clientAddress: string, headers?: Readonly<Record<string, string>>): void => {
    const ex = new Exchange(rt, req, res, [], null, clientAddress, finish);
    ex.fail(error, headers);
  };

  // One shared listener (no per-request closure) keeps the count of requests in
  // flight and tells the exchange, if any, that the response is closed.
  const onResponseClose = function (this: DownstreamResponse): void {
    rt.active--;
    const ex = (this as ExchangeCarrier)[EXCHANGE];
    if (ex != null) ex.onClientClose();
  };

  const listener = function onRequest(req: IncomingMessage, res: ServerResponse): void {
    // At maxRequestsPerSocket node:http writes "Connection: close" but keeps the connection open
    // (answering the next request 503): close it, as the header says.
    if ((res as { maxRequestsOnConnectionReached?: boolean }).maxRequestsOnConnectionReached === true) res.shouldKeepAlive = false;
    if (internal !== null && internal.matches(req.url!)) {
      internal.handle(req, res);
      return;
    }
    proxy(req, res);
  };

  const fast: FastPathHandler = {
    isInternal: (url) => internal !== null && internal.matches(url),
    proxy,
  };

  return { listener, fast };

  /** proxy handles a request for a backend, from either server. */
  function proxy(req: DownstreamRequest, res: DownstreamResponse): void {
    const url = req.url!;
    rt.active++;
    // on, not once: a response closes once, and once() would allocate a wrapper per request.
    res.on('close', onResponseClose);
    const h2 = req.httpVersionMajor === 2;
    const peer = req instanceof FastRequest ? req.peer : req.socket.remoteAddress ?? '';
    if (url.charCodeAt(0) !== 47 /* "/" */ && !normalizeTarget(req)) {
      reject(req, res, new FulcrumError('FULCRUM_ERR_BAD_REQUEST', 'request target must be a path'), stripMappedPrefix(peer));
      return;
    }
    const meta = newRequestMeta();
    const headers = upstreamHeaders(req.rawHeaders, { peer, proto, authority: h2 ? (req as unknown as Http2ServerRequest).authority : undefined }, rt.forward, meta);
    // An HTTP/2 body needs no Content-Length: a stream not ended with its headers has one, of unknown length.
    if (h2 && meta.contentLength < 0 && !(req as unknown as Http2ServerRequest).stream.endAfterHeaders) meta.chunked = true;
    const client = meta.xff === undefined ? stripMappedPrefix(peer) : clientAddressOf(peer, meta.xff, rt.forward.trusted);

    const maxBody = rt.config.limits.maxBodySize;
    if (maxBody > 0 && meta.contentLength > maxBody) {
      reject(req, res, new FulcrumError('FULCRUM_ERR_BODY_TOO_LARGE', `limit is ${maxBody} bytes`), client);
      return;
    }

    const filters = options.filters();
    if (filters.length === 0) {
      proceed(req, res, headers, client, meta);
      return;
    }
    runFilters(filters, 0, req, res, client, () => proceed(req, res, headers, client, meta), (error, extra) => reject(req, res, error, client, extra));
  }

  /** proceed chooses how the body travels (none, buffered to be retryable, streamed) and forwards. */
  function proceed(req: DownstreamRequest, res: DownstreamResponse, headers: string[], client: string, meta: RequestMeta): void {
    rt.retry.budget.recordRequest();
    const hasBody = meta.chunked || meta.contentLength > 0;
    if (!hasBody) return forward(req, res, headers, null, client, meta);
    // The fast path hands every request with a body to node:http (fast-request.ts).
    if (req instanceof FastRequest) throw new Error('a fast-path request cannot have a body');
    const stream: Readable = req;
    if (!meta.chunked && meta.contentLength <= rt.retry.maxBodySize && rt.retry.methodAllows(req.method!)) {
      collectBody(req, meta.contentLength, (err, body) => {
        if (err !== null) reject(req, res, err, client);
        else forward(req, res, headers, body, client, meta);
      });
      return;
    }
    const maxBody = rt.config.limits.maxBodySize;
    if (meta.chunked && maxBody > 0) {
      const limited = new BodyLimit(maxBody);
      stream.on('error', (err) => limited.destroy(err));
      forward(req, res, headers, stream.pipe(limited), client, meta);
      return;
    }
    forward(req, res, headers, stream, client, meta);
  }

  function forward(req: DownstreamRequest, res: DownstreamResponse, headers: string[], body: ExchangeBody, client: string, meta: RequestMeta): void {
    const ex = new Exchange(rt, req, res, headers, body, client, finish);
    const hashKey = options.hashKey();
    if (hashKey !== null) ex.hashKey = hashKey(req, meta, client);
    ex.cookie = meta.cookie;
    ex.start();
  }
}

function runFilters(filters: readonly RequestFilter[], i: number, req: DownstreamRequest, res: DownstreamResponse, client: string, done: () => void, reject: FilterReject): void {
  if (i === filters.length) return done();
  filters[i]!.filter(req, res, client, () => runFilters(filters, i + 1, req, res, client, done, reject), reject);
}

/**
 * normalizeTarget turns an absolute-form target ("GET http://host/path") into
 * origin form. It returns false for targets that cannot be proxied.
 */
function normalizeTarget(req: DownstreamRequest): boolean {
  const url = req.url!;
  if (!/^https?:\/\//i.test(url)) return false;
  try {
    const parsed = new URL(url);
    req.url = parsed.pathname + parsed.search;
    return true;
  } catch {
    return false;
  }
}
