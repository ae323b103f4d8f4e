/**
 * StateHub is the primary's side of the workers' shared state: one
 * MemoryStateServer holds it, and each worker's balancer instance gets its
 * own MemoryStore client of it, made at its first call. So the workers
 * share state exactly as the contract suite shows several memory clients
 * do: counters add up, one lease holder, publications reach every
 * instance but the publisher (pushed to the worker that owns it).
 *
 * When a worker exits, its instances give up the health-check lease and
 * leave at once, so that another worker takes the checks over at its next
 * round instead of after the lease's TTL.
 */
import { HEALTH_LEASE } from '../state/health-share.js';
import { serveStateCall, type StateCallMessage, type StatePushMessage, type StateReplyMessage } from '../state/ipc.js';
import { MemoryStateServer, MemoryStore } from '../state/memory.js';
import type { Unsubscribe } from '../state/store.js';

/** Peer is the primary's end of one worker's IPC channel (a cluster Worker). */
export interface Peer {
  isConnected(): boolean;
  send(message: unknown, callback: (err: Error | null) => void): boolean;
}

interface Instance {
  readonly store: MemoryStore;
  readonly peer: Peer;
  readonly unsubscribe: readonly Unsubscribe[];
}

export class StateHub {
  readonly #server = new MemoryStateServer();
  readonly #instances = new Map<string, Instance>();

  /** handle answers one state call from `peer`. */
  handle(peer: Peer, message: StateCallMessage): void {
    const store = this.#instance(peer, message.instance).store;
    serveStateCall(store, message.call).then(
      (value) => sendTo(peer, { fulcrum: 'state-reply', id: message.id, ok: true, value } satisfies StateReplyMessage),
      (err: unknown) => sendTo(peer, { fulcrum: 'state-reply', id: message.id, ok: false, error: (err as Error).message } satisfies StateReplyMessage),
    );
  }

  /** forget drops the instances of a worker that exited: lease released, gone from the live list. */
  async forget(peer: Peer): Promise<void> {
    for (const [id, instance] of this.#instances) {
      if (instance.peer !== peer) continue;
      this.#instances.delete(id);
      for (const unsubscribe of instance.unsubscribe) unsubscribe();
      await instance.store.releaseLease(HEALTH_LEASE);
      await instance.store.leave();
      await instance.store.close();
    }
  }

  #instance(peer: Peer, id: string): Instance {
    let instance = this.#instances.get(id);
    if (instance === undefined) {
      const store = new MemoryStore(id, this.#server);
      const push = (publication: StatePushMessage['publication']): void => sendTo(peer, { fulcrum: 'state-push', instance: id, publication } satisfies StatePushMessage);
      instance = {
        store,
        peer,
        unsubscribe: [
          store.onHealth((health) => push({ kind: 'health', health })),
          store.onBackend((override) => push({ kind: 'backend', override })),
        ],
      };
      this.#instances.set(id, instance);
    }
    return instance;
  }
}

/** sendTo sends to a worker unless its channel is closed (it is exiting; its 'exit' is handled elsewhere). */
export function sendTo(peer: Peer, message: unknown): void {
  if (!peer.isConnected()) return;
  peer.send(message, () => undefined);
}
