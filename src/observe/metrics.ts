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

/** BackendMetrics holds the counters of one backend of one service; "none" collects requests no backend served. */
export class BackendMetrics {
  /** codes maps an HTTP status (0 = no response) to a count. */
  readonly codes = new Map<number, number>();
  readonly latency = new LatencyHistogram();
  requests = 0;

  constructor(readonly service: string = 'default', readonly id: string = 'none') {}
}

/** TargetMetrics: one route's requests to one backend (the series labelled by route, service and backend). */
export class TargetMetrics {
  readonly codes = new Map<number, number>();
  readonly latency = new LatencyHistogram();
}

/** RouteMetrics holds the counters of one route, whole and by backend. */
export class RouteMetrics {
  requests = 0;
  /** errors: answers of 5xx, or none at all. */
  errors = 0;
  readonly latency = new LatencyHistogram();
  readonly targets = new Map<BackendMetrics, TargetMetrics>();
}

/** MirrorDrop: why a sampled copy was not sent (fulcrum_mirror_dropped_total's reason). */
export type MirrorDrop = 'max-in-flight' | 'body-too-large' | 'aborted' | 'no-backend';

/** MirrorMetrics: one route's copies to one mirror service. */
export class MirrorMetrics {
  sent = 0;
  readonly dropped = new Map<MirrorDrop, number>();
  constructor(readonly route: string, readonly service: string) {}
}

/** MeteredBackend is what the metrics read of a backend at scrape time: its names and live counters. */
export interface MeteredBackend {
  readonly id: string;
  readonly url: URL;
  readonly state: { readonly reasons: number; readonly inflight: number; readonly failures: number; readonly ejections: number };
}

/** ServiceBackends: one service's backends now (its pool's snapshot). */
export interface ServiceBackends {
  readonly service: string;
  readonly backends: readonly MeteredBackend[];
  /** circuitState: the service's circuit as the gauge's value (0 closed, 1 open, 2 half-open); null or absent without one. */
  readonly circuitState?: number | null;
}

/** BackendSource returns every service's backends. */
export type BackendSource = () => readonly ServiceBackends[];

/** UNROUTED names the service and backend of requests that reached neither. */
const NONE = 'none';

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

const EMPTY: ReadonlyMap<string, BackendMetrics> = new Map();

export class Metrics {
  /** totalRequests counts proxied requests (not the balancer's own endpoints). */
  totalRequests = 0;
  rateLimited = 0;
  /** retries: every retry; retriesBy: the same by service, then reason ("connect-failure", "reset", "timeout", "503"...). */
  retries = 0;
  readonly retriesBy = new Map<string, Map<string, number>>();
  /** tracingDroppedSpans: spans tracing could not export (collector down, slow or refusing; queue full). */
  tracingDroppedSpans = 0;
  /** byService: the backends' counters, by service, then backend id. */
  readonly byService = new Map<string, Map<string, BackendMetrics>>();
  readonly byRoute = new Map<string, RouteMetrics>();
  /** mirrors: the copies of mirrored routes, by "route\0service" (kept apart from every request counter above). */
  readonly mirrors = new Map<string, MirrorMetrics>();
  /** grpc: gRPC calls answered, by service, then grpc-status. */
  readonly grpc = new Map<string, Map<number, number>>();
  /** defaultService names the service `byBackend` shows (the balancer's default one). */
  defaultService = 'default';
  readonly registry = new Registry();
  /** extraJson lets features (store, rate limiter) add fields to the JSON metrics. */
  readonly extraJson: (() => Record<string, unknown>)[] = [];

  constructor(private readonly backends: BackendSource, options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'fulcrum_process_' });
    this.#registerCollectors();
  }

  /** byBackend: the counters of the default service's backends, by id. */
  get byBackend(): ReadonlyMap<string, BackendMetrics> {
    return this.byService.get(this.defaultService) ?? EMPTY;
  }

  backend(service: string, id: string): BackendMetrics {
    let byId = this.byService.get(service);
    if (byId === undefined) {
      byId = new Map();
      this.byService.set(service, byId);
    }
    let m = byId.get(id);
    if (m === undefined) {
      m = new BackendMetrics(service, id);
      byId.set(id, m);
    }
    return m;
  }

  route(name: string): RouteMetrics {
    let m = this.byRoute.get(name);
    if (m === undefined) {
      m = new RouteMetrics();
      this.byRoute.set(name, m);
    }
    return m;
  }

  /** record is called once per proxied request, when it finishes. */
  record(route: string, service: string, backendId: string, status: number, seconds: number): void {
    this.totalRequests++;
    const m = this.backend(service, backendId);
    m.requests++;
    m.codes.set(status, (m.codes.get(status) ?? 0) + 1);
    m.latency.observe(seconds);
    const r = this.route(route);
    r.requests++;
    if (status >= 500 || status === 0) r.errors++;
    r.latency.observe(seconds);
    let t = r.targets.get(m);
    if (t === undefined) {
      t = new TargetMetrics();
      r.targets.set(m, t);
    }
    t.codes.set(status, (t.codes.get(status) ?? 0) + 1);
    t.latency.observe(seconds);
  }

  mirror(route: string, service: string): MirrorMetrics {
    const key = `${route}\0${service}`;
    let m = this.mirrors.get(key);
    if (m === undefined) {
      m = new MirrorMetrics(route, service);
      this.mirrors.set(key, m);
    }
    return m;
  }

  mirrorSent(route: string, service: string): void {
    this.mirror(route, service).sent++;
  }

  mirrorDropped(route: string, service: string, reason: MirrorDrop): void {
    const m = this.mirror(route, service);
    m.dropped.set(reason, (m.dropped.get(reason) ?? 0) + 1);
  }

  /** countRetry counts one retry of a request to `service`, for `reason`. */
  countRetry(service: string, reason: string): void {
    this.retries++;
    let byReason = this.retriesBy.get(service);
    if (byReason === undefined) {
      byReason = new Map();
      this.retriesBy.set(service, byReason);
    }
    byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
  }

  /** recordGrpc counts a gRPC call's answer (the backend's grpc-status, or Fulcrum's own). */
  recordGrpc(service: string, status: number): void {
    let byStatus = this.grpc.get(service);
    if (byStatus === undefined) {
      byStatus = new Map();
      this.grpc.set(service, byStatus);
    }
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
  }

  /** forget drops the metrics of a backend that left its service. */
  forget(service: string, id: string): void {
    const m = this.byService.get(service)?.get(id);
    if (m === undefined) return;
    this.byService.get(service)!.delete(id);
    for (const r of this.byRoute.values()) r.targets.delete(m);
  }

  /** forgetRoutes drops the counters of routes no longer configured. */
  forgetRoutes(keep: ReadonlySet<string>): void {
    for (const name of this.byRoute.keys()) if (name !== NONE && !keep.has(name)) this.byRoute.delete(name);
    for (const [key, m] of this.mirrors) if (!keep.has(m.route)) this.mirrors.delete(key);
  }

  json(): Record<string, unknown> {
    const backends: Record<string, unknown>[] = [];
    const services: Record<string, unknown> = {};
    let unrouted = 0;
    for (const byId of this.byService.values()) unrouted += byId.get(NONE)?.requests ?? 0;
    for (const { service, backends: list } of this.backends()) {
      const byId = this.byService.get(service);
      let requests = byId?.get(NONE)?.requests ?? 0;
      for (const b of list) {
        const m = byId?.get(b.id);
        requests += m?.requests ?? 0;
        backends.push({
          id: b.id,
          service,
          url: b.url.href,
          requests: m?.requests ?? 0,
          failures: b.state.failures,
          activeConnections: b.state.inflight,
          healthy: b.state.reasons === 0,
          codes: m === undefined ? {} : Object.fromEntries([...m.codes].map(([c, n]) => [String(c), n])),
          latency: m === undefined ? null : { p50: m.latency.quantile(0.5), p99: m.latency.quantile(0.99), count: m.latency.count },
        });
      }
      services[service] = { requests, backends: list.length, healthyBackends: list.filter((b) => b.state.reasons === 0).length };
    }
    const routes: Record<string, unknown> = {};
    for (const [name, r] of this.byRoute) {
      routes[name] = { requests: r.requests, errors: r.errors, latency: r.latency.count === 0 ? null : { p50: r.latency.quantile(0.5), p99: r.latency.quantile(0.99), count: r.latency.count } };
    }
    const out: Record<string, unknown> = {
      total_requests: this.totalRequests,
      ratelimited_total: this.rateLimited,
      retries_total: this.retries,
      retries: Object.fromEntries([...this.retriesBy].map(([service, byReason]) => [service, Object.fromEntries(byReason)])),
      tracing_dropped_spans_total: this.tracingDroppedSpans,
      unrouted_requests: unrouted,
      backends,
      services,
      routes,
    };
    if (this.mirrors.size > 0) {
      out.mirrors = [...this.mirrors.values()].map((m) => ({ route: m.route, service: m.service, sent: m.sent, dropped: Object.fromEntries(m.dropped) }));
    }
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
    r.registerMetric(collector('fulcrum_requests_total', 'Proxied requests by route, service, backend and status code (0: no response).', 'counter', () => {
      const values: MetricValue[] = [];
      for (const [route, rm] of this.byRoute) {
        for (const [m, t] of rm.targets) for (const [code, n] of t.codes) values.push({ labels: { route, service: m.service, backend: m.id, code }, value: n });
      }
      return values;
    }) as never);
    r.registerMetric(collector('fulcrum_request_duration_seconds', 'Time from receiving a request to the end of its response.', 'histogram', () => {
      const values: MetricValue[] = [];
      for (const [route, rm] of this.byRoute) {
        for (const [m, t] of rm.targets) {
          const labels = { route, service: m.service, backend: m.id };
          let cumulative = 0;
          DURATION_BUCKETS.forEach((le, i) => {
            cumulative += t.latency.counts[i]!;
            values.push({ metricName: 'fulcrum_request_duration_seconds_bucket', labels: { ...labels, le }, value: cumulative });
          });
          cumulative += t.latency.counts[DURATION_BUCKETS.length]!;
          values.push({ metricName: 'fulcrum_request_duration_seconds_bucket', labels: { ...labels, le: '+Inf' }, value: cumulative });
          values.push({ metricName: 'fulcrum_request_duration_seconds_sum', labels, value: t.latency.sum });
          values.push({ metricName: 'fulcrum_request_duration_seconds_count', labels, value: t.latency.count });
        }
      }
      return values;
    }) as never);
    const perBackend = (value: (b: MeteredBackend) => number): MetricValue[] => {
      const values: MetricValue[] = [];
      for (const { service, backends } of this.backends()) for (const b of backends) values.push({ labels: { service, backend: b.id }, value: value(b) });
      return values;
    };
    r.registerMetric(collector('fulcrum_backend_up', 'Whether a backend is in rotation (1) or out (0).', 'gauge',
      () => perBackend((b) => (b.state.reasons === 0 ? 1 : 0)), 'max') as never);
    r.registerMetric(collector('fulcrum_backend_active_connections', 'Requests in flight to a backend.', 'gauge',
      () => perBackend((b) => b.state.inflight)) as never);
    r.registerMetric(collector('fulcrum_backend_failures_total', 'Failed attempts to a backend (connect errors, timeouts, resets).', 'counter',
      () => perBackend((b) => b.state.failures)) as never);
    r.registerMetric(collector('fulcrum_backend_ejections_total', 'Times outlier detection ejected a backend.', 'counter',
      () => perBackend((b) => b.state.ejections)) as never);
    r.registerMetric(collector('fulcrum_route_requests_total', 'Requests a route matched.', 'counter', () => {
      const values: MetricValue[] = [];
      for (const [route, rm] of this.byRoute) values.push({ labels: { route }, value: rm.requests });
      return values;
    }) as never);
    r.registerMetric(collector('fulcrum_mirror_requests_total', 'Copies of requests sent to a mirror service.', 'counter', () => {
      const values: MetricValue[] = [];
      for (const m of this.mirrors.values()) values.push({ labels: { route: m.route, service: m.service }, value: m.sent });
      return values;
    }) as never);
    r.registerMetric(collector('fulcrum_mirror_dropped_total', 'Sampled copies not sent to a mirror service, by reason.', 'counter', () => {
      const values: MetricValue[] = [];
      for (const m of this.mirrors.values()) for (const [reason, n] of m.dropped) values.push({ labels: { route: m.route, service: m.service, reason }, value: n });
      return values;
    }) as never);
    r.registerMetric(collector('fulcrum_ratelimited_total', 'Requests rejected by the rate limiter.', 'counter',
      () => [{ labels: {}, value: this.rateLimited }]) as never);
    r.registerMetric(collector('fulcrum_grpc_responses_total', 'gRPC calls answered, by service and grpc-status (the backend\'s, or Fulcrum\'s own refusal).', 'counter', () => {
      const values: MetricValue[] = [];
      for (const [service, byStatus] of this.grpc) for (const [status, n] of byStatus) values.push({ labels: { service, grpc_status: status }, value: n });
      return values;
    }) as never);
    r.registerMetric(collector('fulcrum_retries_total', 'Retried upstream attempts, by service and reason (connect-failure, reset, timeout, or the status code retried).', 'counter', () => {
      const values: MetricValue[] = [];
      for (const [service, byReason] of this.retriesBy) for (const [reason, n] of byReason) values.push({ labels: { service, reason }, value: n });
      return values;
    }) as never);
    r.registerMetric(collector('fulcrum_circuit_state', 'A service\'s circuit breaker: 0 closed, 1 open, 2 half-open (services without one are not listed).', 'gauge', () => {
      const values: MetricValue[] = [];
      for (const { service, circuitState } of this.backends()) if (circuitState !== undefined && circuitState !== null) values.push({ labels: { service }, value: circuitState });
      return values;
    }, 'max') as never);
    r.registerMetric(collector('fulcrum_tracing_dropped_spans_total', 'Spans not exported: the collector was unreachable, slow or refused them, or the export queue was full.', 'counter',
      () => [{ labels: {}, value: this.tracingDroppedSpans }]) as never);
  }
}
