/**
 * CounterCollector turns the balancer's local counters, which only grow
 * (Metrics.totalRequests, the per-backend request and status-code counts of
 * every service, backend.state.failures), into deltas since the previous
 * collection, keyed by backendKey (service and URL: two services may list
 * the same URL, and are counted apart). The request path keeps bumping
 * plain numbers; this runs in the background, once per flush.
 *
 * It keeps a reference to every per-backend metrics object and backend it
 * has seen, so that the last counts of a backend removed from its pool (or
 * of a service removed by a reload) are still collected once, after which
 * it is forgotten.
 */
import type { Backend } from '../backends/backend.js';
import type { BackendPool } from '../backends/pool.js';
import type { BackendMetrics, Metrics } from '../observe/metrics.js';
import { backendKey, emptyBackendCounters, emptyCounters, STATUS_CLASSES, type BackendCounters, type CounterDelta } from './store.js';

/** ServicePools: the balancer's services as the collector reads them (their names, and each one's pool). */
export interface ServicePools {
  names(): readonly string[];
  pool(service: string): BackendPool | undefined;
}

interface SeenMetrics {
  /** key: the backend's backendKey. */
  readonly key: string;
  requests: number;
  /** classes: counts of 1xx..5xx at the last collection. */
  readonly classes: number[];
}

interface SeenFailures {
  readonly key: string;
  failures: number;
}

/** UNROUTED is the metrics key of requests no backend served; they count in the total only. */
const UNROUTED = 'none';

export class CounterCollector {
  #total = 0;
  readonly #metrics = new Map<BackendMetrics, SeenMetrics>();
  readonly #failures = new Map<Backend, SeenFailures>();

  constructor(private readonly metrics: Metrics, private readonly services: ServicePools) {}

  collect(): CounterDelta {
    const delta = emptyCounters();
    delta.total = this.metrics.totalRequests - this.#total;
    this.#total = this.metrics.totalRequests;
    this.#collectRequests(delta);
    this.#collectFailures(delta);
    return delta;
  }

  #collectRequests(delta: CounterDelta): void {
    const current = new Set<BackendMetrics>();
    for (const [service, byId] of this.metrics.byService) {
      for (const [id, m] of byId) {
        if (id === UNROUTED) continue;
        current.add(m);
        let seen = this.#metrics.get(m);
        if (seen === undefined) {
          const backend = this.services.pool(service)?.get(id);
          if (backend === undefined) continue;
          seen = { key: backendKey(service, backend.url.href), requests: 0, classes: [0, 0, 0, 0, 0] };
          this.#metrics.set(m, seen);
        }
        this.#take(delta, seen, m);
      }
    }
    // Metrics of removed backends: collect what they counted since the last time, then let go.
    for (const [m, seen] of this.#metrics) {
      if (current.has(m)) continue;
      this.#take(delta, seen, m);
      this.#metrics.delete(m);
    }
  }

  #take(delta: CounterDelta, seen: SeenMetrics, m: BackendMetrics): void {
    const classes = statusClassCounts(m.codes);
    const requests = m.requests - seen.requests;
    let changed = requests !== 0;
    for (let i = 0; i < 5; i++) if (classes[i] !== seen.classes[i]) changed = true;
    if (!changed) return;
    const c = backendDelta(delta, seen.key);
    c.requests += requests;
    seen.requests = m.requests;
    for (let i = 0; i < 5; i++) {
      c.responses[STATUS_CLASSES[i]!] += classes[i]! - seen.classes[i]!;
      seen.classes[i] = classes[i]!;
    }
  }

  #collectFailures(delta: CounterDelta): void {
    const current = new Set<Backend>();
    for (const service of this.services.names()) {
      for (const b of this.services.pool(service)?.snapshot ?? []) {
        current.add(b);
        let seen = this.#failures.get(b);
        if (seen === undefined) {
          seen = { key: backendKey(service, b.url.href), failures: 0 };
          this.#failures.set(b, seen);
        }
        takeFailures(delta, seen, b);
      }
    }
    for (const [b, seen] of this.#failures) {
      if (current.has(b)) continue;
      takeFailures(delta, seen, b);
      this.#failures.delete(b);
    }
  }
}

function takeFailures(delta: CounterDelta, seen: SeenFailures, b: Backend): void {
  const n = b.state.failures - seen.failures;
  seen.failures = b.state.failures;
  if (n !== 0) backendDelta(delta, seen.key).failures += n;
}

function backendDelta(delta: CounterDelta, key: string): BackendCounters {
  let c = delta.backends.get(key);
  if (c === undefined) {
    c = emptyBackendCounters();
    delta.backends.set(key, c);
  }
  return c;
}

/** statusClassCounts sums status codes into 1xx..5xx (index 0..4); code 0 (no response) is left out. */
export function statusClassCounts(codes: ReadonlyMap<number, number>): number[] {
  const out = [0, 0, 0, 0, 0];
  for (const [code, n] of codes) {
    const i = Math.floor(code / 100) - 1;
    if (i >= 0 && i < 5) out[i]! += n;
  }
  return out;
}
