/**
 * LimiterHub makes the workers' rate-limit decisions in the primary, with
 * the memory stores a single process uses (one per rule scope, the same
 * `maxKeys` cap, the same clock: Date.now), so that a cluster enforces one
 * limit per client whichever worker its requests reach. A batch of calls
 * is answered by one message.
 */
import { createMemoryStore, type AnyMemoryStore } from '../ratelimit/algorithm.js';
import { Decision } from '../ratelimit/types.js';
import type { LimitCallMessage, LimitReplyMessage } from '../ratelimit/ipc-store.js';
import { sendTo, type Peer } from './state-hub.js';

export class LimiterHub {
  /** #stores: by scope and cap; the scope names the rule and its parameters (rules.ts). */
  readonly #stores = new Map<string, AnyMemoryStore>();
  readonly #decision = new Decision();

  handle(peer: Peer, message: LimitCallMessage): void {
    const now = Date.now();
    const d = this.#decision;
    const out: number[] = [];
    for (const call of message.calls) {
      this.#store(call.scope, call.policy, message.maxKeys).decide(call.client, now, d);
      out.push(call.id, d.allowed ? 1 : 0, d.remaining, d.retryAfterMs, d.resetMs);
    }
    sendTo(peer, { fulcrum: 'limit-reply', decisions: out } satisfies LimitReplyMessage);
  }

  #store(scope: string, policy: LimitCallMessage['calls'][number]['policy'], maxKeys: number): AnyMemoryStore {
    const id = `${maxKeys}|${scope}`;
    let store = this.#stores.get(id);
    if (store === undefined) {
      store = createMemoryStore(policy, maxKeys);
      store.startSweeping(Date.now);
      this.#stores.set(id, store);
    }
    return store;
  }
}
