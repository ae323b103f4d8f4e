/**
 * IpcLimitStore: the rate limiter's shared store in a cluster worker when
 * `rateLimit.store` is memory. Decisions are made in the primary
 * (cluster/limiter-hub.ts) by the very memory stores a single process
 * uses, so the limit holds for the cluster as a whole with the same
 * arithmetic, rather than N times over.
 *
 * Like the Redis store this puts one round trip on the rate-limited request
 * path (the one documented exception to "no I/O on the request path"), and
 * like it, it never holds a request longer than `timeout`: a decision that
 * is not answered in time rejects, and the filter applies `onStoreError`.
 * Calls made in one turn of the event loop travel in one message, so a
 * loaded worker sends a few large messages rather than many small ones.
 */
import { isTagged, processChannel, type IpcChannel } from '../state/ipc.js';
import type { Unsubscribe } from '../state/store.js';
import { Decision, type RateLimitPolicy } from './types.js';

/** KEY_SEPARATOR splits a key into the rule's scope and the client (NUL is in neither). */
const KEY_SEPARATOR = '\0';

/** LimitCall is one decision asked of the primary. */
export interface LimitCall {
  readonly id: number;
  readonly policy: RateLimitPolicy;
  /** scope: the rule's scope (rules.ts); the primary keeps one memory store per scope, as a single process keeps one per rule. */
  readonly scope: string;
  readonly client: string;
}

export interface LimitCallMessage {
  readonly fulcrum: 'limit-call';
  readonly maxKeys: number;
  readonly calls: readonly LimitCall[];
}

/** LimitReplyMessage: per call, 5 numbers: id, allowed (1 or 0), remaining, retryAfterMs, resetMs. */
export interface LimitReplyMessage {
  readonly fulcrum: 'limit-reply';
  readonly decisions: readonly number[];
}

export const REPLY_FIELDS = 5;

/** nextCallId is per process, not per store: a store made by a reload never takes a reply meant for the one it replaced. */
let nextCallId = 1;

export class LimitStoreUnavailableError extends Error {
  readonly code = 'FULCRUM_ERR_RATE_LIMIT_STORE';
}

interface Waiting {
  readonly resolve: (d: Decision) => void;
  readonly reject: (err: Error) => void;
}

export interface IpcLimitStoreOptions {
  /** timeout: the longest a decision may take (ms). */
  readonly timeout: number;
  /** maxKeys: the memory stores' cap, per rule (rateLimit.maxKeys). */
  readonly maxKeys: number;
  readonly channel?: IpcChannel;
}

export class IpcLimitStore {
  readonly #channel: IpcChannel;
  readonly #timeout: number;
  readonly #maxKeys: number;
  readonly #waiting = new Map<number, Waiting>();
  readonly #unsubscribe: Unsubscribe;
  #batch: LimitCall[] = [];
  #closed = false;

  constructor(options: IpcLimitStoreOptions) {
    this.#channel = options.channel ?? processChannel();
    this.#timeout = options.timeout;
    this.#maxKeys = options.maxKeys;
    this.#unsubscribe = this.#channel.onMessage((m) => this.#received(m));
  }

  get connected(): boolean {
    return this.#channel.connected && !this.#closed;
  }

  /** keyOf names a client's key within the rule's scope. */
  keyOf(scope: string, client: string): string {
    return `${scope}${KEY_SEPARATOR}${client}`;
  }

  /** decide asks the primary for one decision on a key from keyOf. */
  decide(policy: RateLimitPolicy, key: string): Promise<Decision> {
    if (!this.connected) return Promise.reject(new LimitStoreUnavailableError('no IPC channel to the primary'));
    const at = key.indexOf(KEY_SEPARATOR);
    const id = nextCallId++;
    const call: LimitCall = { id, policy, scope: key.slice(0, at), client: key.slice(at + 1) };
    if (this.#batch.length === 0) setImmediate(() => this.#send());
    this.#batch.push(call);
    return new Promise((resolve, reject) => { this.#waiting.set(id, { resolve, reject }); });
  }

  #send(): void {
    const calls = this.#batch;
    this.#batch = [];
    if (calls.length === 0) return;
    try {
      this.#channel.send({ fulcrum: 'limit-call', maxKeys: this.#maxKeys, calls } satisfies LimitCallMessage);
    } catch (err) {
      this.#fail(calls, err as Error);
      return;
    }
    // One timer per batch, not per request.
    setTimeout(() => this.#fail(calls, new LimitStoreUnavailableError(`no decision from the primary within ${this.#timeout}ms`)), this.#timeout).unref();
  }

  #fail(calls: readonly LimitCall[], err: Error): void {
    for (const call of calls) {
      const waiting = this.#waiting.get(call.id);
      if (waiting === undefined) continue; // answered in time
      this.#waiting.delete(call.id);
      waiting.reject(err);
    }
  }

  #received(message: unknown): void {
    if (!isTagged(message) || message.fulcrum !== 'limit-reply') return;
    const r = (message as LimitReplyMessage).decisions;
    for (let i = 0; i + REPLY_FIELDS <= r.length; i += REPLY_FIELDS) {
      const waiting = this.#waiting.get(r[i]!);
      if (waiting === undefined) continue; // timed out, or another store's call
      this.#waiting.delete(r[i]!);
      const d = new Decision();
      d.allowed = r[i + 1] === 1;
      d.remaining = r[i + 2]!;
      d.retryAfterMs = r[i + 3]!;
      d.resetMs = r[i + 4]!;
      waiting.resolve(d);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    for (const [id, waiting] of this.#waiting) {
      this.#waiting.delete(id);
      waiting.reject(new LimitStoreUnavailableError('rate limit store closed'));
    }
  }
}
