/**
 * The request side of the HTTP/1.1 upstream client: the head, encoded once
 * as a latin1 string (header values come from Node's parser, which decodes
 * bytes as latin1, so they go back out unchanged), and a streamed body copied
 * to the socket with back-pressure both ways.
 *
 * Framing follows undici's, so that backends see the same requests from
 * either client: the caller's Content-Length is checked against the body; a
 * stream without one is sent chunked; POST, PUT and PATCH without a body get
 * `content-length: 0`; HEAD, and a body on a method that expects none, close
 * the connection afterwards (a backend may answer them with bytes that would
 * be taken for the next response).
 */
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { TrailerSource, UpstreamRequest } from './dispatch.js';
import { forwardableTrailers } from './request-trailers.js';
import { H1Error } from '../http1/errors.js';

/** The request target must be visible ASCII or latin1, as in undici. */
const INVALID_PATH = /[^\u0021-\u00ff]/;

export interface EncodedHead {
  readonly head: string;
  /** streamLength: a streamed body's declared length; -1 when it is sent chunked. */
  readonly streamLength: number;
  /** reusable: whether the connection may carry another request after this one. */
  readonly reusable: boolean;
}

function expectsPayload(method: string): boolean {
  return method === 'POST' || method === 'PUT' || method === 'PATCH';
}

/** encodeHead builds the request line and header section; an error for a request that cannot be sent. */
export function encodeHead(request: UpstreamRequest): EncodedHead | H1Error {
  const { method, path, headers } = request;
  const body = request.body ?? null;
  if (INVALID_PATH.test(path)) return new H1Error('UND_ERR_INVALID_ARG', 'invalid request path');
  let head = `${method} ${path} HTTP/1.1\r\n`;
  let declared = -1;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (name.length === 14 && name.toLowerCase() === 'content-length') {
      declared = Number(value);
      if (!Number.isSafeInteger(declared) || declared < 0) return new H1Error('UND_ERR_INVALID_ARG', 'invalid content-length header');
      continue;
    }
    head += `${name}: ${value}\r\n`;
  }
  const isHead = method === 'HEAD';
  head += isHead ? 'connection: close\r\n' : 'connection: keep-alive\r\n';
  const payload = expectsPayload(method);
  if (body === null) {
    return { head: payload ? `${head}content-length: 0\r\n\r\n` : `${head}\r\n`, streamLength: 0, reusable: !isHead };
  }
  if (Buffer.isBuffer(body)) {
    if (declared >= 0 && declared !== body.length) return mismatch();
    return { head: `${head}content-length: ${body.length}\r\n\r\n`, streamLength: body.length, reusable: !isHead && (payload || body.length === 0) };
  }
  head += declared >= 0 ? `content-length: ${declared}\r\n\r\n` : 'transfer-encoding: chunked\r\n\r\n';
  return { head, streamLength: declared, reusable: !isHead && payload };
}

function mismatch(): H1Error {
  return new H1Error('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'request body length differs from its Content-Length');
}

const noop = (): void => undefined;

/** lastChunk: the end of a chunked body, with the request's trailer section (RFC 9112 7.1.2). */
function lastChunk(trailers: TrailerSource): string {
  let out = '0\r\n';
  for (const [name, value] of forwardableTrailers(trailers)) out += `${name}: ${value}\r\n`;
  return `${out}\r\n`;
}

/**
 * BodyStreamer copies a Readable body to the socket: it pauses the body
 * while the socket's buffer is full and resumes it on 'drain', frames the
 * body as chunked when its length is unknown, and checks a declared length.
 * The request head goes out with the first piece of the body, so that a body
 * that fails at once (a malformed chunked upload, a client that vanishes)
 * sends the backend nothing. It listens for the body's errors from the
 * start (before the connection is ready), and reports once, through `done`:
 * null when the whole body was written, or the error.
 */
export class BodyStreamer {
  #socket: Socket | null = null;
  #head = '';
  #sent = 0;
  #finished = false;
  /** complete: the whole body was written. */
  complete = false;

  constructor(
    private readonly body: Readable,
    /** length: the declared length, or -1 for chunked. */
    private readonly length: number,
    private readonly done: (err: Error | null) => void,
    /** trailers: the client's request trailers, read when the body has ended; sent after a chunked body. */
    private readonly trailers?: TrailerSource,
  ) {
    body.on('error', this.#onError).on('close', this.#onClose);
  }

  /** start sends the head and the body on a connected socket. */
  start(socket: Socket, head: string): void {
    if (this.#finished) return;
    this.#socket = socket;
    this.#head = head;
    const body = this.body;
    body.on('data', this.#onData).on('end', this.#onEnd);
    socket.on('drain', this.#onDrain);
    if (body.readableEnded) queueMicrotask(this.#onEnd);
    else body.resume();
  }

  /** waitingForBody: everything given so far is sent and the body has more to come (its sender is slow, not the backend). */
  get waitingForBody(): boolean {
    return !this.#finished && this.#socket !== null && !this.#socket.writableNeedDrain;
  }

  /**
   * stop detaches from a body that will not be sent to the end (the
   * request failed, or the response came first). The rest of the body is
   * read and dropped, so that the client's connection does not stall, and
   * its late errors are swallowed.
   */
  stop(): void {
    if (this.#finished) return;
    this.#finish();
    this.body.on('error', noop);
    this.body.resume();
  }

  #onData = (chunk: Buffer): void => {
    if (this.#finished) return;
    const socket = this.#socket!;
    if (this.length >= 0) {
      this.#sent += chunk.length;
      if (this.#sent > this.length) {
        this.#fail(mismatch());
        return;
      }
    } else if (chunk.length === 0) {
      return;
    }
    socket.cork();
    this.#writeHead(socket);
    let flushed: boolean;
    if (this.length >= 0) {
      flushed = socket.write(chunk);
    } else {
      socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      socket.write(chunk);
      flushed = socket.write('\r\n', 'latin1');
    }
    socket.uncork();
    if (!flushed) this.body.pause();
  };

  #writeHead(socket: Socket): void {
    if (this.#head === '') return;
    socket.write(this.#head, 'latin1');
    this.#head = '';
  }

  #onDrain = (): void => {
    if (!this.#finished) this.body.resume();
  };

  #onEnd = (): void => {
    if (this.#finished) return;
    if (this.length >= 0 && this.#sent !== this.length) {
      this.#fail(mismatch());
      return;
    }
    const socket = this.#socket!;
    socket.cork();
    this.#writeHead(socket);
    if (this.length < 0) socket.write(this.trailers === undefined ? '0\r\n\r\n' : lastChunk(this.trailers), 'latin1');
    socket.uncork();
    this.#finish();
    this.complete = true;
    this.done(null);
  };

  #onError = (err: Error): void => {
    this.#fail(err);
  };

  #onClose = (): void => {
    if (!this.#finished) this.#fail(new H1Error('UND_ERR_ABORTED', 'the request body ended before it was complete'));
  };

  #fail(err: Error): void {
    if (this.#finished) return;
    this.stop();
    this.done(err);
  }

  #finish(): void {
    this.#finished = true;
    this.body.off('data', this.#onData).off('end', this.#onEnd).off('error', this.#onError).off('close', this.#onClose);
    this.#socket?.off('drain', this.#onDrain);
  }
}
