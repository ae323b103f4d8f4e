/**
 * StateSync is the background loop between one balancer instance and the
 * state store. Every `flushInterval` it, in one pipelined round trip:
 * flushes the counter deltas collected since the last flush (and reads the
 * shared totals back), beats the instance's heartbeat (and reads the live
 * instances back), acquires or renews the health-check lease, re-reads the
 * run-time backend changes and, unless it holds the lease, the shared
 * health. What it read is kept for /status, which never waits on the store.
 *
 * When the store is unavailable the loop only keeps collecting: deltas add
 * up locally (a few numbers per backend, however long the outage), the
 * loss is logged once, and the first successful round after it flushes
 * everything and re-reads the shared state. A batch is resent with its
 * sequence number until acknowledged, and the store applies each sequence
 * number once, so a lost reply neither loses nor doubles counts.
 */
import type { Logger } from '../observe/log.js';
import type { CounterCollector } from './counters.js';
import type { BackendSharing } from './backend-share.js';
import { HEALTH_LEASE, type HealthSharing } from './health-share.js';
import {
  addBackendCounters, addCounters, backendKey, emptyBackendCounters, emptyCounters, isEmptyDelta,
  type BackendCounters, type CounterDelta, type Counters, type InstanceInfo, type StateStore, type StoreState, type Unsubscribe,
} from './store.js';

export interface StateSyncOptions {
  readonly store: StateStore;
  readonly collector: CounterCollector;
  readonly flushInterval: number;
  readonly log: Logger;
  /** localTotal is this instance's own request count (for unflushedRequests). */
  readonly localTotal: () => number;
  /** health and backends are shared only with a store that other instances use too. */
  readonly health: HealthSharing | null;
  readonly backends: BackendSharing | null;
}

interface Batch {
  readonly seq: number;
  readonly delta: CounterDelta;
}

/** FINAL_FLUSH_TIMEOUT bounds the last flush, lease release and goodbye on close. */
const FINAL_FLUSH_TIMEOUT = 1500;

/**
 * leaseTtl: how long the health-check lease and an instance's heartbeat
 * last without renewal: three rounds, at least 3 seconds. A dead holder is
 * replaced within that time plus one round.
 */
export function leaseTtl(flushInterval: number): number {
  return Math.max(3000, 3 * flushInterval);
}

export class StateSync {
  readonly #store: StateStore;
  readonly #options: StateSyncOptions;
  readonly #log: Logger;
  readonly #ttl: number;
  /** pending: collected and not yet in a batch. */
  #pending = emptyCounters();
  /** batch: sent and not yet acknowledged; resent as is until it is. */
  #batch: Batch | null = null;
  #seq = 0;
  #ackedTotal = 0;
  #shared: Counters | null = null;
  #instances: InstanceInfo[] = [];
  #degradedSince: number | null = null;
  #connectedOnce = false;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #stopped = false;
  #unsubscribe: Unsubscribe | null = null;

  constructor(options: StateSyncOptions) {
    this.#options = options;
    this.#store = options.store;
    this.#log = options.log;
    this.#ttl = leaseTtl(options.flushInterval);
  }

  start(): void {
    this.#unsubscribe = this.#store.onState((state) => this.#storeState(state));
    this.#schedule(0);
  }

  /** degraded: the store is unavailable and this instance runs on its local state. */
  get degraded(): boolean {
    return this.#degradedSince !== null;
  }

  get degradedSince(): number | null {
    return this.#degradedSince;
  }

  get connected(): boolean {
    return this.#store.state === 'ready' && this.#degradedSince === null;
  }

  /** synced: one round with the store has completed (the shared state has been read once). */
  get synced(): boolean {
    return this.#connectedOnce;
  }

  get instances(): readonly InstanceInfo[] {
    return this.#instances;
  }

  /** unflushedRequests: requests this instance counted that the store has not acknowledged. */
  get unflushedRequests(): number {
    return this.#options.localTotal() - this.#ackedTotal;
  }

  /** clusterTotal: the shared total as last read, plus what this instance has not flushed yet (as of the last round). */
  get clusterTotal(): number {
    return (this.#shared?.total ?? 0) + this.#pending.total + (this.#batch?.delta.total ?? 0);
  }

  /** clusterBackend: one service's backend's shared counters, on the same terms as clusterTotal. */
  clusterBackend(service: string, url: string): BackendCounters {
    const key = backendKey(service, url);
    const out = emptyBackendCounters();
    for (const source of [this.#shared, this.#pending, this.#batch?.delta]) {
      const c = source?.backends.get(key);
      if (c !== undefined) addBackendCounters(out, c);
    }
    return out;
  }

  #storeState(state: StoreState): void {
    if (state === 'down') this.#degrade(this.#store.lastError ?? 'connection lost');
    // Reconnected: re-sync now rather than at the next round.
    else if (state === 'ready') this.#schedule(0);
  }

  #schedule(delay: number): void {
    if (this.#stopped) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#running !== null) return; // the running round schedules the next one
      this.#running = this.#round().finally(() => {
        this.#running = null;
        this.#schedule(this.#options.flushInterval);
      });
    }, delay);
    this.#timer.unref();
  }

  async #round(): Promise<void> {
    addCounters(this.#pending, this.#options.collector.collect());
    const state = this.#store.state;
    if (state === 'down') {
      this.#degrade(this.#store.lastError ?? 'connection lost');
      return;
    }
    if (state !== 'ready') return; // still connecting at start: not a loss yet
    try {
      await this.#sync();
      if (this.#store.state === 'ready') this.#recovered();
    } catch (err) {
      this.#degrade((err as Error).message);
    }
  }

  async #sync(): Promise<void> {
    const store = this.#store;
    const health = this.#options.health;
    if (this.#batch === null) {
      this.#batch = { seq: ++this.#seq, delta: this.#pending };
      this.#pending = emptyCounters();
    }
    const batch = this.#batch;
    const wasHolder = health?.holder ?? false;
    // Issued together, these go out as one pipeline.
    const backends = this.#options.backends;
    const [shared, instances, lease, healthList, overrides] = await Promise.all([
      store.flushCounters(batch.seq, batch.delta),
      store.heartbeat(this.#ttl),
      health === null ? false : store.acquireLease(HEALTH_LEASE, this.#ttl),
      health === null || wasHolder ? [] : store.readHealth(),
      backends === null ? [] : store.readBackends(),
    ]);
    this.#ackedTotal += batch.delta.total;
    this.#batch = null;
    this.#shared = shared;
    this.#instances = instances;
    // Backend changes first (a restarted instance gets its run-time backends back), then the
    // stored health, then the lease: a new holder publishes what it applied.
    backends?.reconcile(overrides);
    for (const h of healthList) health?.apply(h);
    health?.setHolder(lease);
    if (!this.#connectedOnce) {
      this.#connectedOnce = true;
      if (this.#degradedSince === null && store.type !== 'memory') this.#log.info({ store: store.type, instance: store.instanceId }, 'state store connected');
    }
  }

  #degrade(reason: string): void {
    this.#options.health?.setHolder(false);
    if (this.#degradedSince !== null) return;
    this.#degradedSince = Date.now();
    this.#log.warn({ store: this.#store.type, reason, unflushedRequests: this.unflushedRequests },
      'state store unavailable: serving with local state; counters are kept and flushed when it is back');
  }

  #recovered(): void {
    if (this.#degradedSince === null) return;
    this.#log.info({ store: this.#store.type, unavailableMs: Date.now() - this.#degradedSince }, 'state store available again: counters flushed, shared state re-read');
    this.#degradedSince = null;
  }

  /** close stops the loop, flushes what is left, gives the lease up and leaves the cluster (bounded in time). */
  async close(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#unsubscribe?.();
    await this.#running;
    const goodbye = async (): Promise<void> => {
      await this.#finalFlush();
      await Promise.allSettled([this.#options.health?.release(), this.#store.leave()]);
    };
    if (this.#store.state === 'ready' && !(await withTimeout(goodbye(), FINAL_FLUSH_TIMEOUT))) {
      this.#log.warn('state store: the last flush did not finish in time');
    }
    const lost = this.unflushedRequests;
    if (lost > 0) this.#log.warn({ unflushedRequests: lost }, 'state store: requests not counted in the cluster totals (store unavailable at shutdown)');
    await this.#store.close();
  }

  async #finalFlush(): Promise<void> {
    addCounters(this.#pending, this.#options.collector.collect());
    // At most two batches: one left unacknowledged, then what is pending.
    for (let i = 0; i < 2 && (this.#batch !== null || !isEmptyDelta(this.#pending)); i++) {
      if (this.#batch === null) {
        this.#batch = { seq: ++this.#seq, delta: this.#pending };
        this.#pending = emptyCounters();
      }
      try {
        this.#shared = await this.#store.flushCounters(this.#batch.seq, this.#batch.delta);
      } catch {
        return;
      }
      this.#ackedTotal += this.#batch.delta.total;
      this.#batch = null;
    }
  }
}

async function withTimeout(work: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  try {
    return await Promise.race([work.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
