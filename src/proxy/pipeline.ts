/**
 * The request path, written once, as its phases in order. Every request
 * goes through it, whichever listener took it (node:http, HTTP/2, the fast
 * path: they call the ProxyEntry below) and whether it is an ordinary
 * request or an upgrade:
 *
 *   1. internal   the balancer's own endpoints (when served on this listener)
 *   2. checks     the target, the header pass (hop-by-hop fields out, the client
 *                 address, forwarded fields in: one pass over the fields, since
 *                 the filters need the address), the body size limit
 *   3. route      the route table: the first route that matches (404 when none);
 *                 its allow/deny list (403)
 *   4. filters    the route's filters (its rate limit), then the balancer's
 *                 (the rate limiter): go on, or answer; a redirect or fixed
 *                 answer ends here
 *   5. transform  the route's rewrite and request header changes
 *   6. body       none, buffered to be replayable, or streamed (upgrades: none)
 *   7. choose     the route's service, then its backend (policy, hash key,
 *                 sticky cookie, connection limit and queue)   ┐
 *   8. exchange   dispatch, retries, the response head         │ exchange.ts
 *   9. response   the route's response header changes, the     │
 *                 body, or for an upgrade the tunnel           ┘
 *  10. log        metrics, the access log line, the request event (for a
 *                 tunnel: when it closes, with the bytes each way)
 *
 * Nothing here waits on shared state; the only I/O is to the client and
 * the chosen backend.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import { CLOSING, type DownstreamRequest, type DownstreamResponse, type DownstreamTunnel, type ProxyEntry } from '../core/downstream.js';
import { FulcrumError } from '../core/errors.js';
import { requestChannel, type RequestEvent } from '../core/events.js';
import type { AccessEntry, AccessLog, LogIds } from '../observe/access-log.js';
import { BodyLimit, collectBody } from './body.js';
import type { ProxyContext } from './context.js';
import { EXCHANGE, Exchange, type ExchangeBody, type ExchangeCarrier } from './exchange.js';
import { clientAddressOf, newRequestMeta, upstreamHeaders, type RequestMeta } from './headers.js';
import { stripMappedPrefix } from '../core/trusted-proxies.js';
import type { InternalRoutes } from '../core/internal-routes.js';
import type { FilterReject, RequestFilter } from '../core/request-filter.js';
import type { Route } from '../routing/route.js';
import { hostName } from '../routing/host.js';
import { normalizePath } from '../routing/path.js';
import { renderTemplate } from '../core/template.js';
import type { HeaderValues } from '../routing/transforms.js';
import type { Service } from '../service/service.js';
import { UpgradeResponse } from './upgrade-response.js';
import { mirrorRequest } from './mirror.js';
import { randomUUID } from 'node:crypto';
import { wellFormedId, type RequestIds } from '../trace/request-id.js';

/** InternalUpgrade lets the balancer's own endpoints (the dashboard's WebSocket) take an upgrade; true when taken. */
type InternalUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean;

export interface PipelineOptions {
  context: ProxyContext;
  proto: 'http' | 'https';
  /** internal: the balancer's own endpoints, when this listener serves them. */
  internal: InternalRoutes | null;
  internalUpgrade: (() => InternalUpgrade | null) | null;
  filters: () => readonly RequestFilter[];
  accessLog: AccessLog | null;
}

export function createPipeline(options: PipelineOptions): ProxyEntry {
  const { context: ctx, proto, internal } = options;

  // --- 10. log -----------------------------------------------------------
  const logLine = new LogLine();
  const finish = (ex: Exchange): void => {
    const tunnel = ex.tunnel !== null && ex.status === 101;
    const seconds = (performance.now() - ex.startedAt) / 1000;
    const backendId = ex.backend?.id ?? 'none';
    const route = ex.route;
    const routeName = route === null ? 'none' : route.name;
    // A route that answers itself (redirect, fixed answer) sends nothing to a service.
    const serviceName = route === null || route.service === null ? 'none' : ex.service.name;
    // A tunnel's life is not a latency: metrics take the time to its 101.
    ctx.metrics.record(routeName, serviceName, backendId, ex.status, tunnel ? ex.handshakeMs / 1000 : seconds);
    const trace = ex.trace;
    if (trace !== null) {
      trace.end({
        status: ex.status, route: route === null ? null : routeName, service: serviceName === 'none' ? null : serviceName,
        backend: ex.backend?.id ?? null, attempts: ex.attempts,
        // A request that succeeded on a retry keeps the failed attempt's error in ex.error: not the request's.
        error: ex.status >= 400 || ex.status === 0 ? ex.error?.code : undefined,
        requestBytes: ex.requestBytes, responseBytes: trace.responseBytes,
        tunnel: tunnel ? { bytesIn: ex.bytesIn, bytesOut: ex.bytesOut } : null,
      });
    }
    if (ex.grpcStatus >= 0) ctx.metrics.recordGrpc(serviceName, ex.grpcStatus);
    const log = ctx.settings.accessLog ? options.accessLog : null;
    const ms = Math.round(seconds * 1e6) / 1000;
    if (log !== null) {
      const line = logLine;
      line.method = ex.req.method!;
      line.url = ex.req.url!;
      line.status = ex.status;
      line.route = routeName;
      line.service = serviceName;
      line.backend = backendId;
      line.client = ex.clientAddress;
      line.ms = ms;
      line.attempts = ex.attempts;
      line.ids = ex.requestId !== '' || trace !== null ? ex : null;
      if (tunnel) {
        log.writeTunnel(line, ex.bytesIn, ex.bytesOut);
      } else {
        line.error = ex.error?.code;
        line.retryReasons = ex.retryReasons;
        line.proto = ex.proto;
        line.upstreamProto = ex.upstreamProto;
        line.grpcStatus = ex.grpcStatus;
        log.write(line);
      }
    }
    if (requestChannel.hasSubscribers) {
      const event: RequestEvent = {
        route: route === null ? null : route.name, service: serviceName === 'none' ? null : serviceName,
        backend: ex.backend?.id ?? null, method: ex.req.method ?? '', path: ex.req.url ?? '', status: ex.status,
        durationMs: seconds * 1000, attempts: ex.attempts, error: ex.error?.code ?? null,
        ...(tunnel ? { tunnel: { bytesIn: ex.bytesIn, bytesOut: ex.bytesOut } } : {}),
      };
      requestChannel.publish(event);
    }
  };

  /** reject answers a request that goes no further, through the one error answer (Exchange.fail). */
  const reject = (req: DownstreamRequest, res: DownstreamResponse, error: FulcrumError, clientAddress: string, headers?: Readonly<Record<string, string>>, tunnel: DownstreamTunnel | null = null, route: Route | null = null, h2 = false): void => {
    const ex = new Exchange(ctx, route?.service ?? ctx.services.default, route, req, res, [], null, clientAddress, finish, tunnel, h2, proto);
    ex.fail(error, headers);
  };

  // One shared listener (no per-request closure) keeps the count of requests in
  // flight and tells the exchange, if any, that the response is closed.
  const onResponseClose = function (this: DownstreamResponse): void {
    ctx.active--;
    const ex = (this as ExchangeCarrier)[EXCHANGE];
    if (ex != null) ex.onClientClose();
  };
  // Upgrades are not counted as requests in flight: the drain closes open tunnels itself.
  const onUpgradeClose = function (this: DownstreamResponse): void {
    const ex = (this as ExchangeCarrier)[EXCHANGE];
    if (ex != null) ex.onClientClose();
  };

  return {
    // --- 1. internal -------------------------------------------------------
    isInternal: (url) => internal !== null && internal.matches(url),
    internal: (req, res) => internal!.handle(req, res),
    proxy: (req, res, peer, body, authority, h2) => {
      // Pipelined behind a request refused with a close: never answered, so never proxied.
      if (req.socket[CLOSING] === true) return;
      ctx.active++;
      // on, not once: a response closes once, and once() would allocate a wrapper per request.
      res.on('close', onResponseClose);
      check(req, res, peer, body, authority, null, h2);
    },
    upgrade: (req, socket, head) => {
      socket.on('error', destroySocket);
      if ((req as DownstreamRequest).socket[CLOSING] === true) {
        socket.end();
        return;
      }
      const own = options.internalUpgrade?.() ?? null;
      if (own !== null && own(req, socket, head)) return;
      const protocol = req.headers.upgrade;
      const res = new UpgradeResponse(socket, typeof protocol === 'string' ? protocol.trim() : '', head);
      res.on('close', onUpgradeClose);
      const peer = req.socket.remoteAddress ?? '';
      if (ctx.draining || res.protocol === '') {
        const error = ctx.draining ? new FulcrumError('FULCRUM_ERR_SHUTTING_DOWN') : new FulcrumError('FULCRUM_ERR_BAD_REQUEST', 'invalid Upgrade header');
        reject(req, res, error, stripMappedPrefix(peer), undefined, res);
        return;
      }
      check(req, res, peer, null, undefined, res, false);
    },
  };

  // --- 2. checks ---------------------------------------------------------
  function check(req: DownstreamRequest, res: DownstreamResponse, peer: string, body: Readable | null, authority: string | undefined, tunnel: DownstreamTunnel | null, h2: boolean): void {
    // node:http hands over HTTP/0.9 (a request line without a version, too) and HTTP/2.0 request lines:
    // only 1.0 and 1.1 are served over HTTP/1 (RFC 9112 2.3).
    if (!h2 && (req.httpVersionMajor !== 1 || req.httpVersionMinor > 1)) {
      rejectVersion(req, res, peer, tunnel);
      return;
    }
    const limits = ctx.settings.limits;
    // node:http and HTTP/2 are set to hand over one field more than the limit, so that the excess shows here.
    if (fieldCount(req.rawHeaders, h2) > limits.maxHeaderCount) {
      reject(req, res, new FulcrumError('FULCRUM_ERR_TOO_MANY_HEADERS', `limit is ${limits.maxHeaderCount}`), stripMappedPrefix(peer), undefined, tunnel, null, h2);
      return;
    }
    const url = req.url!;
    if (url.charCodeAt(0) !== 47 /* "/" */) {
      // An absolute-form target's authority wins over Host (RFC 9112 3.2.2).
      const target = normalizeTarget(req);
      if (target === null) {
        reject(req, res, new FulcrumError('FULCRUM_ERR_BAD_REQUEST', 'request target must be a path or an http(s) URL without userinfo'), stripMappedPrefix(peer), undefined, tunnel, null, h2);
        return;
      }
      if (!h2) authority = target;
    }
    const meta = newRequestMeta();
    meta.h2 = h2;
    const headers = upstreamHeaders(req.rawHeaders, { peer, proto, authority }, ctx.forward, meta);
    // HTTP/1.0 has no chunked coding (RFC 9112 6.1): what a 1.0 request means by it is anyone's guess.
    if (meta.chunked && !h2 && req.httpVersionMinor === 0) meta.invalid ??= 'Transfer-Encoding in an HTTP/1.0 request';
    // An Upgrade request's body would travel in the tunnel's first bytes, framed by nobody: refused (docs/configuration.md, Request framing).
    if (tunnel !== null && (meta.chunked || meta.contentLength > 0)) meta.invalid ??= 'an Upgrade request cannot have a body';
    if (meta.invalid !== null) {
      // A 400: the connection closes after it (Exchange.fail), so nothing pipelined behind is proxied.
      reject(req, res, new FulcrumError('FULCRUM_ERR_BAD_REQUEST', meta.invalid), stripMappedPrefix(peer), undefined, tunnel, null, h2);
      return;
    }
    // An HTTP/2 body needs no Content-Length: a stream not ended with its headers has one, of unknown length.
    if (body !== null && meta.contentLength < 0 && h2) meta.chunked = true;
    const client = meta.xff === undefined ? stripMappedPrefix(peer) : clientAddressOf(peer, meta.xff, ctx.forward.trusted);

    const maxBody = limits.maxBodySize;
    if (maxBody > 0 && meta.contentLength > maxBody) {
      reject(req, res, new FulcrumError('FULCRUM_ERR_BODY_TOO_LARGE', `limit is ${maxBody} bytes`), client, undefined, tunnel, null, h2);
      return;
    }

    // --- 3. route -----------------------------------------------------------
    // One catch-all route (a configuration without routes) needs no look-up, and its requests go on unchanged.
    const table = ctx.routes;
    let route = table.only;
    // normalizeTarget may have turned an absolute-form target into origin form.
    let target = req.url!;
    if (route === null) {
      const q = target.indexOf('?');
      const rawPath = q === -1 ? target : target.slice(0, q);
      const path = normalizePath(rawPath);
      if (path === null) {
        reject(req, res, new FulcrumError('FULCRUM_ERR_BAD_REQUEST', 'invalid percent-encoding in the path'), client, undefined, tunnel, null, h2);
        return;
      }
      const host = hostName(meta.host);
      route = table.match(req.method!, path, q === -1 ? '' : target.slice(q + 1), host, req.rawHeaders);
      if (route === null) {
        reject(req, res, new FulcrumError('FULCRUM_ERR_NO_ROUTE', `host "${host}", path "${path}"`), client, undefined, tunnel, null, h2);
        return;
      }
      // The backend gets the path the route decided on, not another spelling of it.
      if (path !== rawPath) target = q === -1 ? path : path + target.slice(q);
    }
    if (route.access !== null && !route.access.admits(client)) {
      reject(req, res, new FulcrumError('FULCRUM_ERR_FORBIDDEN', `${client} (route "${route.name}")`), client, undefined, tunnel, route, h2);
      return;
    }

    // --- 4. filters --------------------------------------------------------
    const chosen = route;
    const go = (): void => act(chosen, req, res, headers, client, meta, body, tunnel, target);
    const own = route.filters;
    const filters = options.filters();
    if (own.length === 0 && filters.length === 0) {
      go();
      return;
    }
    const fail: FilterReject = (error, extra) => reject(req, res, error, client, extra, tunnel, chosen, h2);
    if (own.length === 0) runFilters(filters, 0, req, res, client, go, fail);
    else if (filters.length === 0) runFilters(own, 0, req, res, client, go, fail);
    else runFilters(own, 0, req, res, client, () => runFilters(filters, 0, req, res, client, go, fail), fail);
  }

  /** rejectVersion refuses an HTTP/1 request of another version: 400 for HTTP/0.9 (no version at all), 505 for the rest; the connection closes. */
  function rejectVersion(req: DownstreamRequest, res: DownstreamResponse, peer: string, tunnel: DownstreamTunnel | null): void {
    res.shouldKeepAlive = false;
    const error = req.httpVersionMajor === 0
      ? new FulcrumError('FULCRUM_ERR_BAD_REQUEST', 'HTTP/0.9 is not served; a request line ends with HTTP/1.1')
      : new FulcrumError('FULCRUM_ERR_HTTP_VERSION', `HTTP/${req.httpVersionMajor}.${req.httpVersionMinor} over an HTTP/1 connection`);
    reject(req, res, error, stripMappedPrefix(peer), undefined, tunnel, null, false);
  }

  /** act carries out the route's action: a redirect or a fixed answer here, a service through the phases below. */
  function act(route: Route, req: DownstreamRequest, res: DownstreamResponse, headers: string[], client: string, meta: RequestMeta, body: Readable | null, tunnel: DownstreamTunnel | null, target: string): void {
    const action = route.action;
    if (action.kind === 'service') {
      transform(route, action.service, req, res, headers, client, meta, body, tunnel, target);
      return;
    }
    if (action.kind === 'split') {
      transform(route, action.split.choose(meta.cookie).service, req, res, headers, client, meta, body, tunnel, target);
      return;
    }
    const ex = new Exchange(ctx, ctx.services.default, route, req, res, [], null, client, finish, tunnel, meta.h2, proto);
    if (action.kind === 'respond') {
      ex.respond(action.status, action.headers, action.body);
      return;
    }
    const q = target.indexOf('?');
    const path = q === -1 ? target : target.slice(0, q);
    const groups = route.pathRegex === null ? null : route.pathRegex.exec(path);
    const location = renderTemplate(action.to, (name) => {
      switch (name) {
        case 'host': return hostName(meta.host);
        case 'path': return path;
        case 'query': return q === -1 ? '' : target.slice(q);
        default: return groups?.[Number(name)] ?? '';
      }
    });
    ex.respond(action.status, { location, 'content-type': 'text/plain; charset=utf-8' }, `${action.status} redirect to ${location}\n`);
  }

  // --- 5. transform ------------------------------------------------------
  /** transform applies the route's rewrite, Host choice and request header changes. */
  function transform(route: Route, service: Service, req: DownstreamRequest, res: DownstreamResponse, headers: string[], client: string, meta: RequestMeta, body: Readable | null, tunnel: DownstreamTunnel | null, target: string): void {
    if (route.preserveHost !== null) headers[1] = route.preserveHost && meta.host !== undefined ? meta.host : '';
    let path = target;
    const rewrite = route.rewrite;
    if (rewrite !== null) {
      const q = target.indexOf('?');
      const before = q === -1 ? target : target.slice(0, q);
      const forwarded = { prefix: null as string | null };
      const after = rewrite.apply(before, forwarded);
      if (after !== before) {
        path = q === -1 ? after : after + target.slice(q);
        if (forwarded.prefix !== null) headers.push('x-forwarded-prefix', forwarded.prefix);
      }
    }
    let values: HeaderValues | null = null;
    if (route.requestHeaders !== null || route.responseHeaders !== null) {
      values = headerValues(route, service, client, meta, req, ctx.requestIds);
      if (route.requestHeaders !== null) route.requestHeaders.apply(headers, values, 2);
    }
    readBody(route, service, req, res, headers, client, meta, body, tunnel, path, values);
  }

  // --- 6. body -----------------------------------------------------------
  /** readBody chooses how the body travels (none, buffered to be retryable, streamed), then forwards. */
  function readBody(route: Route, service: Service, req: DownstreamRequest, res: DownstreamResponse, headers: string[], client: string, meta: RequestMeta, body: Readable | null, tunnel: DownstreamTunnel | null, path: string, values: HeaderValues | null): void {
    service.retry.budget.recordRequest();
    const hasBody = meta.chunked || meta.contentLength > 0;
    if (!hasBody || tunnel !== null) return forward(route, service, req, res, headers, null, client, meta, tunnel, path, values);
    if (body === null) {
      // A body announced where none can follow (an HTTP/2 stream that ended with its headers).
      reject(req, res, new FulcrumError('FULCRUM_ERR_BAD_REQUEST', 'a body is announced but the stream has ended'), client, undefined, null, route, meta.h2);
      return;
    }
    const retry = route.retryOverrides === null ? service.retry : route.retryFor(service);
    if (!meta.chunked && meta.contentLength <= retry.maxBodySize && retry.requestAllows(req.method!, req.rawHeaders)) {
      collectBody(body, meta.contentLength, (err, buffered) => {
        if (err !== null) reject(req, res, err, client, undefined, null, route, meta.h2);
        else forward(route, service, req, res, headers, buffered, client, meta, null, path, values);
      });
      return;
    }
    const maxBody = ctx.settings.limits.maxBodySize;
    if (meta.chunked && maxBody > 0) {
      const limited = new BodyLimit(maxBody);
      body.on('error', (err) => limited.destroy(err));
      forward(route, service, req, res, headers, body.pipe(limited), client, meta, null, path, values);
      return;
    }
    forward(route, service, req, res, headers, body, client, meta, null, path, values);
  }

  // --- 7.-9. choose the backend, exchange, response (exchange.ts) ----------
  function forward(route: Route, service: Service, req: DownstreamRequest, res: DownstreamResponse, headers: string[], body: ExchangeBody, client: string, meta: RequestMeta, tunnel: DownstreamTunnel | null, path: string, values: HeaderValues | null): void {
    // A copy for the mirror is taken (or its streamed body tapped) before the exchange sends anything.
    if (route.mirror !== null && tunnel === null) {
      body = mirrorRequest(route, route.mirror, ctx.metrics, { method: req.method!, path, headers, clientAddress: client, hashKey: undefined, cookie: meta.cookie, contentLength: meta.chunked ? -1 : meta.contentLength }, body);
    }
    const ex = new Exchange(ctx, service, route, req, res, headers, body, client, finish, tunnel, meta.h2, proto);
    ex.path = path;
    ex.headerValues = values;
    ex.cookie = meta.cookie;
    // A Content-Length-framed HTTP/1.1 body has no trailer section; a chunked one and an HTTP/2 one may.
    if (body !== null && (meta.chunked || meta.h2)) ex.trailersPossible = true;
    if (ex.trace !== null) ex.requestBytes = meta.chunked ? -1 : Math.max(meta.contentLength, 0);
    if (service.hashKey !== null) ex.hashKey = service.hashKey(ex);
    if (route.split !== null) ex.setCookie = route.split.setCookie(service, meta.cookie);
    ex.start();
  }
}

/** headerValues: what a route's header templates may refer to, for one request. */
function headerValues(route: Route, service: Service, client: string, meta: RequestMeta, req: DownstreamRequest, ids: RequestIds | null): HeaderValues {
  let requestId: string | undefined;
  return {
    client_ip: client,
    host: hostName(meta.host),
    route: route.name,
    service: service.name,
    get request_id(): string {
      // With `requestId` configured, the one id of the request (the backend and the client get it too).
      requestId ??= (ids === null ? incomingRequestId(req.rawHeaders) : ids.of(req) || undefined) ?? randomUUID();
      return requestId;
    },
  };
}

/** incomingRequestId: the client's X-Request-Id, when it sent a usable one. */
function incomingRequestId(raw: readonly string[]): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 12 && raw[i]!.toLowerCase() === 'x-request-id') {
      const v = raw[i + 1]!.trim();
      return wellFormedId(v) ? v : undefined;
    }
  }
  return undefined;
}

function runFilters(filters: readonly RequestFilter[], i: number, req: DownstreamRequest, res: DownstreamResponse, client: string, done: () => void, reject: FilterReject): void {
  if (i === filters.length) return done();
  filters[i]!.filter(req, res, client, () => runFilters(filters, i + 1, req, res, client, done, reject), reject);
}

function destroySocket(this: Duplex): void {
  this.destroy();
}

/**
 * normalizeTarget turns an absolute-form target ("GET http://host/path") into
 * origin form and returns its authority. It returns null for targets that
 * cannot be proxied (asterisk form, authority form, other schemes, userinfo).
 */
function normalizeTarget(req: DownstreamRequest): string | null {
  const url = req.url!;
  if (!/^https?:\/\/[^/?#]/i.test(url)) return null;
  try {
    const parsed = new URL(url);
    const rest = url.slice(url.indexOf('//') + 2);
    if (rest.split(/[/?#]/, 1)[0]!.includes('@')) return null;
    req.url = parsed.pathname + parsed.search;
    return parsed.host;
  } catch {
    return null;
  }
}

/** fieldCount: the request's header fields, HTTP/2's pseudo-header fields (which come first) left out. */
function fieldCount(raw: readonly string[], h2: boolean): number {
  let pseudo = 0;
  if (h2) while (pseudo < raw.length && raw[pseudo]!.charCodeAt(0) === 58 /* ":" */) pseudo += 2;
  return (raw.length - pseudo) >> 1;
}

/** LogLine is the access-log entry the pipeline fills for each request: one object, reused (AccessLog.write keeps nothing). */
class LogLine implements AccessEntry {
  method = '';
  url = '';
  status = 0;
  route = '';
  service = '';
  backend = '';
  client = '';
  ms = 0;
  attempts = 0;
  error: string | undefined = undefined;
  retryReasons: readonly string[] | null = null;
  ids: LogIds | null = null;
  proto = '';
  upstreamProto = '';
  grpcStatus = -1;
}
