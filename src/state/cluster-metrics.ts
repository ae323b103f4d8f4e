/**
 * The cluster's totals as Prometheus metrics. With `workers: N` a scrape
 * combines every worker's metrics (prom-client's AggregatorRegistry, in the
 * primary); with Redis, a scrape reaches one instance, whose own counters
 * (fulcrum_requests_total...) describe that instance only. These describe
 * every worker and instance together, from what the state sync loop last
 * read (at most about one flush interval old; the scrape never waits on
 * the store); they are the same in every worker, so workers combine them
 * with `max`, not `sum`. Alone, they equal the process's own counts.
 */
import { Counter, Gauge } from 'prom-client';
import type { Backend } from '../backends/backend.js';
import type { BalancerHost } from '../app/host.js';
import { STATUS_CLASSES, type StoreType } from './store.js';
import type { StateSync } from './sync.js';

export function registerClusterMetrics(balancer: BalancerHost, sync: StateSync, store: StoreType): void {
  const registers = [balancer.metrics.registry];
  // Every service's backends, read at each scrape (a reload changes them); labelled like fulcrum_backend_*.
  const eachBackend = (visit: (service: string, b: Backend) => void): void => {
    for (const service of balancer.serviceNames()) {
      for (const b of balancer.serviceHandle(service)?.pool.snapshot ?? []) visit(service, b);
    }
  };
  new Counter({
    name: 'fulcrum_cluster_requests_total', help: 'Proxied requests counted by every worker and instance sharing the state store.', registers, aggregator: 'max',
    collect() { this.reset(); this.inc(sync.clusterTotal); },
  });
  new Counter({
    name: 'fulcrum_cluster_backend_requests_total', help: 'Requests to a backend counted by every worker and instance.', labelNames: ['service', 'backend'], registers, aggregator: 'max',
    collect() {
      this.reset();
      eachBackend((service, b) => this.inc({ service, backend: b.id }, sync.clusterBackend(service, b.url.href).requests));
    },
  });
  new Counter({
    name: 'fulcrum_cluster_backend_responses_total', help: 'Responses from a backend by status class, counted by every worker and instance.', labelNames: ['service', 'backend', 'class'], registers, aggregator: 'max',
    collect() {
      this.reset();
      eachBackend((service, b) => {
        const c = sync.clusterBackend(service, b.url.href);
        for (const k of STATUS_CLASSES) this.inc({ service, backend: b.id, class: k }, c.responses[k]);
      });
    },
  });
  new Gauge({
    name: 'fulcrum_cluster_instances', help: 'Live workers and instances sharing the state store (as of the last sync).', registers, aggregator: 'max',
    collect() { this.set(Math.max(1, sync.instances.length)); },
  });
  // 1 while the store is unreachable and this instance serves on its local state (the alert's
  // input: shared health, counters and backend changes are not reaching the other instances).
  new Gauge({
    name: 'fulcrum_state_store_degraded', help: 'Whether the state store is unavailable and this instance runs on its local state (1) or not (0).', labelNames: ['store'], registers, aggregator: 'max',
    collect() { this.set({ store }, sync.degraded ? 1 : 0); },
  });
}
