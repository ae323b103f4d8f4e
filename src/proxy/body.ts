/**
 * Request body helpers: buffer a small body so that the request can be
 * retried, and enforce `limits.maxBodySize` on bodies of unknown length.
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { FulcrumError } from '../core/errors.js';

/** collectBody reads a body of known, small length into one Buffer. */
export function collectBody(req: Readable, expected: number, done: (err: FulcrumError | null, body: Buffer | null) => void): void {
  const chunks: Buffer[] = [];
  let received = 0;
  let settled = false;
  const settle = (err: FulcrumError | null, body: Buffer | null): void => {
    if (settled) return;
    settled = true;
    req.removeListener('data', onData);
    req.removeListener('end', onEnd);
    req.removeListener('error', onError);
    req.removeListener('close', onClose);
    done(err, body);
  };
  const onData = (chunk: Buffer): void => {
    received += chunk.length;
    if (received > expected) settle(new FulcrumError('FULCRUM_ERR_CLIENT_BODY', 'body longer than its Content-Length'), null);
    else chunks.push(chunk);
  };
  const onEnd = (): void => settle(null, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received));
  const onError = (err: Error): void => settle(new FulcrumError('FULCRUM_ERR_CLIENT_BODY', err.message), null);
  // 'end' comes before 'close' when the body was read whole.
  const onClose = (): void => { if (!req.readableEnded) settle(new FulcrumError('FULCRUM_ERR_CLIENT_ABORTED'), null); };
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', onError);
  req.on('close', onClose);
}

/** BodyLimit passes a body through and fails once more than `max` bytes went by. */
export class BodyLimit extends Transform {
  #seen = 0;
  constructor(private readonly max: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.max) cb(new FulcrumError('FULCRUM_ERR_BODY_TOO_LARGE', `more than ${this.max} bytes`));
    else cb(null, chunk);
  }
}
