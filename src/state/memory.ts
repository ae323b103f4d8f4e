/**
 * The in-memory state store: the default, for one balancer instance. The
 * data lives in a MemoryStateServer; each MemoryStore is one instance's
 * client of it, so that several clients in one process behave like several
 * balancers sharing one Redis (which is how the contract suite checks it).
 * Publications are delivered asynchronously, as they would be over a network.
 */
import { EventEmitter } from 'node:events';
import {
  addCounters, backendKey, countersFromFields, counterFields, emptyCounters,
  type BackendOverride, type CounterDelta, type Counters, type InstanceInfo, type SharedHealth,
  type StateStore, type StoreState, type Unsubscribe,
} from './store.js';

interface Lease {
  readonly owner: string;
  readonly expires: number;
}

type Publication =
  | { readonly kind: 'health'; readonly from: string; readonly health: SharedHealth }
  | { readonly kind: 'backend'; readonly from: string; readonly override: BackendOverride };

/** MemoryStateServer holds the shared data of the memory store (what Redis holds for the Redis store). */
export class MemoryStateServer {
  readonly counters = emptyCounters();
  /** flushed: the last counter batch applied per instance (exactly-once flushes). */
  readonly flushed = new Map<string, number>();
  /** instances: instance id -> last heartbeat and the TTL it asked for. */
  readonly instances = new Map<string, { lastSeen: number; ttl: number }>();
  readonly leases = new Map<string, Lease>();
  /** health and backends are keyed by backendKey (service and URL), as the Redis hashes are. */
  readonly health = new Map<string, SharedHealth>();
  readonly backends = new Map<string, BackendOverride>();
  /** values: the keyed values and when they expire (epoch ms; Infinity for never). */
  readonly values = new Map<string, { readonly value: string; readonly expires: number }>();
  readonly bus = new EventEmitter<{ publication: [Publication] }>();

  constructor() {
    this.bus.setMaxListeners(0);
  }

  publish(publication: Publication): void {
    // Asynchronous, like a message travelling through Redis.
    setImmediate(() => this.bus.emit('publication', publication));
  }
}

export class MemoryStore implements StateStore {
  readonly type = 'memory' as const;
  readonly state: StoreState = 'ready';
  readonly lastError = null;
  readonly #unsubscribers = new Set<Unsubscribe>();

  constructor(readonly instanceId: string, private readonly server: MemoryStateServer = new MemoryStateServer()) {}

  onState(_listener: (state: StoreState) => void): Unsubscribe {
    // Always ready: there is nothing to lose a connection to.
    return () => undefined;
  }

  async flushCounters(seq: number, delta: CounterDelta): Promise<Counters> {
    const last = this.server.flushed.get(this.instanceId) ?? 0;
    if (seq > last) {
      addCounters(this.server.counters, delta);
      this.server.flushed.set(this.instanceId, seq);
    }
    return this.readCounters();
  }

  async readCounters(): Promise<Counters> {
    // A copy, so that the caller never shares mutable state with the server.
    return countersFromFields(counterFields(this.server.counters));
  }

  async heartbeat(ttlMs: number): Promise<InstanceInfo[]> {
    const now = Date.now();
    this.server.instances.set(this.instanceId, { lastSeen: now, ttl: ttlMs });
    const live: InstanceInfo[] = [];
    for (const [id, { lastSeen }] of this.server.instances) {
      if (lastSeen <= now - ttlMs) this.server.instances.delete(id);
      else live.push({ id, lastSeen });
    }
    return live;
  }

  async leave(): Promise<void> {
    this.server.instances.delete(this.instanceId);
    this.server.flushed.delete(this.instanceId);
  }

  async acquireLease(name: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const lease = this.server.leases.get(name);
    if (lease !== undefined && lease.expires > now && lease.owner !== this.instanceId) return false;
    this.server.leases.set(name, { owner: this.instanceId, expires: now + ttlMs });
    return true;
  }

  async releaseLease(name: string): Promise<void> {
    if (this.server.leases.get(name)?.owner === this.instanceId) this.server.leases.delete(name);
  }

  async publishHealth(health: SharedHealth): Promise<void> {
    this.server.health.set(backendKey(health.service, health.url), health);
    this.server.publish({ kind: 'health', from: this.instanceId, health });
  }

  async readHealth(): Promise<SharedHealth[]> {
    return [...this.server.health.values()];
  }

  onHealth(listener: (health: SharedHealth) => void): Unsubscribe {
    return this.#subscribe((p) => { if (p.kind === 'health') listener(p.health); });
  }

  async publishBackend(override: BackendOverride): Promise<void> {
    this.server.backends.set(backendKey(override.service, override.url), override);
    this.server.publish({ kind: 'backend', from: this.instanceId, override });
  }

  async readBackends(): Promise<BackendOverride[]> {
    return [...this.server.backends.values()];
  }

  onBackend(listener: (override: BackendOverride) => void): Unsubscribe {
    return this.#subscribe((p) => { if (p.kind === 'backend') listener(p.override); });
  }

  async getValue(key: string): Promise<string | null> {
    const entry = this.server.values.get(key);
    if (entry === undefined) return null;
    if (entry.expires <= Date.now()) {
      this.server.values.delete(key);
      return null;
    }
    return entry.value;
  }

  async setValue(key: string, value: string, ttlMs?: number): Promise<void> {
    this.server.values.set(key, { value, expires: ttlMs === undefined ? Infinity : Date.now() + ttlMs });
  }

  async deleteValue(key: string): Promise<void> {
    this.server.values.delete(key);
  }

  #subscribe(deliver: (p: Publication) => void): Unsubscribe {
    const handler = (p: Publication): void => { if (p.from !== this.instanceId) deliver(p); };
    this.server.bus.on('publication', handler);
    const unsubscribe = (): void => {
      this.server.bus.off('publication', handler);
      this.#unsubscribers.delete(unsubscribe);
    };
    this.#unsubscribers.add(unsubscribe);
    return unsubscribe;
  }

  async close(): Promise<void> {
    for (const unsubscribe of [...this.#unsubscribers]) unsubscribe();
  }
}
