/**
 * StateStore is what balancer instances share: request counters, backend
 * health, the run-time backend changes, the list of live instances, the
 * leases (health checks, ACME) and small keyed values (ACME certificates). Two implementations satisfy one contract
 * (test/unit/state-contract.test.ts): memory (one process, the default)
 * and Redis (many instances, survives restarts).
 *
 * Nothing here is called on the request path: the sync loop (sync.ts)
 * calls the store in the background and keeps what it read for /status.
 * Backends are identified across instances by their service and URL
 * (`href`), because two instances may give the same backend different ids,
 * and two services may have the same URL (backendKey below).
 */
import { DEFAULT_SERVICE } from '../config/services.js';

export type StoreType = 'memory' | 'redis';

/**
 * StoreState: `connecting` until the first connection is ready, `ready`
 * while connected, `down` after a connection attempt failed or an
 * established connection was lost (until it is ready again).
 */
export type StoreState = 'connecting' | 'ready' | 'down';

export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

/** BackendCounters are the counts of one backend: requests, failed attempts, responses by status class. */
export interface BackendCounters {
  requests: number;
  failures: number;
  readonly responses: Record<StatusClass, number>;
}

/** Counters: the total of proxied requests and the per-backend counts, by backendKey (service and URL). */
export interface Counters {
  total: number;
  readonly backends: Map<string, BackendCounters>;
}

/** CounterDelta is what to add to the shared counters; same shape as Counters. */
export type CounterDelta = Counters;

/** SharedHealth is the active-check verdict on one backend, published by the lease holder. */
export interface SharedHealth {
  /** service: the service the backend belongs to (entries written before services were shared are `default`'s). */
  readonly service: string;
  readonly url: string;
  /** reasons holds only the bits active checks own (ACTIVE_CHECK_FAILED, INITIALLY_DOWN). */
  readonly reasons: number;
  readonly lastCheck: number | null;
  readonly lastCheckOk: boolean | null;
  readonly lastCheckError: string | null;
  /** since is when the backend's health last changed, epoch ms. */
  readonly since: number;
  /** by is the id of the instance that checked. */
  readonly by: string;
}

export type SharedBackendState = 'enabled' | 'draining' | 'disabled';

/**
 * BackendOverride is the run-time change to one backend (by service and URL), merged
 * over every change made to it so far: whether it is present, the config it
 * was added with (durations as "Nms" strings), its weight and its state.
 * Null fields mean "as configured".
 */
export interface BackendOverride {
  /** service: the service whose backend set changed (entries written before services were shared are `default`'s). */
  readonly service: string;
  readonly url: string;
  readonly present: boolean;
  readonly config: Readonly<Record<string, unknown>> | null;
  readonly weight: number | null;
  readonly state: SharedBackendState | null;
  /** drain: a removal waits for in-flight requests to finish. */
  readonly drain: boolean;
  /** at orders concurrent changes: the later one wins. */
  readonly at: number;
  readonly by: string;
}

export interface InstanceInfo {
  readonly id: string;
  /** lastSeen is the last heartbeat, epoch ms (the store's clock). */
  readonly lastSeen: number;
}

export type Unsubscribe = () => void;

/** StoreTopology: how a Redis store is deployed, for /status. */
export interface StoreTopology {
  readonly mode: 'standalone' | 'sentinel' | 'cluster';
  /** master: the server connected now, host:port (standalone and Sentinel; null while disconnected). */
  readonly master?: string | null;
  /** nodes: the masters of the cluster the client knows (cluster mode). */
  readonly nodes?: number;
}

export interface StateStore {
  readonly type: StoreType;
  /** instanceId is this balancer instance; the store never delivers its own publications back to it. */
  readonly instanceId: string;
  readonly state: StoreState;
  /** lastError describes the last connection failure, for logs (null when none). */
  readonly lastError: string | null;
  /** topology: where a networked store is connected (Redis); absent for the memory store. */
  topology?(): StoreTopology;
  /** onState is called on every change of `state`. */
  onState(listener: (state: StoreState) => void): Unsubscribe;

  /**
   * flushCounters adds `delta` to the shared counters exactly once per
   * (instance, seq): resending a batch whose reply was lost adds nothing.
   * Resolves to the shared counters right after the addition.
   */
  flushCounters(seq: number, delta: CounterDelta): Promise<Counters>;
  readCounters(): Promise<Counters>;

  /** heartbeat marks this instance alive for `ttlMs` and resolves to the live instances. */
  heartbeat(ttlMs: number): Promise<InstanceInfo[]>;
  /** leave removes this instance from the live list. */
  leave(): Promise<void>;

  /** acquireLease takes the named lease when free, or extends it when this instance holds it. */
  acquireLease(name: string, ttlMs: number): Promise<boolean>;
  /** releaseLease frees the lease if this instance holds it. */
  releaseLease(name: string): Promise<void>;

  /** publishHealth stores the verdict (for restarts) and announces it to the other instances. */
  publishHealth(health: SharedHealth): Promise<void>;
  readHealth(): Promise<SharedHealth[]>;
  onHealth(listener: (health: SharedHealth) => void): Unsubscribe;

  /** publishBackend stores a run-time backend change and announces it. */
  publishBackend(override: BackendOverride): Promise<void>;
  readBackends(): Promise<BackendOverride[]>;
  onBackend(listener: (override: BackendOverride) => void): Unsubscribe;

  /**
   * getValue, setValue and deleteValue hold small shared values by key (the
   * ACME account, certificates and challenge tokens): what one instance
   * writes, every instance reads. A value set with `ttlMs` expires then.
   */
  getValue(key: string): Promise<string | null>;
  setValue(key: string, value: string, ttlMs?: number): Promise<void>;
  deleteValue(key: string): Promise<void>;

  close(): Promise<void>;
}

/** StateStoreError wraps a failed store operation; its cause is the client's error. */
export class StateStoreError extends Error {
  readonly code = 'FULCRUM_ERR_STATE_STORE';
  constructor(operation: string, options?: { cause?: unknown }) {
    const cause = options?.cause instanceof Error ? `: ${options.cause.message}` : '';
    super(`state store ${operation} failed${cause}`, options);
    this.name = 'StateStoreError';
  }
}

/**
 * backendKey names one service's backend in the store: the hash field of
 * its health and run-time changes, and the start of its counter fields. The
 * service `default` keeps the bare URL, which is what every entry was before
 * services were shared, so that data written then stays the default
 * service's; another service's is `<service> <url>` (a service name has no
 * space, and an href has none either).
 */
export function backendKey(service: string, url: string): string {
  return service === DEFAULT_SERVICE ? url : `${service} ${url}`;
}

export function emptyBackendCounters(): BackendCounters {
  return { requests: 0, failures: 0, responses: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 } };
}

export function emptyCounters(): Counters {
  return { total: 0, backends: new Map() };
}

export function isEmptyDelta(delta: CounterDelta): boolean {
  return delta.total === 0 && delta.backends.size === 0;
}

/** addCounters adds `from` into `into` (mutating it) and returns it. */
export function addCounters(into: Counters, from: Counters): Counters {
  into.total += from.total;
  for (const [key, c] of from.backends) {
    let target = into.backends.get(key);
    if (target === undefined) {
      target = emptyBackendCounters();
      into.backends.set(key, target);
    }
    addBackendCounters(target, c);
  }
  return into;
}

export function addBackendCounters(into: BackendCounters, from: BackendCounters): BackendCounters {
  into.requests += from.requests;
  into.failures += from.failures;
  for (const k of STATUS_CLASSES) into.responses[k] += from.responses[k];
  return into;
}

/**
 * Counter fields, as stored in one hash: "total", and "<key>|<name>" per
 * backend, with key its backendKey ("<url>" for the service `default`,
 * "<service> <url>" for another) and name one of requests, failures,
 * 1xx..5xx. The name never contains "|", so the last "|" splits a field
 * even if the URL has one.
 */
export const TOTAL_FIELD = 'total';
const BACKEND_COUNTER_NAMES = ['requests', 'failures', ...STATUS_CLASSES] as const;

/** counterFields lists the non-zero fields of a delta as [field, increment] pairs. */
export function counterFields(delta: CounterDelta): [string, number][] {
  const out: [string, number][] = [];
  if (delta.total !== 0) out.push([TOTAL_FIELD, delta.total]);
  for (const [key, c] of delta.backends) {
    if (c.requests !== 0) out.push([`${key}|requests`, c.requests]);
    if (c.failures !== 0) out.push([`${key}|failures`, c.failures]);
    for (const k of STATUS_CLASSES) if (c.responses[k] !== 0) out.push([`${key}|${k}`, c.responses[k]]);
  }
  return out;
}

/** countersFromFields is the inverse of counterFields; unknown fields are ignored. */
export function countersFromFields(fields: Iterable<[string, number]>): Counters {
  const out = emptyCounters();
  for (const [field, value] of fields) {
    if (!Number.isFinite(value)) continue;
    if (field === TOTAL_FIELD) {
      out.total = value;
      continue;
    }
    const bar = field.lastIndexOf('|');
    if (bar <= 0) continue;
    const key = field.slice(0, bar);
    const name = field.slice(bar + 1) as (typeof BACKEND_COUNTER_NAMES)[number];
    if (!BACKEND_COUNTER_NAMES.includes(name)) continue;
    let c = out.backends.get(key);
    if (c === undefined) {
      c = emptyBackendCounters();
      out.backends.set(key, c);
    }
    if (name === 'requests') c.requests = value;
    else if (name === 'failures') c.failures = value;
    else c.responses[name] = value;
  }
  return out;
}
