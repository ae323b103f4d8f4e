/**
 * The IPC state store: what each worker of a `workers: N` cluster uses with
 * `state.store: memory`. The shared data lives in the primary process (a
 * MemoryStateServer, with one MemoryStore per worker: see
 * src/cluster/state-hub.ts); every call here is a message to the primary
 * over the cluster's IPC channel, answered by a reply with the same id, and
 * the primary pushes the other workers' publications (health verdicts,
 * backend changes) back. So each worker is one "instance" of the shared
 * state, exactly as each balancer is with Redis: counters add up, one worker
 * holds the health-check lease, admin-API changes reach every worker.
 *
 * Like every store, it is called only by the background sync loop and the
 * sharing hooks, never on the request path. A call that gets no answer
 * within `timeoutMs` (a primary too busy, or gone) rejects, so that nothing
 * waits for ever; the sync loop then serves with local state.
 *
 * The wire format is JSON (the cluster's default serialization): counters
 * travel as [field, value] pairs (store.ts counterFields), everything else
 * is plain data already.
 */
import {
  counterFields, countersFromFields, StateStoreError,
  type BackendOverride, type Counters, type CounterDelta, type InstanceInfo, type SharedHealth,
  type StateStore, type StoreState, type Unsubscribe,
} from './store.js';

/** CALL_TIMEOUT: the longest a call waits for the primary (ms); the primary answers from memory in microseconds. */
export const CALL_TIMEOUT = 2000;

type CounterFields = [string, number][];

/** StateCall is one StateStore method call, as sent to the primary. */
export type StateCall =
  | { readonly op: 'flushCounters'; readonly seq: number; readonly delta: CounterFields }
  | { readonly op: 'readCounters' }
  | { readonly op: 'heartbeat'; readonly ttlMs: number }
  | { readonly op: 'leave' }
  | { readonly op: 'acquireLease'; readonly name: string; readonly ttlMs: number }
  | { readonly op: 'releaseLease'; readonly name: string }
  | { readonly op: 'publishHealth'; readonly health: SharedHealth }
  | { readonly op: 'readHealth' }
  | { readonly op: 'publishBackend'; readonly override: BackendOverride }
  | { readonly op: 'readBackends' }
  | { readonly op: 'getValue'; readonly key: string }
  | { readonly op: 'setValue'; readonly key: string; readonly value: string; readonly ttlMs: number | null }
  | { readonly op: 'deleteValue'; readonly key: string };

export type Publication =
  | { readonly kind: 'health'; readonly health: SharedHealth }
  | { readonly kind: 'backend'; readonly override: BackendOverride };

/** Messages between a worker and the primary; `fulcrum` tells them from other IPC traffic. */
export interface StateCallMessage {
  readonly fulcrum: 'state-call';
  readonly id: number;
  /** instance: the calling store's instance id (one per balancer in the worker). */
  readonly instance: string;
  readonly call: StateCall;
}

export type StateReplyMessage =
  | { readonly fulcrum: 'state-reply'; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly fulcrum: 'state-reply'; readonly id: number; readonly ok: false; readonly error: string };

/** StatePushMessage carries another instance's publication to `instance`. */
export interface StatePushMessage {
  readonly fulcrum: 'state-push';
  readonly instance: string;
  readonly publication: Publication;
}

/** IpcChannel is the worker's end of the IPC channel (the process object in a real worker). */
export interface IpcChannel {
  readonly connected: boolean;
  /** send throws when the channel is closed. */
  send(message: unknown): void;
  onMessage(listener: (message: unknown) => void): Unsubscribe;
  onDisconnect(listener: () => void): Unsubscribe;
}

/** processChannel is the IPC channel a forked process has to its parent. */
export function processChannel(): IpcChannel {
  return {
    get connected() { return process.connected === true; },
    send(message) {
      if (process.send === undefined || !process.connected) throw new Error('no IPC channel to the primary');
      process.send(message);
    },
    onMessage(listener) {
      process.on('message', listener);
      return () => { process.off('message', listener); };
    },
    onDisconnect(listener) {
      process.on('disconnect', listener);
      return () => { process.off('disconnect', listener); };
    },
  };
}

interface PendingCall {
  readonly op: StateCall['op'];
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class IpcStore implements StateStore {
  /** type: the data is the primary's memory store (`state.store: memory`), reached over IPC. */
  readonly type = 'memory' as const;
  #state: StoreState;
  #lastError: string | null = null;
  #nextId = 1;
  #closed = false;
  readonly #pending = new Map<number, PendingCall>();
  readonly #stateListeners = new Set<(state: StoreState) => void>();
  readonly #healthListeners = new Set<(health: SharedHealth) => void>();
  readonly #backendListeners = new Set<(override: BackendOverride) => void>();
  readonly #unsubscribe: Unsubscribe[];

  constructor(
    readonly instanceId: string,
    private readonly channel: IpcChannel = processChannel(),
    private readonly timeoutMs = CALL_TIMEOUT,
  ) {
    this.#state = channel.connected ? 'ready' : 'down';
    if (!channel.connected) this.#lastError = 'no IPC channel to the primary';
    this.#unsubscribe = [
      channel.onMessage((m) => this.#received(m)),
      channel.onDisconnect(() => this.#lost('IPC channel to the primary closed')),
    ];
  }

  get state(): StoreState {
    return this.#state;
  }

  get lastError(): string | null {
    return this.#lastError;
  }

  onState(listener: (state: StoreState) => void): Unsubscribe {
    this.#stateListeners.add(listener);
    return () => { this.#stateListeners.delete(listener); };
  }

  async flushCounters(seq: number, delta: CounterDelta): Promise<Counters> {
    return countersFromFields(await this.#call({ op: 'flushCounters', seq, delta: counterFields(delta) }) as CounterFields);
  }

  async readCounters(): Promise<Counters> {
    return countersFromFields(await this.#call({ op: 'readCounters' }) as CounterFields);
  }

  async heartbeat(ttlMs: number): Promise<InstanceInfo[]> {
    return await this.#call({ op: 'heartbeat', ttlMs }) as InstanceInfo[];
  }

  async leave(): Promise<void> {
    await this.#call({ op: 'leave' });
  }

  async acquireLease(name: string, ttlMs: number): Promise<boolean> {
    return await this.#call({ op: 'acquireLease', name, ttlMs }) === true;
  }

  async releaseLease(name: string): Promise<void> {
    await this.#call({ op: 'releaseLease', name });
  }

  async getValue(key: string): Promise<string | null> {
    const value = await this.#call({ op: 'getValue', key });
    return typeof value === 'string' ? value : null;
  }

  async setValue(key: string, value: string, ttlMs?: number): Promise<void> {
    await this.#call({ op: 'setValue', key, value, ttlMs: ttlMs ?? null });
  }

  async deleteValue(key: string): Promise<void> {
    await this.#call({ op: 'deleteValue', key });
  }

  async publishHealth(health: SharedHealth): Promise<void> {
    await this.#call({ op: 'publishHealth', health });
  }

  async readHealth(): Promise<SharedHealth[]> {
    return await this.#call({ op: 'readHealth' }) as SharedHealth[];
  }

  onHealth(listener: (health: SharedHealth) => void): Unsubscribe {
    this.#healthListeners.add(listener);
    return () => { this.#healthListeners.delete(listener); };
  }

  async publishBackend(override: BackendOverride): Promise<void> {
    await this.#call({ op: 'publishBackend', override });
  }

  async readBackends(): Promise<BackendOverride[]> {
    return await this.#call({ op: 'readBackends' }) as BackendOverride[];
  }

  onBackend(listener: (override: BackendOverride) => void): Unsubscribe {
    this.#backendListeners.add(listener);
    return () => { this.#backendListeners.delete(listener); };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    this.#healthListeners.clear();
    this.#backendListeners.clear();
    this.#stateListeners.clear();
    this.#rejectAll('store closed');
  }

  #call(call: StateCall): Promise<unknown> {
    if (this.#closed) return Promise.reject(new StateStoreError(call.op, { cause: new Error('store closed') }));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new StateStoreError(call.op, { cause: new Error(`no answer from the primary within ${this.timeoutMs}ms`) }));
      }, this.timeoutMs);
      timer.unref();
      this.#pending.set(id, { op: call.op, resolve, reject, timer });
      try {
        this.channel.send({ fulcrum: 'state-call', id, instance: this.instanceId, call } satisfies StateCallMessage);
      } catch (err) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(new StateStoreError(call.op, { cause: err }));
      }
    });
  }

  #received(message: unknown): void {
    if (!isTagged(message)) return;
    if (message.fulcrum === 'state-reply') {
      const reply = message as StateReplyMessage;
      const pending = this.#pending.get(reply.id);
      if (pending === undefined) return; // timed out already
      this.#pending.delete(reply.id);
      clearTimeout(pending.timer);
      if (reply.ok) pending.resolve(reply.value);
      else pending.reject(new StateStoreError(pending.op, { cause: new Error(reply.error) }));
    } else if (message.fulcrum === 'state-push') {
      const push = message as StatePushMessage;
      if (push.instance !== this.instanceId) return;
      const p = push.publication;
      if (p.kind === 'health') for (const l of this.#healthListeners) l(p.health);
      else if (p.kind === 'backend') for (const l of this.#backendListeners) l(p.override);
    }
  }

  #lost(reason: string): void {
    if (this.#state === 'down') return;
    this.#lastError = reason;
    this.#state = 'down';
    this.#rejectAll(reason);
    for (const l of this.#stateListeners) l('down');
  }

  #rejectAll(reason: string): void {
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      this.#pending.delete(id);
      pending.reject(new StateStoreError(pending.op, { cause: new Error(reason) }));
    }
  }
}

/**
 * serveStateCall runs one call (from a worker) on that worker's store in
 * the primary, and returns the reply value in wire form.
 */
export async function serveStateCall(store: StateStore, call: StateCall): Promise<unknown> {
  switch (call.op) {
    case 'flushCounters': return counterFields(await store.flushCounters(call.seq, countersFromFields(call.delta)));
    case 'readCounters': return counterFields(await store.readCounters());
    case 'heartbeat': return store.heartbeat(call.ttlMs);
    case 'leave': await store.leave(); return null;
    case 'acquireLease': return store.acquireLease(call.name, call.ttlMs);
    case 'releaseLease': await store.releaseLease(call.name); return null;
    case 'publishHealth': await store.publishHealth(call.health); return null;
    case 'readHealth': return store.readHealth();
    case 'publishBackend': await store.publishBackend(call.override); return null;
    case 'readBackends': return store.readBackends();
    case 'getValue': return store.getValue(call.key);
    case 'setValue': await store.setValue(call.key, call.value, call.ttlMs ?? undefined); return null;
    case 'deleteValue': await store.deleteValue(call.key); return null;
  }
}

/** isTagged: an object with a string `fulcrum` field (one of this protocol's messages). */
export function isTagged(message: unknown): message is { readonly fulcrum: string } {
  return typeof message === 'object' && message !== null && typeof (message as { fulcrum?: unknown }).fulcrum === 'string';
}
