/**
 * Mirroring: a copy of a sampled request goes to the route's mirror
 * service, fire and forget. The client's request never waits for the copy
 * nor depends on it:
 *
 *   - the copy is sent after the main request is dispatched (setImmediate),
 *     and its response is read and thrown away;
 *   - at most `maxInFlight` copies are out per route; beyond that a copy is
 *     dropped and counted, never queued;
 *   - a body is copied only up to `maxBodySize`: a buffered body is sent as
 *     is, a streamed one is copied as it passes to the main backend (the
 *     main request never waits for the copy), and the copy is sent once the
 *     body has ended, or dropped as soon as it turns out too large;
 *   - the copy carries `X-Fulcrum-Mirror: 1`; it is not part of the main
 *     service's retry budget, outlier detection or request metrics, but
 *     counted in its own (fulcrum_mirror_requests_total, _dropped_total).
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { MirrorDrop, Metrics } from '../observe/metrics.js';
import type { Route, RouteMirror } from '../routing/route.js';
import type { UpstreamHandler, UpstreamRequest } from '../upstream/dispatch.js';

/** MirrorRequest is what the copy needs of the client's request, taken when it is forwarded. */
export interface MirrorSource {
  readonly method: string;
  readonly path: string;
  /** headers: the main request's upstream headers (Host at index 1, "" when the backend's own is sent). */
  readonly headers: readonly string[];
  readonly clientAddress: string;
  readonly hashKey: string | undefined;
  readonly cookie: string | undefined;
  /** contentLength: the declared body length, -1 when chunked (or unknown). */
  readonly contentLength: number;
}

/**
 * mirrorRequest decides whether this request is copied and starts the copy.
 * It returns the body the main request must send: `body` itself, or for a
 * streamed body one that copies what passes through it.
 */
export function mirrorRequest<B extends Buffer | Readable | null>(route: Route, mirror: RouteMirror, metrics: Metrics, source: MirrorSource, body: B): B {
  if (mirror.percent < 100 && Math.random() * 100 >= mirror.percent) return body;
  const drop = (reason: MirrorDrop): B => {
    metrics.mirrorDropped(route.name, mirror.service.name, reason);
    return body;
  };
  if (mirror.inFlight >= mirror.maxInFlight) return drop('max-in-flight');
  const length = body === null ? 0 : Buffer.isBuffer(body) ? body.length : source.contentLength;
  if (length > mirror.maxBodySize) return drop('body-too-large');
  mirror.inFlight++;
  // The exchange writes the chosen backend's Host into its list when it dispatches: copy it before.
  source = { ...source, headers: source.headers.slice() };
  if (body === null || Buffer.isBuffer(body)) {
    setImmediate(sendCopy, route, mirror, metrics, source, body);
    return body;
  }
  const tee = new MirrorTee(mirror.maxBodySize, (copy, reason) => {
    if (copy === null) {
      mirror.inFlight--;
      metrics.mirrorDropped(route.name, mirror.service.name, reason);
    } else {
      setImmediate(sendCopy, route, mirror, metrics, source, copy);
    }
  });
  const stream = body as Readable;
  // An aborted body ends the main request (its error reaches the upstream client through the tee) and the copy.
  stream.on('error', (err) => tee.destroy(err));
  return stream.pipe(tee) as unknown as B;
}

/** sendCopy sends the copy to a backend of the mirror service; the slot it holds is freed when it ends. */
function sendCopy(route: Route, mirror: RouteMirror, metrics: Metrics, source: MirrorSource, body: Buffer | null): void {
  const service = mirror.service;
  const backend = service.pick({ clientAddress: source.clientAddress, hashKey: source.hashKey, cookie: source.cookie, tried: undefined });
  if (backend === undefined) {
    mirror.inFlight--;
    metrics.mirrorDropped(route.name, service.name, 'no-backend');
    return;
  }
  const headers = source.headers as string[];
  if (headers[1] === '') headers[1] = backend.hostHeader;
  headers.push('x-fulcrum-mirror', '1');
  const timeouts = { ...service.config.timeouts, ...backend.config.timeouts };
  const request: UpstreamRequest = { path: source.path, method: source.method, headers, body, headersTimeout: timeouts.response, bodyTimeout: timeouts.idle };
  metrics.mirrorSent(route.name, service.name);
  // The copy holds a connection slot of its backend like any request (least-connections sees it).
  service.acquire(backend);
  const handler = new DiscardingHandler(mirror.cancels, () => {
    mirror.inFlight--;
    service.release(backend);
  });
  try {
    service.upstream.get(backend).dispatch(request, handler);
  } catch (err) {
    handler.onError();
  }
}

/** DiscardingHandler reads a mirror's response and throws it away; `done` runs once, however it ends. */
class DiscardingHandler implements UpstreamHandler {
  #done: (() => void) | null;
  #cancel: (() => void) | null = null;

  constructor(private readonly cancels: Set<() => void>, done: () => void) {
    this.#done = done;
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#cancel = () => abort(new Error('mirror copy cancelled at shutdown'));
    this.cancels.add(this.#cancel);
  }

  onHeaders(): boolean {
    return true;
  }

  onData(): boolean {
    return true;
  }

  onComplete(): void {
    this.#end();
  }

  onError(): void {
    this.#end();
  }

  #end(): void {
    if (this.#cancel !== null) this.cancels.delete(this.#cancel);
    const done = this.#done;
    this.#done = null;
    done?.();
  }
}

/**
 * MirrorTee passes a streamed body through to the main backend and keeps a
 * copy of up to `max` bytes; `done` gets the whole copy when the body ends,
 * or null (and why) as soon as it grows beyond `max` or fails: nothing more
 * is kept.
 */
export class MirrorTee extends Transform {
  #chunks: Buffer[] | null = [];
  #size = 0;
  #done: ((copy: Buffer | null, reason: MirrorDrop) => void) | null;

  constructor(private readonly max: number, done: (copy: Buffer | null, reason: MirrorDrop) => void) {
    super();
    this.#done = done;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.#chunks !== null) {
      this.#size += chunk.length;
      if (this.#size > this.max) this.#settle(null, 'body-too-large');
      else this.#chunks.push(chunk);
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.#chunks !== null) this.#settle(Buffer.concat(this.#chunks, this.#size), 'body-too-large');
    cb();
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.#settle(null, 'aborted');
    cb(err);
  }

  #settle(copy: Buffer | null, reason: MirrorDrop): void {
    this.#chunks = null;
    const done = this.#done;
    this.#done = null;
    done?.(copy, reason);
  }
}
