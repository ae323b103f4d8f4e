/**
 * CounterCollector turns the balancer's local counters, which only grow
 * (Metrics.totalRequests, the per-backend request and status-code counts,
 * backend.state.failures), into deltas since the previous collection, keyed
 * by backend URL. The request path keeps bumping plain numbers; this runs
 * in the background, once per flush.
 *
 * It keeps a reference to every per-backend metrics object and backend it
 * has seen, so that the last counts of a backend removed from the pool are
 * still collected once, after which it is forgotten.
 */
import type { Backend } from '../backends/backend.js';
import type { BackendPool } from '../backends/pool.js';
import type { BackendMetrics, Metrics } from '../observe/metrics.js';
import { emptyBackendCounters, emptyCounters, STATUS_CLASSES, type BackendCounters, type CounterDelta } from './store.js';

interface SeenMetrics {
  readonly url: string;
  requests: number;
  /** classes: counts of 1xx..5xx at the last collection. */
  readonly classes: number[];
}

/** UNROUTED is the metrics key of requests no backend served; they count in the total only. */
const UNROUTED = 'none';

export class CounterCollector {
  #total = 0;
  readonly #metrics = new Map<BackendMetrics, SeenMetrics>();
  readonly #failures = new Map<Backend, number>();

  constructor(private readonly metrics: Metrics, private readonly pool: BackendPool) {}

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
    for (const [id, m] of this.metrics.byBackend) {
      if (id === UNROUTED) continue;
      current.add(m);
      let seen = this.#metrics.get(m);
      if (seen === undefined) {
        const backend = this.pool.get(id);
        if (backend === undefined) continue;
        seen = { url: backend.url.href, requests: 0, classes: [0, 0, 0, 0, 0] };
        this.#metrics.set(m, seen);
      }
      this.#take(delta, seen, m);
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
    const c = backendDelta(delta, seen.url);
    c.requests += requests;
    seen.requests = m.requests;
    for (let i = 0; i < 5; i++) {
      c.responses[STATUS_CLASSES[i]!] += classes[i]! - seen.classes[i]!;
      seen.classes[i] = classes[i]!;
    }
  }

  #collectFailures(delta: CounterDelta): void {
    const current = new Set<Backend>(this.pool.snapshot);
    for (const b of current) this.#takeFailures(delta, b);
    for (const b of this.#failures.keys()) {
      if (current.has(b)) continue;
      this.#takeFailures(delta, b);
      this.#failures.delete(b);
    }
  }

  #takeFailures(delta: CounterDelta, b: Backend): void {
    const before = this.#failures.get(b) ?? 0;
    const n = b.state.failures - before;
    this.#failures.set(b, b.state.failures);
    if (n !== 0) backendDelta(delta, b.url.href).failures += n;
  }
}

function backendDelta(delta: CounterDelta, url: string): BackendCounters {
  let c = delta.backends.get(url);
  if (c === undefined) {
    c = emptyBackendCounters();
    delta.backends.set(url, c);
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
