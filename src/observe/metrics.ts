/**
 * Request metrics. The data path only bumps plain counters (O(1), no label
 * hashing); prom-client reads them at scrape time through collector
 * objects, so Prometheus exposition costs nothing per request.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';

/** Latency buckets in seconds, from a fast local hop to a slow upstream. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

/** LatencyHistogram is a fixed-bucket histogram with cumulative export. */
export class LatencyHistogram {
  readonly counts = new Float64Array(DURATION_BUCKETS.length + 1);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    let i = 0;
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
    this.counts[i]!++;
    this.sum += seconds;
    this.count++;
  }

  /** quantile estimates the q-quantile (0..1) by linear interpolation inside a bucket. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = q * this.count;
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      const c = this.counts[i]!;
      if (seen + c >= rank && c > 0) {
        const lo = i === 0 ? 0 : DURATION_BUCKETS[i - 1]!;
        const hi = i < DURATION_BUCKETS.length ? DURATION_BUCKETS[i]! : lo * 2;
        return lo + (hi - lo) * ((rank - seen) / c);
      }
      seen += c;
    }
    return DURATION_BUCKETS[DURATION_BUCKETS.length - 1]!;
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

/** BackendMetrics holds the per-backend counters; "none" collects requests no backend served. */
export class BackendMetrics {
  /** codes maps an HTTP status (0 = no response) to a count. */
  readonly codes = new Map<number, number>();
  readonly latency = new LatencyHistogram();
  requests = 0;
}

/** MeteredBackend is what the metrics read of a backend at scrape time: its names and live counters. */
export interface MeteredBackend {
  readonly id: string;
  readonly url: URL;
  readonly state: { readonly reasons: number; readonly inflight: number; readonly failures: number };
}

/** BackendSource returns the backends in the pool now (the pool's snapshot). */
export type BackendSource = () => readonly MeteredBackend[];

interface MetricValue { metricName?: string; labels: Record<string, string | number>; value: number }
/** aggregator: how a cluster's workers' values combine (prom-client's AggregatorRegistry). */
type Aggregator = 'sum' | 'max';
interface CollectedMetric { name: string; help: string; type: 'counter' | 'gauge' | 'histogram'; aggregator: Aggregator; values: MetricValue[] }

/** collector adapts a function to prom-client's metric interface (read at scrape time). */
function collector(name: string, help: string, type: CollectedMetric['type'], values: () => MetricValue[], aggregator: Aggregator = 'sum') {
  return {
    name, help, type, aggregator,
    get: async (): Promise<CollectedMetric> => ({ name, help, type, aggregator, values: values() }),
  };
}

export class Metrics {
  /** totalRequests counts proxied requests (not the balancer's own endpoints). */
  totalRequests = 0;
  rateLimited = 0;
  retries = 0;
  readonly byBackend = new Map<string, BackendMetrics>();
  readonly registry = new Registry();
  /** extraJson lets features (store, rate limiter) add fields to the JSON metrics. */
  readonly extraJson: (() => Record<string, unknown>)[] = [];

  constructor(private readonly backends: BackendSource, options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'fulcrum_process_' });
    this.#registerCollectors();
  }

  backend(id: string): BackendMetrics {
    let m = this.byBackend.get(id);
    if (m === undefined) {
      m = new BackendMetrics();
      this.byBackend.set(id, m);
    }
    return m;
  }

  /** record is called once per proxied request, when it finishes. */
  record(backendId: string, status: number, seconds: number): void {
    this.totalRequests++;
    const m = this.backend(backendId);
    m.requests++;
    m.codes.set(status, (m.codes.get(status) ?? 0) + 1);
    m.latency.observe(seconds);
  }

  /** forget drops the metrics of a backend that left the pool. */
  forget(id: string): void {
    this.byBackend.delete(id);
  }

  json(): Record<string, unknown> {
    const backends: Record<string, unknown>[] = [];
    for (const b of this.backends()) {
      const m = this.byBackend.get(b.id);
      backends.push({
        id: b.id,
        url: b.url.href,
        requests: m?.requests ?? 0,
        failures: b.state.failures,
        activeConnections: b.state.inflight,
        healthy: b.state.reasons === 0,
        codes: m === undefined ? {} : Object.fromEntries([...m.codes].map(([c, n]) => [String(c), n])),
        latency: m === undefined ? null : { p50: m.latency.quantile(0.5), p99: m.latency.quantile(0.99), count: m.latency.count },
      });
    }
    const out: Record<string, unknown> = {
      total_requests: this.totalRequests,
      ratelimited_total: this.rateLimited,
      retries_total: this.retries,
      unrouted_requests: this.byBackend.get('none')?.requests ?? 0,
      backends,
    };
    for (const extra of this.extraJson) Object.assign(out, extra());
    return out;
  }

  /**
   * prometheusSource replaces the local exposition when the metrics of
   * several processes must be combined (a cluster worker asks its primary);
   * it resolves to null when that fails, and the local metrics are served.
   */
  prometheusSource: (() => Promise<{ contentType: string; body: string } | null>) | null = null;

  async prometheus(): Promise<{ contentType: string; body: string }> {
    const combined = this.prometheusSource === null ? null : await this.prometheusSource();
    return combined ?? { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  #registerCollectors(): void {
    const r = this.registry;
    r.registerMetric(collector('fulcrum_requests_total', 'Proxied requests by backend and status code (0: no response).', 'counter', () => {
      const values: MetricValue[] = [];
      for (const [id, m] of this.byBackend) for (const [code, n] of m.codes) values.push({ labels: { backend: id, code }, value: n });
      return values;
    }) as never);
    r.registerMetric(collector('fulcrum_request_duration_seconds', 'Time from receiving a request to the end of its response.', 'histogram', () => {
      const values: MetricValue[] = [];
      for (const [id, m] of this.byBackend) {
        let cumulative = 0;
        DURATION_BUCKETS.forEach((le, i) => {
          cumulative += m.latency.counts[i]!;
          values.push({ metricName: 'fulcrum_request_duration_seconds_bucket', labels: { backend: id, le }, value: cumulative });
        });
        cumulative += m.latency.counts[DURATION_BUCKETS.length]!;
        values.push({ metricName: 'fulcrum_request_duration_seconds_bucket', labels: { backend: id, le: '+Inf' }, value: cumulative });
        values.push({ metricName: 'fulcrum_request_duration_seconds_sum', labels: { backend: id }, value: m.latency.sum });
        values.push({ metricName: 'fulcrum_request_duration_seconds_count', labels: { backend: id }, value: m.latency.count });
      }
      return values;
    }) as never);
    r.registerMetric(collector('fulcrum_backend_up', 'Whether a backend is in rotation (1) or out (0).', 'gauge',
      () => this.backends().map((b) => ({ labels: { backend: b.id }, value: b.state.reasons === 0 ? 1 : 0 })), 'max') as never);
    r.registerMetric(collector('fulcrum_backend_active_connections', 'Requests in flight to a backend.', 'gauge',
      () => this.backends().map((b) => ({ labels: { backend: b.id }, value: b.state.inflight }))) as never);
    r.registerMetric(collector('fulcrum_backend_failures_total', 'Failed attempts to a backend (connect errors, timeouts, resets).', 'counter',
      () => this.backends().map((b) => ({ labels: { backend: b.id }, value: b.state.failures }))) as never);
    r.registerMetric(collector('fulcrum_ratelimited_total', 'Requests rejected by the rate limiter.', 'counter',
      () => [{ labels: {}, value: this.rateLimited }]) as never);
    r.registerMetric(collector('fulcrum_retries_total', 'Retried upstream attempts.', 'counter',
      () => [{ labels: {}, value: this.retries }]) as never);
  }
}
