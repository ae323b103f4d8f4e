/**
 * ReplayableBody lets a streamed request body be sent again after an attempt
 * that failed: it keeps what it has passed on, up to `max` bytes, and gives
 * each attempt a stream of its own that starts with the bytes kept. Past
 * `max`, it keeps nothing and is no longer replayable.
 *
 * Used for gRPC calls, whose bodies have no Content-Length and so would
 * otherwise never be buffered (proxy/pipeline.ts buffers bodies of known
 * length): a unary call that never reached a backend, or reached one that
 * died, can go to another. Plain HTTP bodies do not take this path.
 */
import { PassThrough, type Readable } from 'node:stream';

export class ReplayableBody {
  #kept: Buffer[] = [];
  #size = 0;
  #overflow = false;
  #ended = false;
  #failed = false;
  #current: PassThrough | null = null;

  constructor(private readonly source: Readable, private readonly max: number) {
    source.on('data', this.#onData).on('end', this.#onEnd).on('error', this.#onError).on('close', this.#onClose);
    // No attempt reads it yet: hold the source (attempt() lets it flow).
    source.pause();
  }

  /** replayable: every byte passed on so far is kept, so another attempt gets the whole body. */
  get replayable(): boolean {
    return !this.#overflow && !this.#failed;
  }

  /** attempt gives a fresh stream of the body for one attempt; the previous attempt's stream gets nothing more. */
  attempt(): Readable {
    const previous = this.#current;
    if (previous !== null) previous.off('drain', this.#onDrain);
    const stream = new PassThrough();
    for (const chunk of this.#kept) stream.write(chunk);
    if (this.#ended) stream.end();
    stream.on('drain', this.#onDrain);
    this.#current = stream;
    this.source.resume();
    return stream;
  }

  #onData = (chunk: Buffer): void => {
    if (!this.#overflow) {
      this.#size += chunk.length;
      if (this.#size > this.max) {
        this.#overflow = true;
        this.#kept = [];
      } else {
        this.#kept.push(chunk);
      }
    }
    const current = this.#current;
    if (current !== null && !current.write(chunk)) this.source.pause();
  };

  #onDrain = (): void => {
    this.source.resume();
  };

  #onEnd = (): void => {
    this.#ended = true;
    this.#current?.end();
  };

  #onClose = (): void => {
    if (!this.#ended && !this.#failed) this.#onError(new Error('the request body ended before it was complete'));
  };

  #onError = (err: Error): void => {
    this.#failed = true;
    this.#current?.destroy(err);
  };
}
